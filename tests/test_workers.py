"""The pure pieces of ``govgate run --workers N`` (``govgate/workers.py``): the count, the restart backoff, a
worker's role in its environment, the parent's status file, the reserved address, and health's ``worker_down``.
The processes themselves are tested for real in ``tests/e2e/test_workers.py``."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govgate.core.health import FAIL_CLOSED, HealthFacts, HealthReason, health_reasons
from govgate.pages.health import health
from govgate.workers import (
    ENV_NAMES,
    MAX_BACKOFF,
    STABLE_SECONDS,
    STALL_SECONDS,
    WorkerRole,
    cpu_count,
    describe_exit,
    failures_after,
    heartbeat_file,
    parse_workers,
    reserve_address,
    restart_delay,
    workers_alive,
    write_status,
)


def test_the_count_is_a_number_from_one_or_auto() -> None:
    assert parse_workers("1") == 1
    assert parse_workers("4") == 4
    assert parse_workers("auto") == parse_workers("AUTO") == cpu_count() >= 1
    for bad in ("0", "-2", "two", "", "1.5", "257"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_workers(bad)


def test_cpu_count_follows_this_process_affinity() -> None:
    assert cpu_count() == len(os.sched_getaffinity(0))


def test_restart_backoff_doubles_from_half_a_second_to_thirty() -> None:
    assert [restart_delay(n) for n in range(8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert restart_delay(10_000) == MAX_BACKOFF


def test_a_worker_that_ran_long_enough_starts_its_backoff_again() -> None:
    assert failures_after(0, 1.0) == 1
    assert failures_after(3, 1.0) == 4
    assert failures_after(5, STABLE_SECONDS) == 1
    assert restart_delay(failures_after(6, STABLE_SECONDS + 1)) == 0.5
    # killed for not listening within the start timeout (which may be longer than STABLE_SECONDS): it never ran,
    # so a worker that hangs at every start backs off instead of being started every 0.5 s for ever
    assert failures_after(5, STABLE_SECONDS + 1, hung=True) == 6
    assert restart_delay(failures_after(9, 600.0, hung=True)) == MAX_BACKOFF


def test_a_workers_role_travels_in_its_environment() -> None:
    role = WorkerRole(index=1, count=3, restarts=2, status_file=Path("/run/x/workers.json"), ready_fd=7,
                      parent_pid=42, ports=(("listen", 8443), ("metrics", 9100)))
    env = role.env()
    assert set(env) <= set(ENV_NAMES)
    assert WorkerRole.from_env(env) == role
    assert WorkerRole.from_env({}) is None
    assert role.name == "worker 2 of 3"
    # Port 0 in the policy: the port the parent reserved; any other port: the policy's own.
    assert role.port("listen", 0) == 8443
    assert role.port("listen", 443) == 443
    assert role.port("redirect", 0) == 0


def test_the_status_file_says_how_many_workers_are_alive(tmp_path: Path) -> None:
    status = tmp_path / "workers.json"
    assert workers_alive(status) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    write_status(status, [os.getpid(), int(dead.stdout), None])
    assert workers_alive(status) == (3, 1)
    write_status(status, [os.getpid()])
    assert workers_alive(status) == (1, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["workers.json"]  # no temporary file left
    status.write_text("{not json", encoding="utf-8")
    assert workers_alive(status) is None


def test_a_worker_whose_heartbeat_is_stale_is_not_alive(tmp_path: Path) -> None:
    status = tmp_path / "workers.json"
    write_status(status, [os.getpid(), os.getpid()])
    assert workers_alive(status) == (2, 2)  # no heartbeat yet: still starting
    now = time.monotonic()
    heartbeat_file(tmp_path, 0).write_text(repr(now - 1))
    heartbeat_file(tmp_path, 1).write_text(repr(now - STALL_SECONDS - 1))
    assert workers_alive(status, now) == (2, 1)  # its process exists, its event loop gives no sign of life
    # Monotonic time: a wall clock stepped forward (NTP, a resumed VM) makes no worker look stalled.
    heartbeat_file(tmp_path, 1).write_text(repr(now))
    assert workers_alive(status) == (2, 2)
    heartbeat_file(tmp_path, 1).write_text("")  # being written
    assert workers_alive(status, now) == (2, 2)


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "signal SIGKILL"


def test_the_reserved_address_holds_the_port_without_taking_connections() -> None:
    reserved = reserve_address("127.0.0.1", 0)
    try:
        port = reserved.getsockname()[1]
        assert port != 0
        # A worker binds the same port with SO_REUSEPORT and gets every connection.
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen()
        worker.settimeout(5)
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                conn, _ = worker.accept()
                conn.close()
        # Something already listening there (without SO_REUSEPORT): refused, as one gateway would be.
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            with pytest.raises(OSError, match="in use"):
                reserve_address("127.0.0.1", other.getsockname()[1]).close()
        worker.close()
    finally:
        reserved.close()


def test_a_worker_down_degrades_health_without_failing_closed() -> None:
    now = datetime.now(UTC)
    facts = HealthFacts(store_reachable=True, audit_writable=True, policy_refused=False, geoip_built=now, now=now,
                        workers_down=True)
    assert health_reasons(facts) == (HealthReason.WORKER_DOWN,)
    assert HealthReason.WORKER_DOWN not in FAIL_CLOSED
    page = health(policy_version=1, data_version=1, policy_sha256="x", store_kind="redis", store_reachable=True,
                  audit_writable=True, reasons=(HealthReason.WORKER_DOWN,), geoip_age_days=1.0,
                  workers={"worker": 0, "pid": 4711, "count": 2, "alive": 1})
    assert page.status == 200
    assert b'"workers": {"worker": 0, "pid": 4711, "count": 2, "alive": 1}' in page.body
    one = health(policy_version=1, data_version=1, policy_sha256="x", store_kind="memory", store_reachable=True,
                 audit_writable=True, reasons=(), geoip_age_days=1.0)
    assert b"workers" not in one.body  # one process: the page as it always was


def test_the_evidence_report_names_the_worker_of_each_start_and_stop() -> None:
    from govgate.core.audit_report import EvidenceCollector

    collector = EvidenceCollector(None, None)
    base = {"time": "2026-12-03T09:00:00+08:00", "decision": "ok", "policy_sha256": "ab" * 32, "version": "1"}
    collector.add({**base, "event": "gateway.start", "listen": ["https://0.0.0.0:443/"], "worker": 1, "restarts": 2})
    collector.add({**base, "event": "gateway.start", "listen": ["https://0.0.0.0:443/"]})  # one process: as before
    collector.add({**base, "event": "gateway.stop", "reason": "SIGTERM", "uptime_seconds": 60, "worker": 0})
    starts = [row.detail for row in collector.evidence.starts.rows]
    assert starts[0].endswith("listen https://0.0.0.0:443/ · worker 1, restarted 2×")
    assert starts[1].endswith("listen https://0.0.0.0:443/")
    assert collector.evidence.stops.rows[0].detail == "SIGTERM after 60 s · worker 0"


# A stand-in worker for the parent's own logic (real processes, no gateway): it reports ready at once, except
# as its first restart, where it hangs before listening.
_STAND_IN = """
import os, sys, time
if os.environ["GOVGATE_WORKER_RESTARTS"] != "1":
    os.write(int(os.environ["GOVGATE_WORKER_READY_FD"]), b'["http://127.0.0.1:1/"]\\n')
time.sleep(600)
"""


def test_a_restarted_worker_that_hangs_before_listening_is_killed_and_started_again(
        caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging
    import signal
    import time

    from govgate.workers import Supervisor

    async def scenario() -> list[int]:
        supervisor = Supervisor([sys.executable, "-c", _STAND_IN], 1, stop_timeout=5, ports=[],
                                upstream="http://portal", start_timeout=1.0)
        running = asyncio.create_task(supervisor.run())
        slot = supervisor.slots[0]
        restarts = []
        deadline = time.monotonic() + 30
        while not (slot.restarts == 2 and slot.ready):
            assert time.monotonic() < deadline, (slot.restarts, slot.ready)
            if slot.restarts == 0 and slot.ready and slot.proc is not None and slot.proc.returncode is None:
                restarts.append(slot.proc.pid)
                slot.proc.send_signal(signal.SIGKILL)  # the first worker dies; its restart hangs
                await slot.proc.wait()
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # the parent's own stop signal
        assert await asyncio.wait_for(running, 30) == 0
        return restarts

    with caplog.at_level(logging.INFO, logger="govgate.workers"):
        killed = asyncio.run(scenario())
    assert len(killed) == 1
    hung = [r.getMessage() for r in caplog.records if r.getMessage().startswith("worker.hung")]
    assert len(hung) == 1, hung
    assert "did not listen within 1 s" in hung[0]
    exits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("worker.exit")]
    assert len(exits) == 2, exits
    assert "killed: did not listen within 1 s" in exits[1]


_CLOSES_ITS_PIPE = """
import os, time
os.close(int(os.environ["GOVGATE_WORKER_READY_FD"]))  # no ready line: it never listened
time.sleep(600)
"""


def test_a_worker_that_closes_its_ready_pipe_without_listening_is_still_held_to_the_start_timeout() -> None:
    import asyncio
    import time

    from govgate.workers import Supervisor

    async def scenario() -> tuple[int, float]:
        supervisor = Supervisor([sys.executable, "-c", _CLOSES_ITS_PIPE], 1, stop_timeout=5, ports=[],
                                upstream="http://portal", start_timeout=1.0)
        started = time.monotonic()
        code = await asyncio.wait_for(supervisor.run(), 30)
        return code, time.monotonic() - started

    code, took = asyncio.run(scenario())
    assert code == 1
    assert took < 10
