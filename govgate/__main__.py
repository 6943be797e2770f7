"""``python -m govgate``: the same command as the installed ``govgate`` script, with its exit code."""

from __future__ import annotations

import sys

from govgate.cli import main

if __name__ == "__main__":
    sys.exit(main())
