"""The writer's fast path (``prepared_record``) writes byte for byte what the general path writes.

``docs/audit.md`` ("Performance"): the writer encodes an event's canonical form before it takes the log's lock;
the lines on disk must stay exactly those of ``seal_line(event_record(...))``, or logs written before would not
compare with logs written after, and ``verify`` would find "modified" records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.audit_chain import (
    ChainCrypto,
    PreparedRecord,
    event_record,
    parse_line,
    prepared_record,
    seal_line,
)
from govgate.core.audit_event import AuditDecision, AuditEvent
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
