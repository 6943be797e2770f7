"""`python -m govgate`, the way every test starts the command: it runs the CLI and passes its exit code on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.command import GOVGATE


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOVGATE, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_python_m_govgate_help_lists_the_commands_and_exits_0(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)  # from any folder: nothing depends on the repository being the cwd
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: govgate ")
    for command in ("run", "check", "explain", "demo", "account", "schema", "audit"):
        assert f"\n    {command} " in result.stdout, command


def test_python_m_govgate_passes_the_commands_exit_code_on(tmp_path: Path) -> None:
    refused = run("check", "-p", str(tmp_path / "absent.yaml"), cwd=tmp_path)
    assert refused.returncode == 1
    assert "cannot read the policy file" in refused.stdout
    assert run("no-such-command", cwd=tmp_path).returncode == 2  # argparse's usage error
