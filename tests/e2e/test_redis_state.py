"""Gateways sharing a real Redis (Art. 30 state across instances), and Redis outages failing closed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import OFFICE_ADDRESS, Upstream, add_account, start_gateway
from tests.e2e.login import Browser
from tests.policies import policy_data, write_policy
from tests.redis_server import RedisServer
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PASSWORD = "Common-redis-key-42"


def redis_policy(workdir: Path, upstream: Upstream, url: str) -> Path:
    policy = workdir / "policy.yaml"
    data = policy_data(workdir, upstream.url)
    data["state"] = {"redis": url, "timeout": "1s"}
    write_policy(policy, data)
    return policy


def test_a_session_opened_on_one_instance_works_on_another(
    upstream: Upstream, workdir: Path, redis_url: str
) -> None:
    policy = redis_policy(workdir, upstream, redis_url)
    secret = add_account(policy, "shared", PASSWORD)
    one, two = start_gateway(policy), start_gateway(policy)
    try:
        b = Browser(one.url, OFFICE_ADDRESS)
        assert b.login("shared", PASSWORD, secret).status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in b.http.cookies.items())
        r = httpx.get(two.url + "/echo/staff/x", headers={"Cookie": cookie, "X-Forwarded-For": OFFICE_ADDRESS})
        assert r.status_code == 200
        assert dict((k.lower(), v) for k, v in r.json()["headers"])["x-govgate-user"] == "shared"
    finally:
        one.stop()
        two.stop()


def test_two_instances_together_lock_after_exactly_max_failures(
    upstream: Upstream, workdir: Path, redis_url: str
) -> None:
    policy = redis_policy(workdir, upstream, redis_url)
    add_account(policy, "target", PASSWORD)
    one, two = start_gateway(policy), start_gateway(policy)
    try:
        a, b = Browser(one.url, "10.7.0.1"), Browser(two.url, "10.7.0.2")
        assert a.password("target", "Wrong-pass-word-1").status_code == 200
        assert b.password("target", "Wrong-pass-word-2").status_code == 200
        third = a.password("target", "Wrong-pass-word-3")  # max_failures: 3
        assert third.status_code == 429
        assert b.password("target", PASSWORD).status_code == 429  # the other instance sees the lock
    finally:
        one.stop()
        two.stop()


def test_redis_outage_fails_staff_paths_closed_and_recovers_by_itself(
    upstream: Upstream, workdir: Path, own_redis_server: RedisServer
) -> None:
    policy = redis_policy(workdir, upstream, own_redis_server.url)
    secret = add_account(policy, "outage", PASSWORD)
    gw = start_gateway(policy)
    try:
        b = Browser(gw.url, OFFICE_ADDRESS)
        assert b.login("outage", PASSWORD, secret).status_code == 303
        assert b.http.get("/oa/").status_code == 200
        own_redis_server.stop()
        down = b.http.get("/oa/")
        assert down.status_code == 503
        assert "暂时无法访问" in down.text
        # Quiet failures: a hundred staff requests during the outage are a line or two in the log, not a hundred.
        for _ in range(100):
            assert b.http.get("/oa/").status_code == 503
        outage_lines = [line for line in gw.output.lines if "store.unavailable" in line]
        assert 1 <= len(outage_lines) <= 4, outage_lines
        assert b.http.get("/news/").status_code == 200  # public paths keep working
        health = b.http.get("/__govgate/health")
        assert health.json()["store"]["reachable"] is False
        own_redis_server.start()  # an empty Redis: the old session is gone, so recovery means "go and log in"
        wait_for(lambda: b.http.get("/oa/").status_code == 303, 10, "recovery after Redis returns")
        assert b.http.get("/__govgate/health").json()["store"]["reachable"] is True
        assert b.login("outage", PASSWORD, secret).status_code == 303
        assert b.http.get("/oa/").status_code == 200
        assert "Traceback" not in gw.output.text()
    finally:
        gw.stop()


def test_two_instances_through_sentinel_share_sessions_lockouts_and_one_policy_file(
    upstream: Upstream, workdir: Path, redis_url: str, redis_sentinel: RedisServer
) -> None:
    # Several instances behind a TCP balancer (docs/deploy.md): one policy file, Redis found through Sentinel.
    policy = redis_policy(workdir, upstream, f"redis+sentinel://127.0.0.1:{redis_sentinel.port}/mymaster/0")
    secret = add_account(policy, "both", PASSWORD)
    add_account(policy, "locked", PASSWORD)
    one, two = start_gateway(policy), start_gateway(policy)
    try:
        assert one.health()["store"] == two.health()["store"] == {"reachable": True, "kind": "redis"}
        # Art. 30: a session opened on one instance is the same session on the other.
        a = Browser(one.url, OFFICE_ADDRESS)
        assert a.login("both", PASSWORD, secret).status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in a.http.cookies.items())

        def on_two(path: str) -> httpx.Response:
            return httpx.get(two.url + path, headers={"Cookie": cookie, "X-Forwarded-For": OFFICE_ADDRESS,
                                                      "Accept": "application/json"})

        assert on_two("/echo/staff/x").status_code == 200
        # A lock earned on both instances together holds on both.
        for gw, n in ((one, 1), (two, 2), (one, 3)):
            last = Browser(gw.url, f"10.7.1.{n}").password("locked", f"Wrong-pass-word-{n}")
        assert last.status_code == 429
        assert Browser(two.url, "10.7.1.9").password("locked", PASSWORD).status_code == 429
        # One policy file: a saved edit is applied by both, and the shared session meets the new rule on each.
        versions = (one.policy_version(), two.policy_version())
        data = policy_data(workdir, upstream.url)
        data["state"] = {"redis": f"redis+sentinel://127.0.0.1:{redis_sentinel.port}/mymaster/0", "timeout": "1s"}
        data["access"].insert(0, {"name": "closed for maintenance", "paths": ["/echo/staff/**"], "allow": "deny"})
        write_policy(policy, data)
        wait_for(lambda: one.policy_version() > versions[0] and two.policy_version() > versions[1], 10,
                 "both instances to reload the policy")
        assert one.health()["policy_sha256"] == two.health()["policy_sha256"]
        refused = on_two("/echo/staff/x")
        assert (refused.status_code, refused.json()["reason"]) == (403, "denied")
        assert a.http.get("/echo/staff/x").status_code == 403
        assert a.http.get("/oa/").status_code == 200  # still logged in on both: only the one path closed
        assert on_two("/oa/").status_code == 200
    finally:
        assert one.stop() == 0
        assert two.stop() == 0
