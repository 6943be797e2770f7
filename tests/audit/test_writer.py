"""The audit writer: emit only enqueues, the thread writes, rotates, fails closed and recovers (Art. 20)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from govgate.audit.verify import verify_dir
from govgate.audit.writer import AuditWriter
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Audit, AuditAlgorithm
from govgate.errors import AuditChainBroken
from tests.runtime import Clock
from tests.waiting import wait_for

from .conftest import access_event, audit_config, write_days

MakeWriter = Callable[..., AuditWriter]


def records(directory: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(directory.glob("audit-*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return out


def access_records(directory: Path) -> list[dict[str, object]]:
    return [r for r in records(directory) if r["event"] == "access"]


def test_emitted_events_are_written_chained_and_verify(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    for n in range(50):
        writer.emit(access_event(n, clock.now))
    assert writer.close(timeout=5)
    got = access_records(tmp_path)
    assert [r["request_id"] for r in got] == [f"req-{n}" for n in range(50)]
    first = got[0]
    for name in (
        "time",
        "event",
        "request_id",
        "client",
        "country",
        "device",
        "account",
        "method",
        "host",
        "path",
        "rule",
        "decision",
        "reason",
        "article",
        "seq",
        "prev",
        "mac",
    ):
        assert name in first
    assert verify_dir(tmp_path, keys).count == 51


def test_records_are_written_within_the_flush_interval_without_close(
    tmp_path: Path, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path), flush_interval=0.05)
    writer.start()
    writer.emit(access_event(1, clock.now))
    wait_for(lambda: len(access_records(tmp_path)) == 1, timeout=2)
    assert writer.healthy, writer.last_error


def count_appends(writer: AuditWriter) -> list[int]:
    """The size of each batch the writer appends from now on (the real ``AuditDir.append`` still runs)."""
    sizes: list[int] = []
    append = writer._dir.append

    def counted(records: Sequence[Mapping[str, object]], now: datetime) -> list[bytes]:
        sizes.append(len(records))
        return append(records, now)

    writer._dir.append = counted  # type: ignore[method-assign]
    return sizes


def test_a_steady_trickle_is_written_in_rounds_not_one_batch_per_fsync(
    tmp_path: Path, clock: Clock, make_writer: MakeWriter
) -> None:
    """Fewer than a batch queued waits for the next round (docs/audit.md: every 200 ms, or 4096 records): under a
    steady load the writer takes the log's lock a few times a second, not once per fsync, so several workers on one
    chain do not queue on its lock, and the thread does not contend for the GIL with the event loop every few
    milliseconds."""
    writer = make_writer(audit_config(tmp_path), flush_interval=0.2)
    writer.start()
    writer.flush()
    sizes = count_appends(writer)
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 1.0:  # about 1,000 records a second for a second
        writer.emit(access_event(n, clock.now))
        n += 1
        time.sleep(0.001)
    assert writer.flush(timeout=5)
    assert sum(sizes) == n
    assert len(sizes) <= 8, f"{len(sizes)} batches for {n} records in 1 s: {sizes}"
    assert len(access_records(tmp_path)) == n


def test_a_full_batch_is_written_at_once_without_waiting_for_the_round(
    tmp_path: Path, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path), flush_interval=30, batch_size=100)
    writer.start()
    writer.flush()
    for n in range(250):
        writer.emit(access_event(n, clock.now))
    # Two full batches go at once; the 50 left wait for the round (30 s here) or a flush.
    wait_for(lambda: len(access_records(tmp_path)) == 200, timeout=5)
    time.sleep(0.3)
    assert len(access_records(tmp_path)) == 200
    assert writer.flush(timeout=5)
    assert len(access_records(tmp_path)) == 250


def test_secrets_in_extra_fields_are_replaced_by_a_keyed_hash(
    tmp_path: Path, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    event = AuditEvent(
        event="login.failure",
        time=clock.now,
        account="zhangsan",
        extra={"password": "hunter2-秘密", "session_id": "sess-abc", "attempt": 3},
    )
    writer.emit(event)
    writer.emit(AuditEvent(event="logout", time=clock.now, extra={"session_id": "sess-abc"}))
    assert writer.close(timeout=5)
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("audit-*.jsonl"))
    assert "hunter2" not in text
    assert "sess-abc" not in text
    failure, logout = [r for r in records(tmp_path) if r["event"] in ("login.failure", "logout")]
    assert failure["attempt"] == 3
    assert str(failure["session_id"]).startswith("h:")
    assert failure["session_id"] == logout["session_id"]  # correlatable, not revealed


def test_an_event_with_a_value_json_cannot_hold_is_written_as_text_and_does_not_block_the_log(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(AuditEvent(event="odd", time=clock.now, extra={"when": clock.now}))  # type: ignore[dict-item]
    writer.emit(access_event(2, clock.now))
    assert writer.close(timeout=5)
    odd = [r for r in records(tmp_path) if r["event"] == "odd"]
    assert odd[0]["when"] == str(clock.now)
    assert [r["request_id"] for r in access_records(tmp_path)] == ["req-2"]
    verify_dir(tmp_path, keys)


def test_text_that_is_not_utf8_is_written_escaped_and_does_not_block_the_log(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    # mitmproxy keeps header bytes that are not UTF-8 as lone surrogates ("Host: \xff" is "\udcff").
    writer = make_writer(audit_config(tmp_path), flush_interval=0.02)
    writer.start()
    odd = AuditEvent(event="access", time=clock.now, request_id="odd", host="\udcff", method="G\udcffT",
                     path="/\udcfe", account="\udcfd", extra={"session": "\udcfc", "note": "\ud83d\ude00 \ude00\ud83d"})
    writer.emit(odd)
    writer.emit(access_event(1, clock.now))
    assert writer.flush(timeout=5)
    assert writer.healthy, writer.last_error
    assert writer.close(timeout=5)
    got = access_records(tmp_path)
    assert [r["request_id"] for r in got] == ["odd", "req-1"]
    assert (got[0]["host"], got[0]["method"], got[0]["path"]) == ("\udcff", "G\udcffT", "/\udcfe")
    assert got[0]["note"] == "\U0001f600 \ude00\ud83d"  # a surrogate pair reads back as its character
    for path in tmp_path.glob("audit-*.jsonl"):
        path.read_bytes().decode("utf-8")  # the file stays valid UTF-8
    assert verify_dir(tmp_path, keys).count == 3


def test_midnight_seals_the_day_and_opens_the_next_with_a_link(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path), flush_interval=0.02)
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.flush()
    clock.advance(timedelta(days=1))  # no event at all on the new day: the rotation still happens
    wait_for(lambda: (tmp_path / "audit-2026-11-24.jsonl").exists())
    day1 = (tmp_path / "audit-2026-11-23.jsonl").read_text().splitlines()
    assert json.loads(day1[-1])["event"] == "audit.seal"
    day2 = (tmp_path / "audit-2026-11-24.jsonl").read_text().splitlines()
    assert json.loads(day2[0])["prev_file"] == "audit-2026-11-23.jsonl"
    assert verify_dir(tmp_path, keys).files == 2


def test_a_restart_after_a_day_down_seals_the_old_day(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    clock.advance(timedelta(days=3))
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(9, clock.now))
    assert writer.close(timeout=5)
    assert sorted(p.name for p in tmp_path.glob("audit-*")) == ["audit-2026-11-23.jsonl", "audit-2026-11-26.jsonl"]
    assert verify_dir(tmp_path, keys).count == 4 + 2


def test_a_start_after_midnight_seals_the_closed_day_even_without_requests(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    clock.advance(timedelta(days=1))
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    wait_for(lambda: (tmp_path / "audit-2026-11-24.jsonl").exists())
    assert writer.close(timeout=5)
    last = json.loads((tmp_path / "audit-2026-11-23.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "audit.seal"
    assert verify_dir(tmp_path, keys).count == 1 + 2 + 1 + 1


def test_deleting_the_log_under_a_running_writer_is_recorded_by_the_chain_it_continues(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    target = tmp_path / "audit"
    writer = make_writer(audit_config(target))
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.flush()
    shutil.rmtree(target)
    writer.emit(access_event(2, clock.now))
    assert writer.close(timeout=5)
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(target, keys)
    assert (info.value.file, info.value.line) == ("audit-2026-11-23.jsonl", 1)
    assert info.value.what.startswith("missing")


def test_an_incomplete_line_left_by_a_crash_is_cut_and_reported(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    with open(tmp_path / "audit-2026-11-23.jsonl", "ab") as f:
        f.write(b'{"account":"half a rec')
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(5, clock.now))
    assert writer.close(timeout=5)
    repair = [r for r in records(tmp_path) if r["event"] == "audit.repair"]
    assert repair
    assert repair[0]["dropped_bytes"] == len(b'{"account":"half a rec')
    verify_dir(tmp_path, keys)


def test_a_day_file_left_empty_by_a_crash_is_removed_and_the_chain_goes_on(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    (tmp_path / "audit-2026-11-24.jsonl").write_bytes(b'{"alg":"hmac')  # the link was being written
    clock.advance(timedelta(days=1))
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(3, clock.now))
    assert writer.close(timeout=5)
    assert [r["event"] for r in records(tmp_path)][-4:] == ["audit.seal", "audit.link", "audit.repair", "access"]
    verify_dir(tmp_path, keys)


def test_an_altered_last_record_is_reported_by_verify_but_does_not_stop_the_log(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=1, per_day=3)
    path = tmp_path / "audit-2026-11-23.jsonl"
    path.write_bytes(path.read_bytes().replace(b"/oa/doc/2", b"/oa/doc/7"))
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(8, clock.now))
    assert writer.close(timeout=5)
    assert [r["event"] for r in records(tmp_path)][-2:] == ["audit.damaged", "access"]
    assert [r["seq"] for r in records(tmp_path)] == list(range(6))
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert (info.value.file, info.value.line) == ("audit-2026-11-23.jsonl", 4)
    lines = path.read_bytes().split(b"\n")
    del lines[3]
    path.write_bytes(b"\n".join(lines))  # without the altered line, everything else still chains
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert (info.value.file, info.value.line) == ("audit-2026-11-23.jsonl", 4)
    assert info.value.what.startswith("missing")


def test_a_write_failure_makes_the_writer_unhealthy_and_it_recovers_by_itself(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    target = tmp_path / "audit"
    target.write_text("a file where the audit directory should be\n")
    writer = make_writer(audit_config(target), flush_interval=0.02, retry_interval=0.02)
    writer.start()
    writer.emit(access_event(1, clock.now))
    wait_for(lambda: not writer.healthy)
    assert writer.last_error is not None
    assert str(target) in writer.last_error
    writer.emit(access_event(2, clock.now))
    target.unlink()
    wait_for(lambda: writer.healthy and writer.queued == 0)
    assert writer.last_error is None
    assert [r["request_id"] for r in access_records(target)] == ["req-1", "req-2"]
    verify_dir(target, keys)


def test_a_full_disk_fails_closed_and_writing_resumes_when_space_returns(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    target = tmp_path / "small"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        writer = make_writer(audit_config(target), flush_interval=0.02, retry_interval=0.02, batch_size=64)
        writer.start()
        n = 0
        while writer.healthy:
            writer.emit(access_event(n, clock.now, path="/oa/" + "x" * 400))
            n += 1
            if n % 64 == 0:
                wait_for(lambda: writer.queued == 0 or not writer.healthy)
            assert n < 10_000
        assert writer.last_error is not None
        assert "No space" in writer.last_error
        verify_dir(target, keys)  # what made it to disk is intact: a failed batch is cut back
        subprocess.run(["mount", "-o", "remount,size=4m", str(target)], check=True)
        wait_for(lambda: writer.healthy and writer.queued == 0)
        assert writer.close(timeout=5)
        assert len(access_records(target)) == n
        verify_dir(target, keys)
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_full_queue_drops_new_events_counts_them_and_says_so_when_writing_resumes(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    target = tmp_path / "audit"
    target.write_text("not a directory\n")
    writer = make_writer(audit_config(target), flush_interval=0.02, retry_interval=0.02, max_queue=10, batch_size=4)
    writer.start()
    for n in range(30):
        writer.emit(access_event(n, clock.now))
    assert writer.lost > 0
    wait_for(lambda: not writer.healthy)
    target.unlink()
    assert writer.close(timeout=5)
    got = records(target)
    lost = [r for r in got if r["event"] == "audit.lost"]
    assert len(lost) == 1
    assert lost[0]["lost"] == writer.lost
    assert len([r for r in got if r["event"] == "access"]) + writer.lost == 30
    verify_dir(target, keys)


def test_emit_never_raises_even_when_nothing_can_be_written(tmp_path: Path, clock: Clock) -> None:
    writer = AuditWriter(
        audit_config(tmp_path / "x"),
        GatewayKeys.from_bytes(b"\x02" * 32),
        clock.now.tzinfo,  # type: ignore[arg-type]
        clock=clock,
        max_queue=3,
    )
    for n in range(10):
        writer.emit(access_event(n, clock.now))
    assert not writer.healthy  # never started: records are not being written
    assert writer.lost == 7


def test_reconfigure_switches_directory_and_algorithm(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    writer = make_writer(audit_config(first))
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.flush()
    writer.reconfigure(audit_config(second, algorithm=AuditAlgorithm.HMAC_SM3))
    wait_for(lambda: writer._new_audit is None)  # applied by the thread
    writer.emit(access_event(2, clock.now))
    assert writer.close(timeout=5)
    assert verify_dir(first, keys).count == 2
    assert verify_dir(second, keys, AuditAlgorithm.HMAC_SM3).count == 2


def test_files_younger_than_retention_are_kept_and_older_pruned_only_when_asked(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=3, per_day=1)  # 2026-11-23 .. 25
    clock.now = clock.now.replace(year=2027, month=11, day=24)  # 23rd is 366 days old, 24th 365
    keep = make_writer(audit_config(tmp_path, prune=False))
    keep.start()
    keep.emit(access_event(1, clock.now))
    assert keep.close(timeout=5)
    assert (tmp_path / "audit-2026-11-23.jsonl").exists()
    prune = make_writer(audit_config(tmp_path, prune=True))
    prune.start()
    assert prune.flush()
    wait_for(lambda: not (tmp_path / "audit-2026-11-23.jsonl").exists())
    assert prune.close(timeout=5)
    assert (tmp_path / "audit-2026-11-24.jsonl").exists()
    assert [r["files"] for r in records(tmp_path) if r["event"] == "audit.prune"] == ["audit-2026-11-23.jsonl"]
    verify_dir(tmp_path, keys)


def test_pruning_never_happens_below_a_year_of_retention(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    write_days(tmp_path, keys, days=2, per_day=1)
    clock.advance(timedelta(days=300))
    writer = make_writer(Audit(dir=tmp_path, retention_days=30, prune=True))
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.close(timeout=5)
    assert (tmp_path / "audit-2026-11-23.jsonl").exists()


def test_the_log_is_private_to_the_gateway(tmp_path: Path, clock: Clock, make_writer: MakeWriter) -> None:
    writer = make_writer(audit_config(tmp_path / "audit"))
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.close(timeout=5)
    path = next((tmp_path / "audit").glob("audit-*.jsonl"))
    assert os.stat(path).st_mode & 0o007 == 0


FSIZE_SCRIPT = r"""
import json, resource, signal, sys, time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from govgate.audit.writer import AuditWriter
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Audit

def wait(cond):
    deadline = time.monotonic() + 20
    while not cond():
        assert time.monotonic() < deadline, "deadline"
        time.sleep(0.01)

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
tz = ZoneInfo("Asia/Shanghai")
writer = AuditWriter(Audit(dir=Path(sys.argv[1]), retention_days=365), GatewayKeys.from_bytes(bytes(range(32))), tz,
                     flush_interval=0.01, retry_interval=0.01, batch_size=8)
writer.start()
n = 0
while writer.healthy:
    writer.emit(AuditEvent(event="access", time=datetime.now(tz), request_id=f"r{n}", decision="allow"))
    n += 1
    if n % 8 == 0:
        wait(lambda: writer.queued == 0 or not writer.healthy)
    assert n < 5000
error = writer.last_error
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
wait(lambda: writer.healthy and writer.queued == 0)
print(json.dumps({"emitted": n, "error": error, "closed": writer.close(timeout=10)}))
"""


def test_a_file_size_limit_fails_writes_and_they_resume_when_it_is_lifted(tmp_path: Path, keys: GatewayKeys) -> None:
    # Works without root (unlike a tmpfs): RLIMIT_FSIZE in a child process stands in for a full disk.
    target = tmp_path / "audit"
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "File too large" in result["error"]
    assert result["closed"] is True
    assert len(access_records(target)) == result["emitted"]
    verify_dir(target, keys)


@pytest.mark.parametrize("how", ["truncated in place", "replaced by a shorter copy"])
def test_records_erased_from_the_end_under_a_running_writer_are_reported_by_verify_and_the_log(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter, how: str
) -> None:
    path = tmp_path / "audit-2026-11-23.jsonl"
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    for n in range(5):
        writer.emit(access_event(n, clock.now))
    assert writer.flush()
    lines = path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 6  # link + 5
    kept = b"".join(line + b"\n" for line in lines[:-3])  # the last 3 whole lines are cut
    if how == "truncated in place":
        os.truncate(path, len(kept))
    else:
        copy = tmp_path / "edit.tmp"
        copy.write_bytes(kept)
        os.replace(copy, path)
    writer.emit(access_event(5, clock.now))
    assert writer.close(timeout=5)
    got = records(tmp_path)
    assert [r["event"] for r in got][-2:] == ["audit.damaged", "access"]
    damaged = got[-2]
    assert damaged["file"] == "audit-2026-11-23.jsonl"
    expected = "the file shrank" if how == "truncated in place" else "the file was replaced"
    assert str(damaged["found"]).startswith(expected)
    assert [r["seq"] for r in got] == [0, 1, 2, 6, 7]  # chained on from memory: the gap stays visible
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert (info.value.file, info.value.line) == ("audit-2026-11-23.jsonl", 4)
    assert info.value.what.startswith("missing: 3 records")


def test_records_erased_and_papered_over_by_another_process_are_still_reported(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    path = tmp_path / "audit-2026-11-23.jsonl"
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    for n in range(5):
        writer.emit(access_event(n, clock.now))
    assert writer.flush()
    lines = path.read_bytes().split(b"\n")[:-1]
    os.truncate(path, sum(len(line) + 1 for line in lines[:-3]))
    # Another writer (a `govgate account ...` process) appends after the cut, chaining onto it.
    write_days(tmp_path, keys, days=1, per_day=3)
    writer.emit(access_event(9, clock.now))
    assert writer.close(timeout=5)
    assert "audit.damaged" in [r["event"] for r in records(tmp_path)]
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(tmp_path, keys)
    assert info.value.file == "audit-2026-11-23.jsonl"


def test_appends_by_another_process_between_the_writers_batches_are_not_taken_for_damage(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    writer = make_writer(audit_config(tmp_path))
    writer.start()
    writer.emit(access_event(1, clock.now))
    assert writer.flush()
    write_days(tmp_path, keys, days=1, per_day=2)
    writer.emit(access_event(2, clock.now))
    assert writer.close(timeout=5)
    assert "audit.damaged" not in [r["event"] for r in records(tmp_path)]
    assert verify_dir(tmp_path, keys).count == 1 + 1 + 2 + 1


def test_a_writer_that_makes_no_progress_is_unhealthy_until_it_does(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    # Art. 20: found in review: while another process held the log's lock (a `govgate account` or `audit verify`
    # stopped with Ctrl-Z, a hung disk), the writer waited, health said writable and staff requests were served
    # with their records only in memory (a crash meanwhile lost them all).
    writer = make_writer(audit_config(tmp_path), flush_interval=0.02, stall_after=0.3)
    writer.start()
    writer.emit(access_event(0, clock.now))
    assert writer.flush(timeout=5)
    lock = os.open(tmp_path / ".lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process holds the log
        writer.emit(access_event(1, clock.now))
        wait_for(lambda: not writer.healthy)
        assert writer.last_error is not None
        assert "without finishing" in writer.last_error
    finally:
        os.close(lock)  # released: the round finishes, and the writer is healthy again
    wait_for(lambda: writer.healthy and writer.queued == 0)
    assert writer.last_error is None
    assert writer.close(timeout=5)
    assert [r["request_id"] for r in access_records(tmp_path)] == ["req-0", "req-1"]
