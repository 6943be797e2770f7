"""The writer's fast path (``prepared_record``) writes byte for byte what the general path writes.

``docs/audit.md`` ("Performance"): the writer encodes an event's canonical form before it takes the log's lock;
the lines on disk must stay exactly those of ``seal_line(event_record(...))``, or logs written before would not
compare with logs written after, and ``verify`` would find "modified" records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.audit_chain import (
    ChainCrypto,
    PreparedRecord,
    event_record,
    line_hash,
    link_record,
    parse_line,
    prepared_record,
    seal_line,
    seal_lines,
    time_json,
)
from govgate.core.audit_event import AuditDecision, AuditEvent
from govgate.core.keys import Purpose
from govgate.core.policy.model import AuditAlgorithm
from tests.audit.conftest import START, TZ, access_event
from tests.runtime import fixed_keys

KEYS = fixed_keys()
CRYPTOS = {a: ChainCrypto(KEYS, a) for a in AuditAlgorithm}

# Any text, lone surrogates (mitmproxy's surrogateescape), quotes, controls and non-BMP characters included.
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
MAYBE_TEXT = st.none() | TEXT | st.sampled_from(["审批", '"\\', "\udcff", "\ud83d\ude00", "\ud83d", "a\x00b\u2028"])
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([TZ, UTC, timezone(timedelta(hours=-3, minutes=-30))]))


def _both(event: AuditEvent, seq: int, prev: str, algorithm: AuditAlgorithm) -> tuple[bytes, bytes]:
    crypto = CRYPTOS[algorithm]
    general = seal_line(event_record(event, KEYS), seq, prev, crypto)
    fast = seal_line(prepared_record(event, KEYS), seq, prev, crypto)
    return general, fast


@settings(max_examples=300, deadline=None)
@given(
    fields=st.fixed_dictionaries({name: MAYBE_TEXT for name in (
        "request_id", "client", "country", "device", "account", "method", "host", "path", "rule", "decision",
        "reason", "article")}),
    event=TEXT,
    when=TIMES,
    seq=st.integers(min_value=0, max_value=10**12),
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    algorithm=st.sampled_from(list(AuditAlgorithm)),
)
def test_prepared_lines_are_the_general_lines(fields: dict[str, str | None], event: str, when: datetime, seq: int,
                                              prev: str, algorithm: AuditAlgorithm) -> None:
    e = AuditEvent(event=event, time=when, **fields)  # type: ignore[arg-type]
    general, fast = _both(e, seq, prev, algorithm)
    assert fast == general


def test_the_bench_and_gateway_events_take_the_fast_path_and_verify() -> None:
    for n in range(50):
        e = access_event(n, START + timedelta(seconds=n), decision=AuditDecision.ALLOW if n % 2 else "refuse",
                         path=f"/oa/workflow/{n}/view?tab=审批")
        prepared = prepared_record(e, KEYS)
        assert type(prepared) is PreparedRecord
        assert dict(prepared) == event_record(e, KEYS)  # the same mapping, for whoever reads it as one
        for algorithm in AuditAlgorithm:
            general, fast = _both(e, n, "ab" * 32, algorithm)
            assert fast == general
            parsed = parse_line(fast, CRYPTOS.__getitem__)
            assert parsed is not None
            assert parsed.mac_ok
            assert parsed.seq == n


def test_events_with_extra_fields_or_other_values_take_the_general_path() -> None:
    with_extra = access_event(1, START, extra={"grant": {"index": 3, "reason": "trip"}, "password": "hunter2"})
    assert type(prepared_record(with_extra, KEYS)) is dict
    assert prepared_record(with_extra, KEYS) == event_record(with_extra, KEYS)
    odd = access_event(2, START, rule=7)  # not text: written as json.dumps writes it
    assert type(prepared_record(odd, KEYS)) is dict
    general, fast = _both(odd, 1, "0" * 64, AuditAlgorithm.HMAC_SHA256)
    assert fast == general
    assert json.loads(fast)["rule"] == 7


def test_a_seal_signature_is_never_taken_from_the_fast_path() -> None:
    e = access_event(3, START)
    crypto = CRYPTOS[AuditAlgorithm.HMAC_SHA256]
    signed = seal_line(prepared_record(e, KEYS), 4, "0" * 64, crypto, sign=True)
    assert signed == seal_line(event_record(e, KEYS), 4, "0" * 64, crypto, sign=True)
    assert b'"signature":' in signed


# Zones with folds and gaps (New York, Lord Howe's half-hour shift), historical offsets with seconds (Amsterdam
# before 1937: +00:19:32), fixed offsets, UTC and naive times.
ZONES = [TZ, UTC, timezone(timedelta(hours=-3, minutes=-30)), ZoneInfo("America/New_York"),
         ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Europe/Amsterdam"), None]


@st.composite
def _time_runs(draw: st.DrawFn) -> list[datetime]:
    """Runs of times as the writer sees them: many in the same second, some a second or a fold apart."""
    zone = draw(st.sampled_from(ZONES))
    base = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), allow_imaginary=True))
    out: list[datetime] = []
    for step in draw(st.lists(st.integers(min_value=-2_000_000, max_value=2_000_000), min_size=1, max_size=30)):
        base = base + timedelta(microseconds=step)
        out.append(base.replace(tzinfo=zone, fold=draw(st.sampled_from([0, 1]))))
    return out


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(_time_runs(), min_size=1, max_size=4))
def test_the_time_text_is_isoformat_whatever_came_before(runs: list[list[datetime]]) -> None:
    for when in (w for run in runs for w in run):
        assert time_json(when) == json.dumps(when.isoformat())


def test_the_time_text_follows_a_fold_and_a_zone_change_within_one_wall_second() -> None:
    ny = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, 0, 5, tzinfo=ny)  # 01:30 EDT, then 01:30 EST (fold=1) an hour later
    for when in (first, first.replace(fold=1), first.replace(fold=1, microsecond=9), first,
                 first.replace(tzinfo=ZoneInfo("Europe/Paris")), first.replace(tzinfo=None),
                 first.replace(microsecond=0)):
        assert time_json(when) == json.dumps(when.isoformat())


class _OddZone(tzinfo):
    """A zone whose offset depends on the microseconds: never cached (only ZoneInfo and timezone are)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(minutes=1 if dt is not None and dt.microsecond % 2 else 2)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_the_time_text_of_other_zones_is_never_taken_from_the_last_second() -> None:
    zone = _OddZone()
    for us in (0, 1, 2, 3):
        when = datetime(2026, 12, 4, 11, 0, 0, us, tzinfo=zone)
        assert time_json(when) == json.dumps(when.isoformat())


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(st.fixed_dictionaries({name: MAYBE_TEXT for name in ("request_id", "client", "account", "path")}),
                    min_size=0, max_size=12),
    mixed=st.lists(st.booleans(), min_size=12, max_size=12),
    when=TIMES,
    seq=st.integers(min_value=0, max_value=10**12),
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    algorithm=st.sampled_from(list(AuditAlgorithm)),
)
def test_sealing_a_batch_is_sealing_each_record_in_turn(events: list[dict[str, str | None]], mixed: list[bool],
                                                        when: datetime, seq: int, prev: str,
                                                        algorithm: AuditAlgorithm) -> None:
    crypto = CRYPTOS[algorithm]
    records: list[Mapping[str, object]] = []
    for n, fields in enumerate(events):
        e = AuditEvent(event="access", time=when + timedelta(microseconds=n), **fields)  # type: ignore[arg-type]
        # Prepared records, general ones (extra fields, link records) and odd values, interleaved.
        records.append(prepared_record(e, KEYS) if mixed[n] else event_record(e, KEYS))
        if n % 5 == 4:
            records.append(link_record(when, "audit-2026-12-04.jsonl", None))
    expected: list[bytes] = []
    s, p = seq, prev
    for record in records:
        line = seal_line(record, s, p, crypto)
        expected.append(line)
        s, p = s + 1, line_hash(algorithm, line)
    out: list[bytes] = [b"already there"]
    assert seal_lines(records, seq, prev, crypto, out) == (s, p)
    assert out == [b"already there", *expected]


@pytest.mark.parametrize("limit", [2, 8, 12, 30])
def test_a_full_table_of_recurring_values_never_changes_a_line(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import govgate.core.audit_chain as chain

    monkeypatch.setattr(chain, "_SEEN_LIMIT", limit)
    monkeypatch.setattr(chain, "_SEEN", {None: "null"})
    crypto = CRYPTOS[AuditAlgorithm.HMAC_SHA256]
    fast_paths = 0
    for n in range(60):
        e = access_event(n, START + timedelta(milliseconds=n), account=f"user{n % 7}", host=f"h{n % 5}.gov.cn",
                         rule=f"rule {n % 3}", reason=None if n % 2 else f"why {n}")
        prepared = prepared_record(e, KEYS)
        fast_paths += type(prepared) is PreparedRecord
        assert seal_line(prepared, n, "cd" * 32, crypto) == seal_line(event_record(e, KEYS), n, "cd" * 32, crypto)
        assert len(chain._SEEN) <= limit
    assert fast_paths > 0 if limit >= 12 else fast_paths == 0  # ten values a record: they fit in 12, not in 8


@settings(max_examples=50, deadline=None)
@given(bodies=st.lists(st.binary(max_size=700), min_size=1, max_size=4))
def test_the_pre_keyed_macs_and_hashes_are_the_textbook_ones(bodies: list[bytes]) -> None:
    """The MAC and chain hash come from copies of states keyed once: each copy must start afresh (RFC 2104)."""
    key = KEYS.derive(Purpose.AUDIT_MAC)
    for body in bodies:  # several in turn: a copy must not carry what an earlier MAC or hash fed in
        assert CRYPTOS[AuditAlgorithm.HMAC_SHA256].mac(body) == hmac.new(key, body, hashlib.sha256).hexdigest()
        assert line_hash(AuditAlgorithm.HMAC_SHA256, body) == hashlib.sha256(body).hexdigest()
        sm3_mac = crypto_hmac.HMAC(key, hashes.SM3())
        sm3_mac.update(body)
        assert CRYPTOS[AuditAlgorithm.HMAC_SM3].mac(body) == sm3_mac.finalize().hex()
        sm3 = hashes.Hash(hashes.SM3())
        sm3.update(body)
        assert line_hash(AuditAlgorithm.HMAC_SM3, body) == sm3.finalize().hex()
