"""The metrics endpoint in process, on a loopback port of its own (``metrics.listen``): the counts of the audit
events by event, decision and reason, and the gauges of the store, the audit writer and the policy version."""

from __future__ import annotations

import asyncio

from govgate.addons.metrics import MetricsEndpoint
from govgate.core.audit_event import AuditDecision, AuditEvent
from tests.policies import policy
from tests.runtime import InProcessRuntime


async def fetch(port: int, target: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_metrics_count_decisions_and_report_the_gateways_health() -> None:
    runtime = InProcessRuntime(policy=policy(metrics={"listen": "127.0.0.1:0"}), policy_version=3)
    for decision, reason in ((AuditDecision.ALLOW, None), (AuditDecision.REFUSE, "denied"),
                             (AuditDecision.REFUSE, "denied")):
        runtime.audit.emit(AuditEvent(event="access", time=runtime.now(), decision=decision, reason=reason))
    runtime.audit_writer.queued = 4
    endpoint = MetricsEndpoint(runtime)
    await endpoint.running()
    try:
        assert endpoint.server is not None
        port = endpoint.server.sockets[0].getsockname()[1]
        answer = await fetch(port, b"/metrics")
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        body = text.decode()
        assert 'govgate_events_total{event="access",decision="allow",reason=""} 1' in body
        assert 'govgate_events_total{event="access",decision="refuse",reason="denied"} 2' in body
        for line in ("govgate_policy_version 3", "govgate_store_reachable 1", "govgate_audit_writable 1",
                     "govgate_audit_queued 4", "govgate_audit_lost 0"):
            assert line in body.splitlines()
        assert (await fetch(port, b"/other")).startswith(b"HTTP/1.1 404 ")
    finally:
        await endpoint.done()


async def test_without_metrics_listen_nothing_is_served() -> None:
    endpoint = MetricsEndpoint(InProcessRuntime())
    await endpoint.running()
    assert endpoint.server is None
