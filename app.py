#!/usr/bin/env python3
"""CDK entry point: `cdk synth --all -c stage=prod` builds the four stacks of one stage."""

from __future__ import annotations

import sys

from aws_cdk import App

from stacks import StageConfigError, build_pipeline


def main() -> None:
    app = App()
    try:
        build_pipeline(app)
    except (StageConfigError, ValueError) as exc:
        # one clear line instead of a jsii traceback
        print(f"streamline: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    app.synth()


if __name__ == "__main__":
    main()
