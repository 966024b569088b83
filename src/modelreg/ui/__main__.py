"""``python -m modelreg.ui``: the same as ``modelreg ui``."""

from __future__ import annotations

import sys

from ..errors import ModelregError
from .cli import build_parser, run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ModelregError as exc:
        print(f"modelreg ui: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
