"""The gate in process (``govgate.addons.gate``, behind the context addon, as the gateway runs it): each decision
applied — forwarded with identity headers and without the gate's cookies, 303 to login, 403 pages in HTML or JSON,
503 when the store or the audit log is down — sessions that expire or were ended, overseas grants, the audit
record of each decision."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from govgate.addons.gate import Gate
from govgate.core.accounts import Accounts
from govgate.store.base import Session
from govgate.store.redis import RedisStore
from tests.accounts.builders import PASSWORD, SECRET, make_account
from tests.addons.flows import request_flow
from tests.addons.gateway import Browser, InProcessGateway
from tests.policies import at, grant, policy, standard_access
from tests.ports import free_port
from tests.runtime import InProcessRuntime

OFFICE_ADDRESS = "10.1.2.3"
CN_ADDRESS = "111.235.160.1"
GB_ADDRESS = "81.2.69.160"
US_ADDRESS = "216.160.83.57"


@pytest.fixture
def runtime() -> InProcessRuntime:
    return InProcessRuntime(accounts=Accounts((make_account("zhangsan"), make_account("homebody"),
                                               make_account("traveller"), make_account("napper"))))


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


# -- what each decision does -------------------------------------------------------------------------------------


async def test_public_path_is_forwarded_to_the_portal_and_audited_as_allowed(gateway: InProcessGateway,
                                                                             runtime: InProcessRuntime) -> None:
    r = await Browser(gateway).get("/news/2026/notice.html?x=1")
    assert r.forwarded
    [event] = runtime.events
    assert (event.event, event.decision, event.rule, event.path) == ("access", "allow", "public site",
                                                                     "/news/2026/notice.html")


async def test_unmatched_path_is_refused_with_a_chinese_first_page_and_request_id(gateway: InProcessGateway,
                                                                                  runtime: InProcessRuntime) -> None:
    r = await Browser(gateway).get("/admin/secret")
    assert r.status_code == 403
    body = r.text
    assert body.index("访问被拒绝") < body.index("Access denied")
    assert "denied" in body
    assert "request id" in body
    assert "the rest" not in body  # rule names are not shown to strangers
    [event] = runtime.events
    assert event.request_id is not None
    assert event.request_id in body
    assert (event.decision, event.reason, event.rule) == ("refuse", "denied", "the rest")


async def test_refusal_is_json_when_the_client_asks_for_json(gateway: InProcessGateway) -> None:
    r = await Browser(gateway).get("/admin/secret", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    data = r.json()
    assert data["reason"] == "denied"
    assert len(data["request_id"]) >= 8


async def test_staff_path_from_the_office_network_without_session_goes_to_login(gateway: InProcessGateway,
                                                                               runtime: InProcessRuntime) -> None:
    r = await Browser(gateway, OFFICE_ADDRESS).get("/oa/inbox?x=1")
    assert r.status_code == 303
    assert r.location == "/__govgate/login?next=/oa/inbox%3Fx%3D1"
    assert r.headers["cache-control"] == "no-store"
    [event] = runtime.events
    assert (event.decision, event.reason, event.article) == ("login", "session", "Art. 30")


async def test_staff_path_from_outside_the_office_networks_is_refused_as_network(gateway: InProcessGateway) -> None:
    r = await Browser(gateway, CN_ADDRESS).get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "network"


async def test_a_forwarded_staff_request_carries_identity_headers_and_none_of_the_gates_cookies(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("zhangsan", PASSWORD, SECRET)).status_code == 303
    r = await b.get("/oa/", headers=[("Cookie", f"portal=keep; govgate-session={b.cookies['govgate-session']}; "
                                                f"govgate-csrf={b.cookies['govgate-csrf']}")])
    seen = r.portal_headers
    assert (seen["x-govgate-user"], seen["x-govgate-groups"]) == ("zhangsan", "staff")
    assert seen["cookie"] == "portal=keep"
    access = [e for e in runtime.events if e.event == "access"]
    assert (access[-1].decision, access[-1].account, access[-1].rule) == ("allow", "zhangsan", "office system")


# -- failing closed ------------------------------------------------------------------------------------------------


async def test_a_store_that_cannot_be_reached_fails_staff_paths_closed_with_503_and_public_paths_go_on(
        runtime: InProcessRuntime) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timedelta(seconds=1))  # nothing listens
    down = replace(runtime, store=store)
    try:
        async with InProcessGateway(down) as gateway:
            b = Browser(gateway, cookies={"govgate-session": "S" * 43})
            r = await b.get("/oa/")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
            assert "暂时无法访问" in r.text
            r = await b.get("/oa/", headers=[("Accept", "application/json")])
            assert r.status_code == 503
            assert r.json()["what"] == "store"
            assert (await b.get("/news/")).forwarded
    finally:
        await store.close()
    assert [(e.decision, e.reason) for e in down.events] == [("unavailable", "store")] * 2 + [("allow", None)]


async def test_an_audit_log_that_cannot_be_written_fails_staff_paths_closed_with_503(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    runtime.audit_writer.healthy = False  # Art. 20: no staff access that cannot be recorded (audit.on_failure: deny)
    r = await Browser(gateway).get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 503
    assert r.json()["what"] == "audit"
    assert (await Browser(gateway).get("/news/")).forwarded
    runtime.audit_writer.healthy = True
    assert (await Browser(gateway).get("/oa/")).status_code == 303  # recovered by itself


async def test_a_request_the_context_addon_did_not_take_is_refused(runtime: InProcessRuntime) -> None:
    flow = request_flow("GET", "/news/")
    assert Gate(runtime).request(flow) is None  # no RequestContext: something is wrong, fail closed (at once)
    assert flow.response is not None
    assert flow.response.status_code == 403


# -- sessions ------------------------------------------------------------------------------------------------------


async def test_an_idle_session_ends_its_cookie_is_cleared_and_the_expiry_is_audited(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("napper", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded
    cookie = b.cookies["govgate-session"]
    runtime.clock.advance(runtime.policy.session.idle_timeout)  # no request at all for idle_timeout
    r = await Browser(gateway, cookies={"govgate-session": cookie}).get("/oa/")
    assert r.status_code == 303
    assert any(c.startswith("govgate-session=;") for c in r.set_cookies)
    expired = [e for e in runtime.events if e.event == "session.expired"]
    assert [(e.account, e.decision, e.reason, e.article, e.path) for e in expired] == [
        ("napper", "login", "idle", "Art. 30", "/oa/")]


async def test_a_session_ends_at_its_absolute_timeout_however_busy(gateway: InProcessGateway,
                                                                   runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("napper", PASSWORD, SECRET)).status_code == 303
    step = timedelta(minutes=10)
    for _ in range(47):  # 7 h 50 min of requests every 10 minutes: never idle
        runtime.clock.advance(step)
        assert (await b.get("/oa/")).forwarded
    runtime.clock.advance(step)  # 8 h: absolute_timeout
    assert (await b.get("/oa/")).status_code == 303


async def test_an_administrators_logout_ends_sessions_opened_before_it(gateway: InProcessGateway,
                                                                       runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("zhangsan", PASSWORD, SECRET)).status_code == 303
    runtime.clock.advance(timedelta(minutes=1))
    logged_out = replace(runtime.accounts.get("zhangsan"), logged_out_at=runtime.now())  # `govgate account logout`
    runtime.accounts = Accounts(tuple(logged_out if a.name == "zhangsan" else a for a in runtime.accounts))
    r = await b.get("/oa/")
    assert r.status_code == 303
    assert any(c.startswith("govgate-session=;") for c in r.set_cookies)


async def test_a_disabled_account_loses_its_session(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("zhangsan", PASSWORD, SECRET)).status_code == 303
    session_id = b.cookies["govgate-session"]
    runtime.accounts = Accounts(tuple(replace(a, disabled=True) if a.name == "zhangsan" else a
                                      for a in runtime.accounts))
    r = await b.get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "account"
    assert any(c.startswith("govgate-session=;") for c in r.set_cookies)
    lookup = await runtime.store.touch_session(session_id, runtime.now(), runtime.policy.session)
    assert lookup.session is None  # deleted, not only refused (Art. 25, Art. 30)


async def test_a_session_of_a_deleted_account_is_refused(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    now = runtime.now()
    await runtime.store.create_session(Session(id="s" * 43, account="gone", device=None, client=OFFICE_ADDRESS,
                                               created=now, last_seen=now), runtime.policy.session)
    r = await Browser(gateway, cookies={"govgate-session": "s" * 43}).get("/oa/", headers=[("Accept",
                                                                                            "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "account"


# -- overseas (Art. 19) ------------------------------------------------------------------------------------------------


async def test_overseas_address_without_any_grant_is_refused_before_login(runtime: InProcessRuntime) -> None:
    anywhere = policy(access=standard_access(networks="any"))  # the staff rule admits every address by network
    async with InProcessGateway(runtime.with_policy(anywhere)) as gateway:
        r = await Browser(gateway, GB_ADDRESS).get("/oa/", headers=[("Accept", "application/json")])
        assert r.status_code == 403
        assert r.json()["reason"] == "overseas"
        # A home-country address goes on to login.
        assert (await Browser(gateway, CN_ADDRESS).get("/oa/")).status_code == 303


@pytest.fixture
async def trip(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    """The staff rule names only the office network; the one grant admits ``traveller`` from GB (Art. 19)."""
    granted = runtime.with_policy(policy(overseas={"grants": [grant(account="traveller",
                                                                      countries=frozenset({"GB"}))]}))
    async with InProcessGateway(granted) as gateway:
        yield gateway


async def test_a_granted_traveller_abroad_logs_in_and_works(trip: InProcessGateway) -> None:
    b = Browser(trip, GB_ADDRESS)
    assert (await b.get("/oa/")).status_code == 303  # some grant could admit: on to login
    assert (await b.login("traveller", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded


async def test_a_session_opened_at_the_office_is_refused_from_abroad_without_a_grant(trip: InProcessGateway) -> None:
    office = Browser(trip, OFFICE_ADDRESS)
    assert (await office.login("homebody", PASSWORD, SECRET)).status_code == 303
    abroad = Browser(trip, GB_ADDRESS, cookies=office.cookies)  # the same session cookie, now from the granted country
    r = await abroad.get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "network"


async def test_a_country_the_grant_does_not_name_is_refused_before_login(trip: InProcessGateway) -> None:
    r = await Browser(trip, US_ADDRESS).get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    # Outside the rule's networks with no grant that could let it in: the network step refuses it.
    assert r.json()["reason"] == "network"


async def test_the_session_of_a_traveller_stops_working_when_the_grant_ends(trip: InProcessGateway) -> None:
    trip.runtime.clock.set(at("2026-12-15 23:50"))  # the grant ends with the minute 2026-12-15 23:59
    b = Browser(trip, GB_ADDRESS)
    assert (await b.login("traveller", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded
    trip.runtime.clock.advance(timedelta(minutes=11))  # the session is still valid (idle_timeout: 15m)
    r = await b.get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "network"


# -- hosts ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["[::1]", "[0:0:0:0:0:0:0:1]", "[0::01]", "[::0001]", "[0:0:0:0:0:0:0.0.0.1]"])
async def test_every_spelling_of_an_ipv6_literal_reaches_its_rule(runtime: InProcessRuntime, spelling: str) -> None:
    loopback = runtime.with_policy(policy(access=[
        {"name": "loopback v6", "paths": ["/echo/**"], "hosts": ["[::1]"], "allow": "public"},
        {"name": "the rest", "paths": ["/**"], "allow": "deny"},
    ]))
    async with InProcessGateway(loopback) as gateway:
        b = Browser(gateway)
        for host in (spelling, spelling.upper(), f"{spelling}:8443"):
            assert (await b.send("GET", "/echo/x", host=host)).forwarded, host
        assert (await b.send("GET", "/echo/x", host="127.0.0.1")).status_code == 403
        assert (await b.send("GET", "/echo/x", host="[::ffff:127.0.0.1]")).status_code == 403
        assert (await b.send("GET", "/echo/x", host="[1:2]")).status_code == 400


@pytest.mark.redis
async def test_a_request_is_decided_at_once_unless_its_session_lookup_or_a_session_end_waits_for_the_store(
        runtime: InProcessRuntime, redis_url: str) -> None:
    # govgate/dispatch.py answers a hook inline when no handler returns an awaitable. The gate returns one only when
    # a staff path's session lookup must wait for the store (Redis past its near cache), or a session must be
    # deleted before the answer; never on a public path, a staff path without a session, or a session the store
    # answers for at once (the memory store; Redis's near cache: tests/store/test_redis_session_cache.py).
    from tests.addons.flows import judged

    gate = Gate(runtime)
    public = request_flow("GET", "/news/")
    judged(runtime, public)
    assert gate.request(public) is None
    assert public.response is None  # forwarded
    anonymous = request_flow("GET", "/oa/")
    judged(runtime, anonymous)
    assert gate.request(anonymous) is None
    assert anonymous.response is not None
    assert anonymous.response.status_code == 303  # no session: to the login page

    now = runtime.now()
    session = Session(id="s" * 43, account="zhangsan", device=None, client=OFFICE_ADDRESS, created=now, last_seen=now)
    await runtime.store.create_session(session, runtime.policy.session)
    cookie = [("cookie", f"govgate-session={session.id}")]
    staff = request_flow("GET", "/oa/", headers=cookie)
    judged(runtime, staff)
    assert gate.request(staff) is None
    assert staff.response is None  # forwarded, as zhangsan
    assert staff.request.headers["x-govgate-user"] == "zhangsan"

    # The account is disabled: its session is deleted first (a coroutine), and only then is the request refused.
    runtime.accounts = Accounts(tuple(replace(a, disabled=True) if a.name == "zhangsan" else a
                                      for a in runtime.accounts))
    refused = request_flow("GET", "/oa/", headers=cookie)
    judged(runtime, refused)
    pending = gate.request(refused)
    assert pending is not None
    assert refused.response is None
    await pending
    assert refused.response is not None
    assert refused.response.status_code == 403
    assert (await runtime.store.touch_session(session.id, runtime.now(), runtime.policy.session)).session is None

    # Redis without its near cache: every lookup waits for a round trip.
    store = RedisStore.from_url(redis_url, timedelta(seconds=5))
    on_redis = replace(runtime, store=store, accounts=Accounts((make_account("zhangsan"),)))
    try:
        await store.create_session(session, runtime.policy.session)
        flow = request_flow("GET", "/oa/", headers=cookie)
        judged(on_redis, flow)
        pending = Gate(on_redis).request(flow)
        assert pending is not None
        assert flow.response is None
        await pending
        assert flow.response is None  # forwarded, as zhangsan
        assert flow.request.headers["x-govgate-user"] == "zhangsan"
    finally:
        await store.close()
