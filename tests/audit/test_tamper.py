"""Every kind of tampering with the audit log is found, at the right `file:line` (Art. 20)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.audit.verify import verify_dir
from govgate.core.audit_chain import canonical
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken

from .conftest import START, write_days

DAY1, DAY2, DAY3 = "audit-2026-11-23.jsonl", "audit-2026-11-24.jsonl", "audit-2026-11-25.jsonl"


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def broken(directory: Path, keys: GatewayKeys) -> AuditChainBroken:
    with pytest.raises(AuditChainBroken) as info:
        verify_dir(directory, keys)
    return info.value


@pytest.fixture
def log(tmp_path: Path, keys: GatewayKeys) -> Path:
    assert write_days(tmp_path, keys, days=3, per_day=5) == [DAY1, DAY2, DAY3]
    return tmp_path


def test_an_untouched_log_verifies_with_count_and_time_range(log: Path, keys: GatewayKeys) -> None:
    report = verify_dir(log, keys)
    assert report.files == 3
    assert report.count == 7 + 7 + 6  # link + 5 + seal, twice; link + 5 in the open day
    assert report.first_time is not None
    assert report.first_time.isoformat() == "2026-11-23T09:00:00+08:00"
    assert report.last_time is not None
    assert report.last_time.isoformat() == "2026-11-25T09:00:00+08:00"


def test_editing_one_byte_is_found_as_modified(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY2
    lines = lines_of(path)
    lines[3] = (
        lines[3]
        .replace(b'"decision":"allow"', b'"decision":"allaw"', 1)
        .replace(b'"decision":"refuse"', b'"decision":"refusa"', 1)
    )
    write_lines(path, lines)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY2, 4)
    assert err.what.startswith("modified")


def test_deleting_a_line_is_found_as_missing(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY1
    lines = lines_of(path)
    del lines[2]
    write_lines(path, lines)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY1, 3)
    assert err.what.startswith("missing")


def test_swapping_two_lines_is_found_as_reordered(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY3
    lines = lines_of(path)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(path, lines)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY3, 3)
    assert err.what.startswith("reordered")


def test_a_forged_line_with_a_recomputed_hash_but_no_key_is_found_as_inserted(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY2
    lines = lines_of(path)
    # The forger knows the format and links the forged record properly, but has no key for the MAC;
    # they also renumber and relink every record after it, as best they can without the key.
    good = json.loads(lines[2])
    forged = dict(good, path="/oa/forged", request_id="forged")
    forged.pop("mac")
    forged["prev"] = hashlib.sha256(lines[2]).hexdigest()
    forged["seq"] = good["seq"] + 1
    body = canonical(forged)
    forged_line = body[:-1] + b',"mac":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'
    lines.insert(3, forged_line)
    write_lines(path, lines)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY2, 4)
    assert "MAC" in err.what


def test_a_forged_line_between_two_records_is_named_inserted(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY2
    lines = lines_of(path)
    forged = json.loads(lines[2])
    forged["path"] = "/oa/forged"
    forged.pop("mac")
    body = canonical(forged)
    lines.insert(3, body[:-1] + b',"mac":"' + b"0" * 64 + b'"}')
    write_lines(path, lines)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY2, 4)
    assert err.what.startswith("inserted")


def test_deleting_a_whole_day_is_found_at_the_next_days_link(log: Path, keys: GatewayKeys) -> None:
    (log / DAY2).unlink()
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY3, 1)
    assert err.what.startswith("missing")
    assert DAY2 in err.what


def test_deleting_the_oldest_day_is_found(log: Path, keys: GatewayKeys) -> None:
    (log / DAY1).unlink()
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY2, 1)
    assert err.what.startswith("missing")
    assert DAY1 in err.what


def test_deleting_the_newest_day_is_found_after_the_last_seal(log: Path, keys: GatewayKeys) -> None:
    (log / DAY3).unlink()
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY2, 8)
    assert err.what.startswith("missing")


def test_truncating_the_tail_of_a_closed_day_is_found(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY1
    lines = lines_of(path)
    write_lines(path, lines[:4])  # keeps the link and three records; two records and the seal are gone
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY1, 5)
    assert err.what.startswith("truncated")


def test_cutting_a_line_in_half_is_found_as_truncated(log: Path, keys: GatewayKeys) -> None:
    path = log / DAY3
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY3, 6)
    assert err.what.startswith("truncated")


def test_renaming_a_file_is_found(log: Path, keys: GatewayKeys) -> None:
    (log / DAY3).rename(log / "audit-2026-11-26.jsonl")
    err = broken(log, keys)
    assert (err.file, err.line) == ("audit-2026-11-26.jsonl", 1)


def test_moving_a_record_to_another_day_is_found(log: Path, keys: GatewayKeys) -> None:
    day1, day2 = lines_of(log / DAY1), lines_of(log / DAY2)
    moved = day1.pop(3)
    day2.insert(3, moved)
    write_lines(log / DAY1, day1)
    write_lines(log / DAY2, day2)
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY1, 4)


def test_a_log_made_with_another_key_does_not_verify(log: Path) -> None:
    other = GatewayKeys.from_bytes(b"\x01" * 32)
    err = broken(log, other)
    assert (err.file, err.line) == (DAY1, 1)


def test_an_sm3_log_verifies_and_its_tampering_is_found(tmp_path: Path, keys: GatewayKeys) -> None:
    # Art. 17 (第十七条): 国密 SM3 for the MAC and the chain.
    write_days(tmp_path, keys, days=2, per_day=3, algorithm=AuditAlgorithm.HMAC_SM3)
    assert verify_dir(tmp_path, keys, AuditAlgorithm.HMAC_SM3).count == 5 + 4
    assert b'"alg":"hmac-sm3"' in (tmp_path / DAY1).read_bytes()
    lines = lines_of(tmp_path / DAY2)
    lines[2] = lines[2].replace(b"/oa/doc/", b"/oa/dac/")
    write_lines(tmp_path / DAY2, lines)
    err = broken(tmp_path, keys)
    assert (err.file, err.line) == (DAY2, 3)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, bytes]]]:
    directory = tmp_path_factory.mktemp("pristine")
    keys = GatewayKeys.from_bytes(bytes(range(32)))
    write_days(directory, keys, days=2, per_day=4)
    return directory, [(p.name, p.read_bytes()) for p in sorted(directory.glob("audit-*.jsonl"))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_editing_any_byte_of_any_record_breaks_verify_at_that_record(
    pristine: tuple[Path, list[tuple[str, bytes]]], tmp_path: Path, data: st.DataObject
) -> None:
    keys = GatewayKeys.from_bytes(bytes(range(32)))
    _, files = pristine
    target = data.draw(st.integers(0, len(files) - 1), label="file")
    name, content = files[target]
    pos = data.draw(st.integers(0, len(content) - 1), label="byte")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != content[pos]), label="value")
    edited = content[:pos] + bytes([new]) + content[pos + 1 :]
    # tmp_path is shared by all examples and hypothesis may draw the same edit twice: a fresh folder each time.
    case = Path(tempfile.mkdtemp(prefix=f"case-{target}-{pos}-{new}-", dir=tmp_path))
    for other_name, other in files:
        (case / other_name).write_bytes(edited if other_name == name else other)
    err = broken(case, keys)
    assert err.file == name
    assert err.line == content[:pos].count(b"\n") + 1


def test_a_log_spanning_a_change_of_algorithm_verifies(tmp_path: Path, keys: GatewayKeys) -> None:
    write_days(tmp_path, keys, days=1, per_day=2)
    write_days(tmp_path, keys, days=1, per_day=2, algorithm=AuditAlgorithm.HMAC_SM3, start=START + timedelta(days=1))
    assert verify_dir(tmp_path, keys, AuditAlgorithm.HMAC_SM3).count == 4 + 3
    assert b'"alg":"hmac-sm3"' in (tmp_path / DAY2).read_bytes()


# The head anchor (`.head`): what the chain alone cannot show, the newest records cut while nothing writes.

@pytest.mark.parametrize("cut", [1, 3, 6])
def test_cutting_the_newest_records_of_the_newest_day_is_found_as_truncated(
    log: Path, keys: GatewayKeys, cut: int
) -> None:
    path = log / DAY3
    lines = lines_of(path)
    write_lines(path, lines[:-cut] if cut < len(lines) else [])
    if cut == len(lines):
        path.unlink()  # the whole newest day, and with it nothing left to chain on
    err = broken(log, keys)
    if cut == len(lines):
        assert (err.file, err.line) == (DAY2, 8)  # after the seal of the day before
        assert err.what.startswith("missing")
    else:
        assert (err.file, err.line) == (DAY3, len(lines) - cut + 1)
        assert err.what.startswith("truncated")
        assert f"{cut} newest record(s) are missing" in err.what


def test_cutting_the_newest_day_and_the_seal_before_it_is_found(log: Path, keys: GatewayKeys) -> None:
    (log / DAY3).unlink()
    write_lines(log / DAY2, lines_of(log / DAY2)[:-1])  # the seal too: the chain alone looks complete
    err = broken(log, keys)
    assert err.what.startswith("truncated")


def test_a_missing_head_anchor_is_found(log: Path, keys: GatewayKeys) -> None:
    (log / ".head").unlink()
    err = broken(log, keys)
    assert (err.file, err.line) == (".head", 1)
    assert err.what.startswith("missing")


@pytest.mark.parametrize("edit", [(b'"seq":', b'"seq":1'), (b'"hash":"', b'"hash":"0'), (b'"file":"', b'"file":"x')])
def test_an_edited_head_anchor_is_found(log: Path, keys: GatewayKeys, edit: tuple[bytes, bytes]) -> None:
    head = log / ".head"
    data = head.read_bytes()
    assert edit[0] in data
    head.write_bytes(data.replace(edit[0], edit[1], 1))
    err = broken(log, keys)
    assert (err.file, err.line) == (".head", 1)
    assert err.what.startswith("modified")


def test_a_head_anchor_from_another_log_does_not_vouch_for_this_one(
    log: Path, keys: GatewayKeys, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other")
    write_days(other, keys, days=3, per_day=5, start=START + timedelta(minutes=1))
    (log / ".head").write_bytes((other / ".head").read_bytes())
    err = broken(log, keys)
    assert err.what.startswith("modified")


def test_the_writer_finds_records_cut_while_it_was_down_and_verify_names_the_gap(
    log: Path, keys: GatewayKeys
) -> None:
    path = log / DAY3
    lines = lines_of(path)
    write_lines(path, lines[:-2])
    # The gateway starts again: its first append compares the files with the anchor.
    write_days(log, keys, days=1, per_day=1, start=START + timedelta(days=2, hours=1))
    records = [json.loads(line) for line in lines_of(path)]
    damaged = [r for r in records if r["event"] == "audit.damaged"]
    assert len(damaged) == 1
    assert "the newest records were erased" in str(damaged[0]["found"])
    err = broken(log, keys)
    assert (err.file, err.line) == (DAY3, len(lines) - 1)  # the damaged record, right after the gap
    assert err.what.startswith("missing")


def test_cutting_records_and_deleting_the_anchor_stays_found_after_the_gateway_starts_again(
    log: Path, keys: GatewayKeys
) -> None:
    path = log / DAY3
    lines = lines_of(path)
    write_lines(path, lines[:-2])
    (log / ".head").unlink()
    assert broken(log, keys).what.startswith("missing")
    # The gateway starts again: it cannot know how much was cut, records what it found, and chains on.
    write_days(log, keys, days=1, per_day=1, start=START + timedelta(days=2, hours=1))
    err = broken(log, keys)  # the new anchor vouches for the new tail, but the finding stays in the log
    assert (err.file, err.line) == (DAY3, len(lines) - 1)
    assert "head anchor is missing" in err.what


def test_a_failing_folder_fsync_after_the_anchor_is_replaced_keeps_the_records(
    log: Path, keys: GatewayKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govgate.audit import log_dir
    from govgate.core.audit_chain import event_record

    from .conftest import TZ, access_event

    def failing(directory: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(log_dir, "_fsync_dir", failing)
    writer = log_dir.AuditDir(log, keys, AuditAlgorithm.HMAC_SHA256, TZ)
    now = START + timedelta(days=2, minutes=5)
    try:
        written = writer.append([event_record(access_event(99, now), keys)], now)
    finally:
        writer.close()
    assert len(written) == 1  # the records were written (and the anchor names them): nothing is undone
    assert verify_dir(log, keys).count == 7 + 7 + 6 + 1
