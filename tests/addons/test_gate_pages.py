"""The gate's pages other than the login steps, in process: health, the Art. 15 leave pages (for links and for
forms' targets), sign-out form, 404 and 405 under the prefix, and the 503 when the store is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from govgate.core.leave_link import leave_form_url, leave_url
from govgate.store.redis import RedisStore
from tests.addons.gateway import PREFIX, Browser, InProcessGateway
from tests.ports import free_port
from tests.runtime import InProcessRuntime


@pytest.fixture
def runtime() -> InProcessRuntime:
    return InProcessRuntime()


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


def fresh_geoip(runtime: InProcessRuntime, age: timedelta = timedelta(days=2)) -> None:
    """Set the clock to ``age`` after the test GeoIP database was built (its metadata), so that it is that old."""
    built = runtime.snapshot.geoip.built
    assert built is not None
    runtime.clock.set(built + age)


async def test_health_reports_policy_and_store(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    fresh_geoip(runtime)
    r = await Browser(gateway).get(f"{PREFIX}/health")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {"status": "ok", "reasons": [], "policy_version": 1, "data_version": 1,
                        "policy_sha256": runtime.policy.sha256, "store": {"reachable": True, "kind": "memory"},
                        "audit": {"writable": True}, "geoip": {"age_days": 2.0}}
    assert len(r.json()["policy_sha256"]) == 64


@pytest.mark.parametrize(("age", "status"), [(timedelta(days=35), "ok"), (timedelta(days=35, seconds=1), "degraded")])
async def test_health_is_degraded_but_200_when_the_geoip_database_is_older_than_35_days(
        gateway: InProcessGateway, runtime: InProcessRuntime, age: timedelta, status: str) -> None:
    fresh_geoip(runtime, age)
    r = await Browser(gateway).get(f"{PREFIX}/health")
    assert (r.status_code, r.json()["status"]) == (200, status)
    assert r.json()["reasons"] == ([] if status == "ok" else ["geoip_stale"])


async def test_health_is_degraded_but_200_from_a_refused_reload_until_a_good_one(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    fresh_geoip(runtime)
    runtime.policy_refused = True
    r = await Browser(gateway).get(f"{PREFIX}/health")
    assert (r.status_code, r.json()["status"], r.json()["reasons"]) == (200, "degraded", ["policy_refused"])
    runtime.policy_refused = False
    r = await Browser(gateway).get(f"{PREFIX}/health")
    assert (r.status_code, r.json()["status"], r.json()["reasons"]) == (200, "ok", [])


async def test_health_is_503_and_degraded_while_the_audit_log_or_the_store_is_down(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    fresh_geoip(runtime)
    runtime.audit_writer.healthy = False
    r = await Browser(gateway).get(f"{PREFIX}/health")
    assert (r.status_code, r.json()["status"], r.json()["audit"]) == (503, "degraded", {"writable": False})
    assert r.json()["reasons"] == ["audit_unwritable"]
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timedelta(seconds=1))  # nothing listens
    try:
        async with InProcessGateway(replace(runtime, store=store)) as down:
            runtime.audit_writer.healthy = True
            r = await Browser(down).get(f"{PREFIX}/health")
            assert (r.status_code, r.json()["store"]["reachable"]) == (503, False)
            assert r.json()["reasons"] == ["store_down"]
            # Pages that need the store fail closed with 503 too.
            r = await Browser(down, cookies={"govgate-pending": "x" * 43}).get(f"{PREFIX}/mfa")
            assert r.status_code == 503
            assert r.headers["retry-after"] == "5"
    finally:
        await store.close()


async def test_the_leave_page_warns_before_an_off_site_destination_and_is_audited(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    r = await Browser(gateway).get(leave_url(PREFIX, "https://www.example.com/reports?q=1", runtime.keys))
    assert r.status_code == 200
    assert "www.example.com" in r.text
    [event] = runtime.events
    assert (event.event, event.decision, event.article, event.extra["destination_host"]) == (
        "leave.view", "allow", "Art. 15", "www.example.com")
    assert event.path == f"{PREFIX}/leave"


async def test_a_leave_link_the_gateway_did_not_sign_gets_400_without_the_destination(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    r = await Browser(gateway).get(f"{PREFIX}/leave?url=https://evil.example/&sig=forged")
    assert r.status_code == 400
    assert "evil.example" not in r.text
    [event] = runtime.events
    assert (event.decision, event.reason) == ("refuse", "bad_signature")


async def test_back_on_the_leave_page_returns_to_the_page_the_link_was_on(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    link = leave_url(PREFIX, "https://www.example.com/", runtime.keys)
    r = await Browser(gateway).get(link, headers=[("referer", "http://portal.example.gov.cn/news/2026/a.html?p=2")])
    assert 'href="/news/2026/a.html?p=2">返回 Back' in r.text
    r = await Browser(gateway).get(link, headers=[("referer", "https://evil.example/news/2026/a.html")])
    assert 'href="/">返回 Back' in r.text  # another site's page is no way back: never an open redirect
    r = await Browser(gateway).get(link)
    assert 'href="/">返回 Back' in r.text


async def test_a_form_leaving_the_site_by_get_is_warned_with_its_fields_and_audited_without_them(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    target = leave_form_url(PREFIX, "https://search.example.org/search?site=portal", "UTF-8", runtime.keys)
    # The browser replaced the target's query with the form's fields, as it does for every GET form.
    r = await Browser(gateway).get(target + "?q=%E5%85%AC%E7%A7%AF%E9%87%91&page=1",
                                   headers=[("referer", "http://portal.example.gov.cn/news/forms.html")])
    assert r.status_code == 200
    assert not r.forwarded  # the gate answers it; the portal never sees it
    assert 'href="https://search.example.org/search?q=%E5%85%AC%E7%A7%AF%E9%87%91&amp;page=1"' in r.text
    assert 'href="/news/forms.html">返回 Back' in r.text
    [event] = runtime.events
    assert (event.event, event.decision, event.article, event.path) == ("leave.view", "allow", "Art. 15", target)
    assert event.extra["destination_host"] == "search.example.org"
    assert (event.extra["form"], event.extra["fields"], event.extra["not_carried"]) == ("get", None, None)
    assert "q=" not in str(event)  # what was typed is not audited


async def test_a_form_leaving_the_site_by_post_is_written_into_a_continue_form(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    target = leave_form_url(PREFIX, "https://partner.example.org/feedback?form=1", "UTF-8", runtime.keys)
    r = await Browser(gateway).post(target, {"text": "满意\r\nthanks", "topic": "办事"})
    assert r.status_code == 200
    assert not r.forwarded
    assert '<form method="post" action="https://partner.example.org/feedback?form=1"' in r.text
    assert '<input type="hidden" name="text" value="满意&#13;&#10;thanks">' in r.text
    assert "form-action 'self' http: https:" in r.headers["content-security-policy"]
    [event] = runtime.events
    assert (event.extra["form"], event.extra["fields"]) == ("post", 2)
    assert "满意" not in str(event)


async def test_a_form_target_the_gateway_did_not_sign_gets_400_without_the_destination(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    for method in ("GET", "POST"):
        r = await Browser(gateway).send(method, f"{PREFIX}/leave-form/UTF-8/aHR0cHM6Ly9ldmlsLmV4YW1wbGUv/forged?q=1")
        assert r.status_code == 400
        assert "evil.example" not in r.text
    assert [e.reason for e in runtime.events] == ["bad_signature", "bad_signature"]
    r = await Browser(gateway).send("PUT", f"{PREFIX}/leave-form/UTF-8/x/y")
    assert r.status_code == 404


async def test_the_sign_out_form_posts_with_a_csrf_token_and_a_post_without_one_is_refused(
        gateway: InProcessGateway) -> None:
    b = Browser(gateway)
    token = await b.csrf(f"{PREFIX}/logout")
    assert f'action="{PREFIX}/logout"' in (await b.get(f"{PREFIX}/logout")).text
    assert (await b.post(f"{PREFIX}/logout", {"csrf": "forged"})).status_code == 400
    assert (await b.post(f"{PREFIX}/logout", {"csrf": token})).status_code == 200


@pytest.mark.parametrize("path", [PREFIX, f"{PREFIX}/", f"{PREFIX}/nothing", f"{PREFIX}/login/more"])
async def test_anything_else_under_the_prefix_is_404(gateway: InProcessGateway, path: str) -> None:
    r = await Browser(gateway).get(path)
    assert r.status_code == 404
    assert "未找到" in r.text


@pytest.mark.parametrize(("method", "page"), [("PUT", "login"), ("DELETE", "mfa"), ("HEAD", "logout"),
                                              ("PATCH", "login")])
async def test_the_login_pages_take_only_get_and_post(gateway: InProcessGateway, method: str, page: str) -> None:
    assert (await Browser(gateway).send(method, f"{PREFIX}/{page}")).status_code == 405


async def test_the_gates_pages_are_answered_from_where_staff_rules_would_refuse(gateway: InProcessGateway) -> None:
    # The pages never reach the access decision: a client no rule admits still gets the login form and health.
    assert (await Browser(gateway, "111.235.160.1").get(f"{PREFIX}/login")).status_code == 200
    assert (await Browser(gateway, "216.160.83.57").get(f"{PREFIX}/health")).status_code == 200
