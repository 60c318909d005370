"""Where an ops command points: the local cloud (found through its state dir) or an AWS account.

Every ops command takes the same flags and builds its clients here, so the same code path
serves both: ``--local`` (the default when a local cloud is running in ``--state-dir``), or
``--profile`` / ``--region`` for a real account (no endpoint override).

Example::

    parser = argparse.ArgumentParser()
    add_target_arguments(parser)
    args = parser.parse_args(["--region", "eu-west-1"])
    logs = Target.from_args(args).client("logs")
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamline.local.state import DEFAULT_STATE_DIR, StaleStateError, StateDir, StateDirError

__all__ = ["Target", "TargetError", "add_command", "add_target_arguments", "command_error"]


_STAGE = re.compile(r"[A-Za-z0-9-]{1,32}")


def one_line(text: str, limit: int = 300) -> str:
    """A message as one line (botocore's often span several), cut to ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class TargetError(Exception):
    """No usable target (no local cloud running and no AWS settings given): a one-line error."""


def is_aws_error(exc: BaseException) -> bool:
    """An error botocore or boto3 raised: no credentials, endpoint down, access denied, ..."""
    return type(exc).__module__.split(".")[0] in {"botocore", "boto3"}


def command_error(exc: Exception, doing: str | None, *own: type[Exception]) -> int:
    """How every ops command ends on an error: its own errors (``own``) and TargetError print
    as they are, an AWS error as ``doing: <botocore's message on one line>``, both on one line
    of stderr, exit status 2; anything else is a bug and is raised again.

    Example::

        except Exception as exc:
            return command_error(exc, "cannot read status", LogsError)
    """
    if isinstance(exc, (TargetError, *own)):
        message = str(exc)
    elif is_aws_error(exc):
        message = f"{doing}: {one_line(str(exc))}" if doing else one_line(str(exc))
    else:
        raise exc
    print(f"streamline: {message}", file=sys.stderr)
    return 2


def add_command(
    commands: Any,
    parser_class: type[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    doc: str | None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (described by the first paragraph of ``doc``, a module docstring).

    ``parser_class`` is the CLI's one-line-error parser; a parser of another class would print
    argparse's whole usage block, so that is a wiring mistake caught here.
    """
    parser = commands.add_parser(name, help=help, description=doc.split("\n\n")[0] if doc else None)
    if not isinstance(parser, parser_class):  # pragma: no cover - wiring mistake
        raise TypeError(f"{name} parser is {type(parser).__name__}, not {parser_class.__name__}")
    return parser


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every ops command shares."""
    group = parser.add_argument_group("target")
    group.add_argument("--profile", help="AWS profile (a real account; no local cloud)")
    group.add_argument("--region", help="AWS region (a real account; no local cloud)")
    group.add_argument(
        "--state-dir",
        default=str(DEFAULT_STATE_DIR),
        help="local cloud state dir (default: .streamline/local)",
    )
    group.add_argument("--stage", default="dev", help="pipeline stage (default: dev)")


@dataclass
class Target:
    """A client factory for one target, with the stage whose stacks it reads."""

    endpoint_url: str | None
    profile: str | None
    region: str | None
    stage: str = "dev"
    _factory: Callable[[str], Any] | None = field(default=None, repr=False)
    #: Seconds a local call may take before it is an error (status: a hung cloud says so fast).
    read_timeout: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Target:
        stage = str(getattr(args, "stage", "dev"))
        if not _STAGE.fullmatch(stage):
            raise TargetError(f"--stage must be letters, digits and dashes, got {stage[:40]!r}")
        if getattr(args, "profile", None) or getattr(args, "region", None):
            return cls(None, args.profile, args.region, stage)
        try:
            info = StateDir(args.state_dir).running()
        except (StaleStateError, StateDirError) as exc:
            raise TargetError(str(exc)) from None
        if info is None:
            raise TargetError(
                f"no local cloud is running (state dir {args.state_dir}); start one with "
                "`streamline local up --detach`, or pass --profile/--region for an AWS account"
            )
        return cls(info.endpoint_url, None, None, stage)

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this target."""
        if self._factory is not None:
            return self._factory(service)
        if self.endpoint_url is not None:
            from streamline.local.cloud import make_client

            return make_client(service, self.endpoint_url, read_timeout=self.read_timeout)
        import boto3

        session = boto3.Session(profile_name=self.profile, region_name=self.region)
        return session.client(service)  # type: ignore[call-overload]

    def stack_outputs(self) -> dict[str, str]:
        """Every output of this stage's stacks, merged (the pipeline's names and URLs)."""
        cfn = self.client("cloudformation")
        merged: dict[str, str] = {}
        for concern in ("ingest", "processing", "orchestration", "monitoring"):
            name = f"streamline-{self.stage}-{concern}"
            try:
                stacks = cfn.describe_stacks(StackName=name)["Stacks"]
            except Exception as exc:
                if not is_aws_error(exc):
                    raise
                text = one_line(str(exc))
                if "does not exist" in text:
                    raise TargetError(f"stack {name} is not deployed here") from None
                # credentials, a cloud that does not answer, access denied: say which
                raise TargetError(f"cannot read stack {name}: {text}") from None
            for output in stacks[0].get("Outputs", []):
                merged[output["OutputKey"]] = output["OutputValue"]
        return merged
