"""Long audit work shows progress on a terminal (stderr, only when it is a TTY) and stays quiet in scripts."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from govgate.core.keys import GatewayKeys

from .conftest import write_days

GOVGATE = (str(Path(sys.executable).parent / "govgate"),)  # the installed command, as an operator runs it


def run_with_stderr_on_a_terminal(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Run ``argv`` with stderr on a pseudo-terminal (stdout a pipe); returns (exit code, stdout, terminal output)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "GOVGATE_PROGRESS_DELAY": "0", "COLUMNS": "100"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, env=env)
    os.close(terminal)
    seen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    out = proc.stdout.read() if proc.stdout else b""
    return proc.wait(30), out, seen


def test_verify_backup_show_and_report_draw_a_bar_on_a_terminal_and_nothing_in_a_pipe(
    tmp_path: Path, keys: GatewayKeys
) -> None:
    directory = tmp_path / "audit"
    write_days(directory, keys, days=3, per_day=200)
    key_file = tmp_path / "gateway.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    source = ["--dir", str(directory), "--key-file", str(key_file)]
    commands = {
        "audit verify": ["audit", "verify", *source],
        "audit backup": ["audit", "backup", str(tmp_path / "copy"), *source],
        "audit show": ["audit", "show", *source, "--account", "nobody"],
        "audit report": ["audit", "report", *source, "--since", "3650d"],
    }
    for what, argv in commands.items():
        code, out, terminal = run_with_stderr_on_a_terminal([*GOVGATE, *argv])
        assert code == 0, (what, out, terminal)
        assert what.encode() in terminal, (what, terminal)
        assert b"B/s" in terminal or b"%|" in terminal
        assert b"%|" not in out  # the bar never goes to stdout
        piped = subprocess.run([*GOVGATE, *argv], capture_output=True, timeout=60,
                               env={**os.environ, "GOVGATE_PROGRESS_DELAY": "0"})
        assert piped.returncode == 0
        assert piped.stderr == b"", (what, piped.stderr)
        if what == "audit backup":
            (tmp_path / "copy").rename(tmp_path / f"copy-{len(list(tmp_path.iterdir()))}")
