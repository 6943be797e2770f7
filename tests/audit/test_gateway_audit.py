"""The audit log of a real `govgate run` process: a full disk refuses staff paths with 503 and recovers;
admin commands write beside the running gateway; SIGTERM flushes; `audit verify` accepts the result."""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.command import GOVGATE
from tests.e2e.harness import (
    OFFICE_ADDRESS,
    Upstream,
    add_account,
    start_gateway,
    start_upstream,
)
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "audit"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the file system holding ``directory``."""
    filler = directory / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler


def staff(url: str) -> httpx.Response:
    return httpx.get(url + "/oa/", headers={"X-Forwarded-For": OFFICE_ADDRESS}, follow_redirects=False, timeout=10)


def verify(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GOVGATE, "audit", "verify", "-p", str(policy)], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_full_disk_refuses_staff_paths_with_503_and_recovers_by_itself(
    upstream: Upstream, tmp_path: Path, small_disk: Path
) -> None:
    (tmp_path / "secrets").mkdir()
    policy = tmp_path / "policy.yaml"
    write_policy(policy, policy_data(tmp_path, upstream.url))
    gw = start_gateway(policy)
    try:
        assert staff(gw.url).status_code == 303  # to login: the log is writable
        filler = fill(small_disk)

        def refused() -> bool:
            staff(gw.url)  # each request is audited, so the writer meets the full disk
            return staff(gw.url).status_code == 503

        wait_for(refused, 15, "503 on a staff path while the audit log cannot be written")
        assert httpx.get(gw.url + "/", timeout=10).status_code == 200  # public paths still served
        health = httpx.get(gw.url + "/__govgate/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["audit"] == {"writable": False}
        filler.unlink()
        wait_for(lambda: staff(gw.url).status_code == 303, 15, "staff paths served again once the disk has room")
    finally:
        assert gw.stop() == 0
    done = verify(policy)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(small_disk.glob("audit-*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert any(r["event"] == "access" and r["decision"] == "unavailable" for r in records)


def test_admin_commands_write_beside_a_running_gateway_and_sigterm_flushes(upstream: Upstream, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    policy = tmp_path / "policy.yaml"
    write_policy(policy, policy_data(tmp_path, upstream.url))
    gw = start_gateway(policy)
    try:
        for n in range(3):
            staff(gw.url)
            add_account(policy, f"user{n}", "correct horse battery staple 9")
        staff(gw.url)
    finally:
        assert gw.stop() == 0
    done = verify(policy)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted((tmp_path / "audit").glob("audit-*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events.count("access") >= 4
    assert sum(1 for r in records if r.get("account") in ("user0", "user1", "user2") and r["event"] != "access") >= 3
    assert "policy.load" in events
