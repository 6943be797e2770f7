"""How tests run the `govgate` command: ``python -m govgate`` under the interpreter running the tests.

No test depends on where a virtual environment put the console script (``.venv/bin/govgate``); the one
test of the installed script itself is ``test_the_installed_command_runs`` (tests/decide/test_explain.py).
"""

from __future__ import annotations

import sys

GOVGATE: tuple[str, ...] = (sys.executable, "-m", "govgate")
