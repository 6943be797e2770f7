"""The metrics endpoint in process, on a loopback port of its own (``metrics.listen``): prometheus-client's text
format with the audit events counted by event, decision and reason category, access decisions by rule, logins,
lockouts, reloads, the state gauges, process metrics, and the request latency by outcome."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from mitmproxy import http
from mitmproxy.test import tflow
from prometheus_client.parser import text_string_to_metric_families

from govgate.addons.context import respond
from govgate.addons.metrics import MetricsEndpoint
from govgate.core.audit_event import AuditDecision, AuditEvent
from govgate.pages.refusal import forbidden, unavailable
from tests.addons.flows import judged, request_flow, response_to
from tests.policies import policy
from tests.runtime import InProcessRuntime

REPO = Path(__file__).resolve().parents[2]


async def fetch(port: int, target: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def scrape(runtime: InProcessRuntime) -> tuple[bytes, list[str]]:
    endpoint = MetricsEndpoint(runtime)
    await endpoint.running()
    try:
        assert endpoint.server is not None
        port = endpoint.server.sockets[0].getsockname()[1]
        answer = await fetch(port, b"/metrics")
        assert (await fetch(port, b"/other")).startswith(b"HTTP/1.1 404 ")
    finally:
        await endpoint.done()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body.decode().splitlines()


async def test_metrics_count_decisions_and_report_the_gateways_health() -> None:
    runtime = InProcessRuntime(policy=policy(metrics={"listen": "127.0.0.1:0"}), policy_version=3, data_version=5)
    now = runtime.now()
    for decision, reason in ((AuditDecision.ALLOW, None), (AuditDecision.REFUSE, "denied"),
                             (AuditDecision.REFUSE, "denied")):
        runtime.audit.emit(AuditEvent(event="access", time=now, decision=decision, reason=reason, rule="office system"))
    runtime.audit.emit(AuditEvent(event="login.success", time=now, decision=AuditDecision.ALLOW, account="zs"))
    runtime.audit.emit(AuditEvent(event="mfa.failure", time=now, decision=AuditDecision.REFUSE, reason="credentials"))
    runtime.audit.emit(AuditEvent(event="lockout", time=now, decision=AuditDecision.REFUSE, reason="locked"))
    runtime.audit.emit(AuditEvent(event="policy.refused", time=now, decision=AuditDecision.REFUSE,
                                  reason="3 problem(s)", extra={"what": "policy"}))
    runtime.audit.emit(AuditEvent(event="policy.reload", time=now, decision=AuditDecision.OK, reason="SIGHUP",
                                  extra={"what": "data"}))
    runtime.audit_writer.queued = 4
    runtime.metrics.store_error()
    runtime.metrics.audit_error("write_failed")
    built = runtime.snapshot.geoip.built
    assert built is not None
    runtime.clock.set(built + timedelta(days=40))
    head, lines = await scrape(runtime)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: text/plain; version=" in head  # the text exposition format
    found = samples(lines)
    expected: list[tuple[str, dict[str, str], float]] = [
        ("govgate_events_total", {"event": "access", "decision": "allow", "reason": ""}, 1),
        ("govgate_events_total", {"event": "access", "decision": "refuse", "reason": "denied"}, 2),
        ("govgate_decisions_total", {"rule": "office system", "decision": "refuse", "reason": "denied"}, 2),
        ("govgate_decisions_total", {"rule": "office system", "decision": "allow", "reason": ""}, 1),
        ("govgate_logins_total", {}, 1),
        ("govgate_login_failures_total", {"stage": "mfa", "reason": "credentials"}, 1),
        ("govgate_lockouts_total", {}, 1),
        ("govgate_policy_reloads_total", {"what": "policy", "result": "refused"}, 1),
        ("govgate_policy_reloads_total", {"what": "data", "result": "ok"}, 1),
        ("govgate_store_errors_total", {}, 1),
        ("govgate_audit_errors_total", {"kind": "write_failed"}, 1),
        ("govgate_policy_version", {}, 3), ("govgate_data_version", {}, 5), ("govgate_store_reachable", {}, 1),
        ("govgate_audit_writable", {}, 1), ("govgate_audit_queued", {}, 4), ("govgate_audit_lost", {}, 0),
        ("govgate_geoip_database_age_seconds", {}, 40 * 86400), ("govgate_policy_refused", {}, 0),
    ]
    for name, labels, value in expected:
        assert found.get((name, frozenset(labels.items()))) == value, (name, labels)
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)
    # No label carries free text: a refused policy's "3 problem(s)" is not a label value.
    assert not [line for line in lines if "problem" in line and not line.startswith("#")]


def samples(lines: list[str]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text, read back with prometheus-client's own parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families("\n".join(lines) + "\n") for s in family.samples}


def test_free_text_reasons_become_other() -> None:
    runtime = InProcessRuntime()
    runtime.audit.emit(AuditEvent(event="access", time=runtime.now(), decision="refuse", reason="zhangsan's laptop"))
    assert runtime.metrics.sample("govgate_events_total", {"event": "access", "decision": "refuse",
                                                           "reason": "other"}) == 1


def answered(flow: http.HTTPFlow, started_ago: float) -> http.HTTPFlow:
    flow.request.timestamp_start = time.time() - started_ago
    return flow


def test_each_answer_is_timed_by_its_outcome() -> None:
    runtime = InProcessRuntime()
    endpoint = MetricsEndpoint(runtime)
    forwarded = answered(request_flow(path="/news/"), 0.2)
    judged(runtime, forwarded)
    endpoint.response(response_to(forwarded))
    refused = answered(request_flow(path="/oa/"), 0.001)
    ctx = judged(runtime, refused)
    respond(refused, forbidden("network", ctx.request_id, as_json=False))
    endpoint.response(refused)
    login = answered(request_flow(path="/__govgate/login"), 0.001)
    ctx = judged(runtime, login)
    respond(login, unavailable(ctx.request_id, "store", as_json=False))
    endpoint.response(login)
    failed = tflow.tflow(err=True)
    failed.response = None
    endpoint.error(failed)
    count = "govgate_request_duration_seconds_count"
    assert runtime.metrics.sample(count, {"outcome": "forward"}) == 1
    assert runtime.metrics.sample(count, {"outcome": "refuse"}) == 1
    assert runtime.metrics.sample(count, {"outcome": "login"}) == 1
    assert runtime.metrics.sample(count, {"outcome": "error"}) == 1
    # The forwarded request took 0.2 s: in the 0.25 s bucket, not the 0.1 s one.
    bucket = "govgate_request_duration_seconds_bucket"
    assert runtime.metrics.sample(bucket, {"outcome": "forward", "le": "0.1"}) == 0
    assert runtime.metrics.sample(bucket, {"outcome": "forward", "le": "0.25"}) == 1


async def test_without_metrics_listen_nothing_is_served() -> None:
    endpoint = MetricsEndpoint(InProcessRuntime())
    await endpoint.running()
    assert endpoint.server is None


MULTIPROCESS = """
import os, sys
from govgate.core.audit_event import AuditEvent
from govgate.metrics import GatewayMetrics, GatewayState
from datetime import datetime, UTC
metrics = GatewayMetrics()
metrics.count_event(AuditEvent(event="lockout", time=datetime.now(UTC), decision="refuse", reason="locked"))
if sys.argv[1] == "scrape":
    state = GatewayState(store_reachable=True, audit_writable=True, audit_queued=0, audit_lost=0, policy_version=1,
                         data_version=1, geoip_age_seconds=1.0, policy_refused=False)
    sys.stdout.write(metrics.exposition(state)[0].decode())
"""


def test_with_prometheus_multiproc_dir_every_process_is_counted_in_one_scrape(tmp_path: Path) -> None:
    # prometheus-client chooses its multiprocess mode when imported, from the environment: real processes.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROCESS, "count"], env=env, check=True, cwd=REPO)
    scrape = subprocess.run([sys.executable, "-c", MULTIPROCESS, "scrape"], env=env, check=True, cwd=REPO,
                            capture_output=True, text=True).stdout
    found = {(s.name, frozenset(s.labels.items())): s.value
             for family in text_string_to_metric_families(scrape) for s in family.samples}
    assert found[("govgate_lockouts_total", frozenset())] == 3  # two processes before, and the scraping one
    assert list(tmp_path.glob("counter_*.db"))
