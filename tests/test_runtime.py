"""``InProcessRuntime``, the runtime the tests build addons with, is a whole ``govgate.runtime.Runtime``."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_address

from govgate.core.accounts import Accounts
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.runtime import Runtime
from tests.accounts.builders import make_account
from tests.policies import NOW, TZ, policy
from tests.runtime import InProcessRuntime


def protocol_members(protocol: type) -> dict[str, object]:
    return {name: value for name, value in vars(protocol).items() if not name.startswith("_")}


def test_the_in_process_runtime_has_every_member_of_the_runtime_protocol() -> None:
    # When the Protocol grows (a store, metrics, …), this fails until the test runtime has the new member too.
    runtime = InProcessRuntime()
    members = protocol_members(Runtime)
    assert set(members) >= {"policy", "keys", "audit", "now", "snapshot", "store", "audit_writer", "metrics",
                            "server_tls", "policy_version", "data_version", "policy_refused", "changed_files",
                            "reload"}
    for name, declared in members.items():
        assert hasattr(runtime, name), f"InProcessRuntime lacks {name!r} of govgate.runtime.Runtime"
        if inspect.isfunction(declared):
            assert callable(getattr(runtime, name)), name
    assert isinstance(runtime.policy, Policy)
    assert isinstance(runtime.keys, GatewayKeys)


def test_the_snapshot_follows_the_policy_and_accounts_the_test_puts_in() -> None:
    runtime = InProcessRuntime()
    first = runtime.snapshot
    assert first.policy is runtime.policy
    assert runtime.snapshot is first  # built once, not per request
    assert len(first.accounts) == 0
    assert first.geoip.country(ip_address("81.2.69.160")) == "GB"
    runtime.policy = policy(session={"idle_timeout": "5m", "absolute_timeout": "8h"})
    assert runtime.snapshot.policy is runtime.policy
    assert runtime.snapshot.compiled is not first.compiled
    runtime.accounts = Accounts((make_account("zhangsan"),))
    assert runtime.snapshot.accounts.get("zhangsan") is not None


def test_emitted_events_are_counted_as_the_gateways_sink_counts_them_for_metrics() -> None:
    runtime = InProcessRuntime()
    runtime.audit.emit(AuditEvent(event="access", time=runtime.now(), decision="allow"))
    runtime.audit.emit(AuditEvent(event="access", time=runtime.now(), decision="allow"))
    assert runtime.metrics.sample("govgate_events_total", {"event": "access", "decision": "allow", "reason": ""}) == 2
    assert runtime.metrics.sample("govgate_decisions_total", {"rule": "", "decision": "allow", "reason": ""}) == 2
    assert [e.event for e in runtime.events] == ["access", "access"]


async def test_nothing_is_watched_so_nothing_is_reloaded() -> None:
    runtime = InProcessRuntime()
    assert runtime.changed_files() is None
    assert await runtime.reload(why="test", force=True) is False
    assert runtime.policy_version == 1


def test_now_is_the_tests_clock_in_the_policys_timezone() -> None:
    runtime = InProcessRuntime()
    assert runtime.now() == NOW
    runtime.clock.set(datetime(2026, 12, 31, 20, 0, tzinfo=UTC))
    assert runtime.now() == datetime(2027, 1, 1, 4, 0, tzinfo=TZ)
    # The zone's wall clock with the instant's fixed offset (govgate.core.wall_time), as the live runtime gives it.
    assert runtime.now().isoformat() == "2027-01-01T04:00:00+08:00"
    assert runtime.now().tzinfo == timezone(timedelta(hours=8))
    runtime.clock.advance(timedelta(minutes=5))
    assert runtime.now() == datetime(2027, 1, 1, 4, 5, tzinfo=TZ)


def test_emitted_events_are_kept_in_order_and_shared_under_another_policy() -> None:
    runtime = InProcessRuntime()
    other = runtime.with_policy(policy(session={"idle_timeout": "5m", "absolute_timeout": "8h"}))
    runtime.audit.emit(AuditEvent(event="a", time=runtime.now()))
    other.audit.emit(AuditEvent(event="b", time=other.now()))
    assert [e.event for e in runtime.events] == ["a", "b"]
    assert other.policy.session.idle_timeout == timedelta(minutes=5)
    assert runtime.policy.session.idle_timeout == timedelta(minutes=15)
    assert other.keys is runtime.keys
    assert other.store is runtime.store
    assert other.clock is runtime.clock
