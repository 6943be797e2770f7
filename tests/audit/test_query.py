"""The auditor's questions as filters, and the policy timeline, without a gateway (Art. 20, Art. 19)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.audit_chain import ChainCrypto, event_record, seal_line
from govgate.core.audit_event import AuditEvent
from govgate.core.audit_history import OverseasRule, PolicyTimeline, policy_from_text
from govgate.core.audit_query import GrantFilter, RecordFilter, event_matches, parse_client, parse_when
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm

from .conftest import START, TZ

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=TZ)


def test_since_takes_a_duration_before_now_or_an_iso_time_in_the_gateways_timezone() -> None:
    assert parse_when("7d", NOW, TZ) == NOW - timedelta(days=7)
    assert parse_when("1h30m", NOW, TZ) == NOW - timedelta(minutes=90)
    assert parse_when("2026-11-24T09:00", NOW, TZ) == datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
    assert parse_when("2026-11-24T09:00+00:00", NOW, TZ).utcoffset() == timedelta(0)
    for bad in ("7x", "last week", "", "0d"):
        with pytest.raises(ValueError):  # noqa: PT011 - the message is the parsers'; any ValueError refuses it
            parse_when(bad, NOW, TZ)


def test_event_patterns_are_globs_or_dotted_prefixes() -> None:
    assert event_matches("login.*", "login.failure")
    assert not event_matches("login.*", "mfa.failure")
    assert event_matches("login.", "login.success")
    assert event_matches("admin.account.?*", "admin.account.add")
    assert event_matches("access", "access")
    assert not event_matches("access", "access.x")
    assert not event_matches("login*", None)


def test_grant_filter_by_any_index_or_words() -> None:
    grant = {"index": 2, "reason": "参加国际会议 (London)"}
    assert GrantFilter.parse(None).matches(grant)
    assert GrantFilter.parse("2").matches(grant)
    assert not GrantFilter.parse("0").matches(grant)
    assert GrantFilter.parse("london").matches(grant)
    assert not GrantFilter.parse("any").matches(None)


def record(**kw: object) -> dict[str, object]:
    fields: dict[str, object] = {"event": "access", "time": START, "client": "81.2.69.160", "country": "GB",
                                 "account": "traveller", "decision": "allow", "rule": "office system",
                                 "extra": {"grant": {"index": 0, "reason": "会议"}}}
    fields.update(kw)
    return event_record(AuditEvent(**fields), GatewayKeys.from_bytes(bytes(range(32))))  # type: ignore[arg-type]


def line_of(rec: dict[str, object]) -> bytes:
    return seal_line(rec, 5, "0" * 64, ChainCrypto(GatewayKeys.from_bytes(bytes(range(32))),
                                                   AuditAlgorithm.HMAC_SHA256))


names = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)


@settings(max_examples=300, deadline=None)
@given(account=st.one_of(st.none(), names), wanted=names, decision=st.sampled_from(["allow", "refuse", None]),
       country=st.sampled_from(["GB", "CN", None]), event=st.sampled_from(["access", "login.success", "leave.view"]))
def test_looking_at_the_bytes_first_never_drops_a_matching_record(account: str | None, wanted: str,
                                                                  decision: str | None, country: str | None,
                                                                  event: str) -> None:
    rec = record(account=account, decision=decision, country=country, event=event)
    line = line_of(rec)
    for flt in (RecordFilter(account=wanted), RecordFilter(account=account), RecordFilter(decision="allow"),
                RecordFilter(country="gb"), RecordFilter(events=("access", "leave.view")),
                RecordFilter(events=("login.*",)), RecordFilter(grant=GrantFilter()),
                RecordFilter(rule="office system", account=account, events=(event,))):
        if flt.matches(rec):
            assert flt.candidate(line), flt


@settings(max_examples=200, deadline=None)
@given(recs=st.lists(st.tuples(st.one_of(st.none(), names), st.sampled_from(["allow", "refuse", None]),
                               st.sampled_from(["GB", "CN", None]),
                               st.sampled_from(["access", "login.success", "leave.view"])), max_size=12),
       bounds=st.tuples(st.integers(0, 12), st.integers(0, 12)), wanted=names)
def test_candidates_of_a_batch_are_the_lines_candidate_lets_through(
        recs: list[tuple[str | None, str | None, str | None, str]], bounds: tuple[int, int], wanted: str) -> None:
    lines = [line_of(record(account=a, decision=d, country=c, event=e)) for a, d, c, e in recs]
    start, stop = min(bounds[0], len(lines)), min(bounds[1], len(lines))
    for flt in (RecordFilter(), RecordFilter(account=wanted), RecordFilter(account="traveller", country="gb"),
                RecordFilter(decision="allow", events=("access", "leave.view")), RecordFilter(events=("login.*",)),
                RecordFilter(events=("access",)), RecordFilter(grant=GrantFilter(), decision="refuse")):
        assert flt.candidates(lines, start, stop) == [i for i in range(start, stop) if flt.candidate(lines[i])], flt


def test_filters_combine_and_events_alternate() -> None:
    rec = record()
    assert RecordFilter(events=("login.*", "access"), account="traveller", country="GB").matches(rec)
    assert not RecordFilter(events=("login.*",), account="traveller").matches(rec)
    assert RecordFilter(client=parse_client("81.2.69.0/24")).matches(rec)
    assert RecordFilter(client=parse_client("::ffff:81.2.69.160")).matches(rec)
    assert not RecordFilter(since=START + timedelta(seconds=1)).matches(rec)
    assert RecordFilter(since=START, until=START).matches(rec)
    assert not RecordFilter(overseas=True).matches(rec)  # nobody to judge it: not claimed overseas
    assert RecordFilter(overseas=True).matches(rec, lambda r, when: when == START)


POLICY = """\
version: 1
gateway: {{listen: "127.0.0.1:8443", upstream: "http://127.0.0.1:8080", public_hosts: [a.gov.cn], insecure: true,
          key_file: k}}
geoip: {{database: geo.mmdb, home_countries: [CN], unknown: {unknown}}}
networks: {{office: [10.0.0.0/8], partner: [216.160.83.0/24]}}
accounts_file: accounts.yaml
access:
  - {{name: the rest, paths: ["/**"], allow: deny}}
audit: {{dir: audit/, retention_days: 365}}
"""


def test_overseas_is_judged_as_the_policy_of_the_time_defined_it(tmp_path: Path) -> None:
    strict = policy_from_text(POLICY.format(unknown="overseas").encode(), str(tmp_path / "policy.yaml"))
    lenient = policy_from_text(POLICY.format(unknown="home").encode(), str(tmp_path / "policy.yaml"))
    assert strict is not None
    assert lenient is not None
    rule, home = OverseasRule(strict), OverseasRule(lenient)
    assert rule.overseas("81.2.69.160", "GB")
    assert not rule.overseas("111.235.160.1", "CN")
    assert rule.overseas("198.51.100.7", None)  # unknown country: as geoip.unknown says
    assert not home.overseas("198.51.100.7", None)
    assert not rule.overseas("216.160.83.57", "US")  # in a listed network
    assert not rule.overseas("192.168.1.9", "GB")  # private addresses are always home
    assert not rule.overseas("::1", None)
    assert not rule.overseas(None, "GB")
    assert policy_from_text(b"version: 1\n", "p") is None


def test_the_timeline_knows_the_policy_in_force_and_when_the_gateway_stopped() -> None:
    timeline = PolicyTimeline()
    t = [START + timedelta(minutes=m) for m in range(6)]
    for when, event, sha, decision in ((t[0], "policy.load", "a", "ok"), (t[1], "policy.refused", "x", "refuse"),
                                       (t[2], "policy.reload", "b", "ok"), (t[3], "gateway.stop", "b", "ok"),
                                       (t[4], "policy.load", "c", "ok")):
        timeline.add({"event": event, "time": when.isoformat(), "policy_sha256": sha, "decision": decision,
                      "policy_text": f"policies/{sha}.yaml"})
    assert timeline.in_force(t[0] - timedelta(seconds=1)) is None
    assert [timeline.in_force(at).sha256 for at in (t[0], t[1], t[2], t[4], t[5])] == ["a", "a", "b", "c", "c"]
    stopped = timeline.in_force(t[3] + timedelta(seconds=1))
    assert stopped is not None
    assert (stopped.sha256, stopped.stopped, stopped.end) == ("b", True, t[3])
    assert [p.sha256 for p in timeline.overlapping(t[1], t[2])] == ["a", "b"]
    assert [p.sha256 for p in timeline.overlapping(t[4], None)] == ["c"]
