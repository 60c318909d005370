"""`python -m streamline` runs the command line (the same as the `streamline` script)."""

from __future__ import annotations

from streamline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
