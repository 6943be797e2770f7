"""Every `govgate account` action writes its audit record even when its output pipe is closed early (Art. 20).

`govgate account add … | head -1` used to create the account, die of the closed pipe (exit 141) while printing
the TOTP URI, and record nothing. The record is now written before anything is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.accounts.test_account_cli import OTHER_PASSWORD, PASSWORD
from tests.policies import policy_data, write_policy

GOVGATE = (str(Path(sys.executable).parent / "govgate"),)  # the installed command, as an operator runs it


def run_into_a_closed_pipe(policy: Path, *argv: str, stdin: str = "") -> int:
    """Run ``govgate argv`` with stdout a pipe nobody reads (its read end closed before the first write)."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([*GOVGATE, *argv, "-p", str(policy)], stdout=write, stderr=subprocess.PIPE,
                              input=stdin.encode(), timeout=60, cwd=policy.parent)
    finally:
        os.close(write)
    assert b"Traceback" not in done.stderr
    return done.returncode


def admin_records(policy: Path) -> list[tuple[str, str]]:
    return [(r["event"], r["account"]) for p in sorted((policy.parent / "audit").glob("audit-*.jsonl"))
            for r in map(json.loads, p.read_text(encoding="utf-8").splitlines()) if r["event"].startswith("admin.")]


def test_head_1_after_account_add_still_records_the_account_it_created(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    policy = write_policy(tmp_path / "policy.yaml", policy_data(tmp_path))
    shell = f"printf '%s\\n' '{PASSWORD}' | {GOVGATE[0]} account add zhangsan --password-stdin -p {policy} | head -1"
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {shell}"], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("account zhangsan created")
    assert done.returncode == 141  # the pipe closed under it: the shell sees it, as before
    assert admin_records(policy) == [("admin.account.add", "zhangsan")]


@pytest.mark.parametrize("action", ["disable", "enable", "unlock", "reset-totp", "logout", "passwd"])
def test_every_action_records_itself_whatever_happens_to_its_output(tmp_path: Path, action: str) -> None:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    policy = write_policy(tmp_path / "policy.yaml", policy_data(tmp_path))
    assert run_into_a_closed_pipe(policy, "account", "add", "lisi", "--password-stdin", stdin=PASSWORD + "\n") == 141
    if action == "enable":
        assert run_into_a_closed_pipe(policy, "account", "disable", "lisi") == 141
    stdin = OTHER_PASSWORD + "\n" if action == "passwd" else ""
    extra = ("--password-stdin",) if action == "passwd" else ()
    assert run_into_a_closed_pipe(policy, "account", action, "lisi", *extra, stdin=stdin) == 141
    assert admin_records(policy)[-1] == (f"admin.account.{action}", "lisi")
    verify = subprocess.run([*GOVGATE, "audit", "verify", "-p", str(policy)], capture_output=True, timeout=60)
    assert verify.returncode == 0, verify.stdout


@pytest.mark.parametrize("argv", [("set", "lisi", "--groups", "staff,finance"), ("set", "lisi", "--expires", "never"),
                                  ("delete", "lisi")])
def test_set_and_delete_record_themselves_whatever_happens_to_their_output(tmp_path: Path,
                                                                           argv: tuple[str, ...]) -> None:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    policy = write_policy(tmp_path / "policy.yaml", policy_data(tmp_path))
    assert run_into_a_closed_pipe(policy, "account", "add", "lisi", "--expires", "2099-01-01", "--password-stdin",
                                  stdin=PASSWORD + "\n") == 141
    assert run_into_a_closed_pipe(policy, "account", *argv) == 141
    assert admin_records(policy)[-1] == (f"admin.account.{argv[0]}", "lisi")
    verify = subprocess.run([*GOVGATE, "audit", "verify", "-p", str(policy)], capture_output=True, timeout=60)
    assert verify.returncode == 0, verify.stdout
