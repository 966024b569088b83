"""``python -m modelreg``: the same as the ``modelreg`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
