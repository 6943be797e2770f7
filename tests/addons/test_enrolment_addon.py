"""Enrolled browsers (Art. 19: staff functions from allowed devices; Art. 30: account–device binding), in process:
``{prefix}/enroll`` with the context addon, the gate's pages and the gate, on the runtime's device registry.

A logged-in staff member on an allowed network names the browser and gets a signed device cookie; the registry
keeps the token's hash, pending. Once approved (``govgate device approve``, here the registry change it makes) the
browser is a device: from outside every network it passes the network check, until the approval ends or the
device is revoked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from govgate.core import device_cookie
from govgate.core.accounts import Accounts
from govgate.core.device_registry import DeviceKind, DeviceState
from govgate.core.keys import GatewayKeys
from tests.accounts.builders import PASSWORD, SECRET, make_account
from tests.addons.gateway import PREFIX, Answer, Browser, InProcessGateway
from tests.policies import policy
from tests.runtime import InProcessRuntime

HOME_OUTSIDE = "111.235.160.1"  # in China (a home country), outside every network of the test policy
DEVICE_COOKIE = "govgate-device"  # plain-HTTP trial mode: the bare name (over TLS: __Host-govgate-device)


@pytest.fixture
def runtime() -> InProcessRuntime:
    return InProcessRuntime(policy=policy(), accounts=Accounts((make_account("zhangsan"), make_account("lisi"))))


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


async def logged_in(gateway: InProcessGateway, name: str = "zhangsan") -> Browser:
    browser = Browser(gateway)  # in the office
    answer = await browser.login(name, PASSWORD, SECRET)
    assert answer.status_code == 303, answer.text[:300]
    return browser


async def enrol(browser: Browser, label: str = "张三的办公电脑") -> Answer:
    token = await browser.csrf(f"{PREFIX}/enroll")
    return await browser.post(f"{PREFIX}/enroll", {"csrf": token, "label": label})


def enrolled_id(answer: Answer) -> str:
    found = re.search(r"<code>([^<]+-browser-[0-9a-f]{6})</code>", answer.text)
    assert found, answer.text[:500]
    return found.group(1)


def approve(runtime: InProcessRuntime, device_id: str, days: int = 30) -> None:
    runtime.devices = runtime.devices.approved(device_id, runtime.now(), runtime.now().date() + timedelta(days=days))


async def staff_page(browser: Browser) -> Answer:
    return await browser.get("/oa/", headers=[("accept", "application/json")])


async def test_enrolling_needs_a_login_first(gateway: InProcessGateway) -> None:
    answer = await Browser(gateway).get(f"{PREFIX}/enroll")
    assert answer.status_code == 303
    assert answer.location == f"{PREFIX}/login?next={PREFIX}/enroll"


async def test_a_staff_member_enrols_this_browser_pending_approval(gateway: InProcessGateway,
                                                                   runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    answer = await enrol(browser)
    assert answer.status_code == 200
    device_id = enrolled_id(answer)
    assert device_id.startswith("zhangsan-browser-")
    [cookie] = [c for c in answer.set_cookies if c.startswith(DEVICE_COOKIE + "=")]
    attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert {"httponly", "path=/", "samesite=lax", f"max-age={400 * 86400}"} <= set(attributes)
    value = browser.cookies[DEVICE_COOKIE]
    presented = device_cookie.token_of(runtime.keys, value)
    assert presented is not None
    assert presented.signed
    token = presented.token
    assert len(token) == 43  # 256 bits
    [device] = runtime.devices
    assert (device.id, device.account, device.kind, device.state, device.label) == (
        device_id, "zhangsan", DeviceKind.BROWSER, DeviceState.PENDING, "张三的办公电脑")
    assert device.token_sha256 == hashlib.sha256(token.encode()).digest()
    [record] = [e for e in runtime.events if e.event == "device.enrolled"]
    assert (record.account, record.device, record.article) == ("zhangsan", device_id, "Art. 30")
    assert token not in repr(runtime.events)


async def test_the_same_browser_is_enrolled_once(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    first = enrolled_id(await enrol(browser))
    again = await browser.get(f"{PREFIX}/enroll")
    assert first in again.text
    assert "name=\"label\"" not in again.text
    assert len(runtime.devices) == 1


async def test_enrolment_needs_the_forms_csrf_token_and_a_name(gateway: InProcessGateway,
                                                               runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    forged = await browser.post(f"{PREFIX}/enroll", {"csrf": "x" * 43, "label": "attacker's choice"})
    assert forged.status_code == 400
    for label in ("", "   ", "x" * 65, "bad\x00name"):
        assert (await enrol(browser, label)).status_code == 400
    assert len(runtime.devices) == 0
    assert DEVICE_COOKIE not in browser.cookies
    assert (await browser.send("PUT", f"{PREFIX}/enroll")).status_code == 405


async def test_a_pending_browser_is_not_a_device_yet(gateway: InProcessGateway) -> None:
    browser = await logged_in(gateway)
    await enrol(browser)
    browser.client = HOME_OUTSIDE
    answer = await staff_page(browser)
    assert (answer.status_code, answer.json()["reason"]) == (403, "network")


async def test_an_approved_browser_is_the_device_until_revoked(gateway: InProcessGateway,
                                                               runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    device_id = enrolled_id(await enrol(browser))
    approve(runtime, device_id)
    browser.client = HOME_OUTSIDE  # out of the office, on the enrolled browser
    answer = await staff_page(browser)
    assert answer.forwarded
    assert answer.portal_headers["x-govgate-device"] == device_id
    runtime.devices = runtime.devices.revoked(device_id, runtime.now())
    answer = await staff_page(browser)
    assert (answer.status_code, answer.json()["reason"]) == (403, "network")


async def test_an_approval_ends_on_its_last_day(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    device_id = enrolled_id(await enrol(browser))
    approve(runtime, device_id, days=1)
    browser.client = HOME_OUTSIDE
    assert (await staff_page(browser)).forwarded
    runtime.clock.advance(timedelta(days=2))
    fresh = await logged_in(gateway)  # the old session has timed out: log in again, then leave the office
    fresh.cookies[DEVICE_COOKIE] = browser.cookies[DEVICE_COOKIE]
    fresh.client = HOME_OUTSIDE
    answer = await staff_page(fresh)
    assert (answer.status_code, answer.json()["reason"]) == (403, "network")


async def test_a_device_cookie_altered_or_signed_by_another_gateway_is_not_the_device(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    browser = await logged_in(gateway)
    device_id = enrolled_id(await enrol(browser))
    approve(runtime, device_id)
    presented = device_cookie.token_of(runtime.keys, browser.cookies[DEVICE_COOKIE])
    assert presented is not None
    token = presented.token  # the bare token, unsigned: not how an enrolled browser is recognised
    browser.client = HOME_OUTSIDE
    # The signature's first character changed (its last one carries 4 padding bits: 'A' a quarter of the time, so
    # overwriting the end with "AA" left the cookie unchanged once in 256 runs).
    signed_token, _, signature = browser.cookies[DEVICE_COOKIE].partition(".")
    altered = f"{signed_token}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    for value in (token, device_cookie.cookie_value(GatewayKeys(b"\x09" * 32), token), altered):
        browser.cookies[DEVICE_COOKIE] = value
        answer = await staff_page(browser)
        assert (answer.status_code, answer.json()["reason"]) == (403, "network"), value


async def test_enrolling_from_outside_every_network_is_refused(gateway: InProcessGateway,
                                                             runtime: InProcessRuntime) -> None:
    """Art. 19: a device is added only from where staff may work without one — not from a hotel on a device."""
    browser = await logged_in(gateway)
    device_id = enrolled_id(await enrol(browser))
    approve(runtime, device_id)
    browser.client = HOME_OUTSIDE
    assert (await staff_page(browser)).forwarded  # on the approved device, the staff path is open…
    del browser.cookies[DEVICE_COOKIE]
    browser.cookies.pop("govgate-csrf", None)
    answer = await browser.get(f"{PREFIX}/enroll")  # …but this browser is not enrolled there
    assert answer.status_code == 403
    assert [e.reason for e in runtime.events if e.event == "device.enrol_refused"] == ["network"]
    assert len(runtime.devices) == 1


async def test_an_approved_device_of_another_account_passes_only_the_network_check(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    """With ``bind_devices: false`` (the test policy) the device opens the network step for whoever logs in on it;
    the portal is told which device it was."""
    browser = await logged_in(gateway, "lisi")
    device_id = enrolled_id(await enrol(browser))
    approve(runtime, device_id)
    other = await logged_in(gateway, "zhangsan")
    other.cookies[DEVICE_COOKIE] = browser.cookies[DEVICE_COOKIE]
    other.client = HOME_OUTSIDE
    answer = await staff_page(other)
    assert answer.portal_headers["x-govgate-user"] == "zhangsan"
    assert answer.portal_headers["x-govgate-device"] == device_id



async def test_a_locked_account_cannot_enrol_a_browser(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    # Art. 30: a lock stops the account, its open sessions included (found in review: the enrolment page ignored
    # the lock and added a pending device).
    browser = await logged_in(gateway)
    token = await browser.csrf(f"{PREFIX}/enroll")
    for _ in range(3):  # the test policy's max_failures, from another address
        await Browser(gateway, "10.7.7.7").password("zhangsan", "Wrong-pass-123x")
    answer = await browser.post(f"{PREFIX}/enroll", {"csrf": token, "label": "张三的办公电脑"})
    assert answer.status_code == 403
    assert "locked" in answer.text
    assert not list(runtime.devices)
    assert [e.reason for e in runtime.events if e.event == "device.enrol_refused"] == ["locked"]
