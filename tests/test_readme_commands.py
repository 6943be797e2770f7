"""README.md's two set-up commands are the ones the scripts and CI use (CI runs them as written: .ci/run)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    done = subprocess.run([str(REPO / "scripts" / "readme-commands")], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_the_readme_has_exactly_the_two_commands_ci_runs() -> None:
    assert readme_commands() == ["scripts/setup && .venv/bin/govgate demo", "scripts/test"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    # CI takes the commands from the README itself, so the two cannot drift apart.
    assert "scripts/readme-commands" in ci
    assert 'bash -c "${commands[0]}"' in ci
    assert 'exec bash -c "${commands[1]}"' in ci


def test_the_commands_name_scripts_that_exist_and_the_command_setup_makes() -> None:
    first, second = readme_commands()
    for word in (*first.split(" && ")[0].split(), second):
        assert os.access(REPO / word, os.X_OK), word
    assert ".venv/bin/govgate" in first
    # setup installs the project, whose console script is `govgate`, into .venv (pyproject.toml).
    assert re.search(r'^govgate = "govgate\.cli:main"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert "scripts/setup --test" in (REPO / "scripts" / "test").read_text()


def test_setup_installs_from_the_hashed_lock_files() -> None:
    setup = (REPO / "scripts" / "setup").read_text(encoding="utf-8")
    assert "--require-hashes -r \"$lock\"" in setup
    assert "--no-deps -e ." in setup
    # A failed install stops the set-up (it used to run under `|| true`).
    assert not re.search(r"pip install[^\n]*\|\| true", setup)
    assert setup.count('|| fail "pip install') == 3
    for name in ("runtime.txt", "test.txt", "sslyze.txt"):
        text = (REPO / "requirements" / name).read_text(encoding="utf-8")
        pins = re.findall(r"^([A-Za-z0-9._-]+)==\S+ \\$", text, re.MULTILINE)
        assert pins, name
        assert text.count("--hash=sha256:") >= len(pins)
    runtime = (REPO / "requirements" / "runtime.txt").read_text(encoding="utf-8")
    for dependency in ("mitmproxy", "prometheus-client", "redis", "maxminddb"):
        assert re.search(rf"^{dependency}==", runtime, re.MULTILINE), dependency
