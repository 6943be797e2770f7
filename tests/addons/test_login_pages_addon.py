"""Staff login at the gate (Art. 30), in process: the login-pages addon with the context addon and the gate, on
the memory store and on a real Redis, with real Argon2id hashes, encrypted TOTP secrets and a clock the test moves.

Password and TOTP, CSRF, a code accepted once only, ``next`` kept on the site, lockout (by account, by address,
an IPv6 address by its /64, TOTP failures too) answered 429 before the credentials are looked at, logout, the
half-done login (bound to its browser and address, five minutes, void after a password change or a sign-out),
session fixation, the identity headers the portal receives, idle expiry, and the cost of a staff request in Redis
round trips. What needs a real gateway process (admin commands reloading the accounts file) stays in
``tests/e2e/test_login_flow.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import brotli
import pytest
import redis

from govgate.core.accounts import Accounts
from govgate.core.login import PENDING_TTL
from govgate.store.base import PendingLogin
from govgate.store.memory import MemoryStore
from govgate.store.redis import RedisStore
from tests.accounts.builders import PASSWORD, SECRET, make_account
from tests.addons.gateway import PREFIX, Answer, Browser, InProcessGateway, code_now, wrong_code
from tests.policies import device, policy
from tests.redis_server import RedisMonitor, RedisServer
from tests.runtime import InProcessRuntime

WRONG = "Not-the-right-one-77"
DEVICE_TOKEN = "enrol-7Qm2xVb9Lr4Tn8Kd3Wp6"
PENDING_TTL_SECONDS = int(PENDING_TTL.total_seconds())
ACCOUNTS = Accounts((*(make_account(name) for name in (
    "zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "wujiu", "qianshi", "halfway", "signout", "solo",
    "mfalock", "iplock-a", "iplock-b", "iplock-c", "pending", "pendingttl", "fixation", "roundtrip", "napper",
    "sessionlock", "utf8username", "utf8password", "utf8csrf")), make_account("headers", groups=("staff", "finance"))))
LOCK_BODY_NOISE = re.compile(r"<code>[^<]*</code>")  # the request id differs per answer
STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Each store a test runs on: the memory store (None), then a real Redis, emptied for the test."""
    return str(request.getfixturevalue("redis_url")) if request.param == "redis" else None


@pytest.fixture
async def runtime(store_url: str | None) -> AsyncIterator[InProcessRuntime]:
    """The test policy with the device ``hd-phone`` of ``headers``, on the store of ``store_url``."""
    store = RedisStore.from_url(store_url, timedelta(seconds=2)) if store_url else MemoryStore()
    runtime = InProcessRuntime(policy=policy(devices=[device("hd-phone", "headers", token=DEVICE_TOKEN)]),
                               accounts=ACCOUNTS, store=store)
    yield runtime
    await store.close()


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


def session_cookie(answer: Answer) -> str | None:
    for header in answer.set_cookies:
        name, _, rest = header.partition("=")
        if name == "govgate-session":
            return rest.split(";", 1)[0]
    return None


# -- password and TOTP ----------------------------------------------------------------------------------------


async def test_full_login_reaches_the_portal_with_identity_headers(gateway: InProcessGateway) -> None:
    b = Browser(gateway)
    r = await b.login("zhangsan", PASSWORD, SECRET, next_path="/echo/staff/inbox")
    assert r.status_code == 303
    assert r.location == "/echo/staff/inbox"
    session = [c for c in r.set_cookies if c.startswith("govgate-session=")]
    assert session
    assert "HttpOnly" in session[0]
    assert "SameSite=Lax" in session[0]
    echo = await b.get("/echo/staff/inbox")
    assert echo.forwarded
    assert echo.portal_headers["x-govgate-user"] == "zhangsan"
    assert echo.portal_headers["x-govgate-groups"] == "staff"


async def test_unknown_account_and_wrong_password_get_the_same_answer(gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.0.1")
    wrong = await b.password("lisi", "Not-the-password-1")
    unknown = await b.password("nobody-here", "Not-the-password-1")
    assert wrong.status_code == unknown.status_code == 200

    def strip(text: str) -> str:
        return re.sub(r'value="[^"]{20,}"', "", text.replace("lisi", "X").replace("nobody-here", "X"))

    assert strip(wrong.text) == strip(unknown.text)


async def test_a_totp_code_is_accepted_once_only(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    code = code_now(runtime, SECRET)
    first = Browser(gateway, "10.9.0.2")
    assert (await first.password("wangwu", PASSWORD)).status_code == 303
    assert (await first.mfa(code)).status_code == 303
    second = Browser(gateway, "10.9.0.3")
    assert (await second.password("wangwu", PASSWORD)).status_code == 303
    replay = await second.mfa(code)
    assert replay.status_code == 200
    assert "动态口令错误或已使用" in replay.text


async def test_login_without_a_valid_csrf_token_is_refused(gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.0.4")
    await b.csrf(f"{PREFIX}/login")
    r = await b.post(f"{PREFIX}/login", {"username": "zhaoliu", "password": PASSWORD, "csrf": "forged",
                                         "next": "/oa/"})
    assert r.status_code == 400
    assert "mfa" not in r.location


async def test_a_csrf_cookie_of_bytes_that_are_not_utf8_gets_a_new_browser_id_not_an_error(
        gateway: InProcessGateway, caplog: pytest.LogCaptureFixture) -> None:
    # Not a browser's doing (a __Host- cookie cannot be planted), but any client can send it: an answer, no traceback.
    b = Browser(gateway, "10.9.0.4", cookies={"govgate-csrf": "\udcff\udcfe" * 12})
    with caplog.at_level(logging.ERROR):
        form = await b.get(f"{PREFIX}/login")
        r = await b.post(f"{PREFIX}/login", {"username": "zhaoliu", "password": PASSWORD, "csrf": "A" * 43,
                                             "next": "/oa/"})
    assert form.status_code == 200
    assert any(c.startswith("govgate-csrf=") for c in form.set_cookies)  # a new browser id
    assert r.status_code == 400
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


async def test_next_cannot_send_the_browser_off_site(gateway: InProcessGateway) -> None:
    r = await Browser(gateway, "10.9.0.5").login("sunqi", PASSWORD, SECRET, next_path="//evil.example/x")
    assert r.status_code == 303
    assert r.location == "/"


async def test_locked_account_gets_429_even_with_the_right_password(gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.0.6")
    for _ in range(3):  # max_failures: 3 in the test policy
        last = await b.password("zhouba", "Wrong-password-123")
    assert last.status_code == 429
    right = await Browser(gateway, "10.9.0.7").password("zhouba", PASSWORD)
    assert right.status_code == 429
    assert "解除" in right.text  # says when the lock ends
    assert "mfa" not in right.location


async def test_logout_ends_the_session(gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.0.8")
    assert (await b.login("wujiu", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded
    token = await b.csrf(f"{PREFIX}/logout")
    r = await b.post(f"{PREFIX}/logout", {"csrf": token})
    assert r.status_code == 200
    assert (await b.get("/oa/")).status_code == 303


async def test_a_forged_session_cookie_goes_to_login_and_is_cleared(gateway: InProcessGateway) -> None:
    r = await Browser(gateway, "10.9.0.9").get("/oa/", headers=[("Cookie", "govgate-session=" + "A" * 43)])
    assert r.status_code == 303
    assert any(c.startswith("govgate-session=;") for c in r.set_cookies)


async def test_secret_values_are_never_logged(gateway: InProcessGateway, runtime: InProcessRuntime,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    b = Browser(gateway, "10.9.0.10")
    await b.password("lisi", WRONG)
    r = await b.login("lisi", PASSWORD, SECRET)
    assert r.status_code == 303
    await b.get("/oa/")
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (PASSWORD, WRONG, SECRET, *b.cookies.values()):
        assert secret not in text


async def test_two_instances_sharing_nothing_keep_their_own_sessions(runtime: InProcessRuntime) -> None:
    # With the memory store each instance keeps its own sessions: a session from one is unknown to another.
    one, two = replace(runtime, store=MemoryStore()), replace(runtime, store=MemoryStore())
    async with InProcessGateway(one) as first, InProcessGateway(two) as second:
        b = Browser(first)
        assert (await b.login("solo", PASSWORD, SECRET)).status_code == 303
        assert (await Browser(second, cookies=b.cookies).get("/oa/")).status_code == 303


async def test_a_burst_of_concurrent_wrong_passwords_is_still_held_to_max_failures(
        gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.1.1")
    token = await b.csrf(f"{PREFIX}/login")

    async def attempt(i: int) -> int:
        r = await b.post(f"{PREFIX}/login", {"username": "qianshi", "password": f"Wrong-guess-{i:04d}x",
                                             "csrf": token, "next": "/oa/"})
        return r.status_code

    statuses = list(await asyncio.gather(*(attempt(i) for i in range(12))))
    # max_failures is 3: two wrong answers, then the lock; every later attempt is refused unverified.
    assert statuses.count(200) == 2
    assert statuses.count(429) == 10
    assert (await Browser(gateway, "10.9.1.2").password("qianshi", PASSWORD)).status_code == 429


async def test_a_compressed_login_form_is_refused_before_it_is_inflated(gateway: InProcessGateway) -> None:
    b = Browser(gateway, "10.9.1.3")
    token = await b.csrf(f"{PREFIX}/login")
    body = brotli.compress(b"username=x&password=" + b"A" * 10_000_000 + b"&csrf=" + token.encode())
    r = await b.post(f"{PREFIX}/login", body, headers=[("Content-Encoding", "br")])
    assert r.status_code == 400


@pytest.mark.parametrize("field", ["username", "password", "csrf"])
async def test_form_fields_that_are_not_utf8_get_a_400_and_are_not_counted_as_attempts(
        gateway: InProcessGateway, field: str) -> None:
    name = f"utf8{field}"
    b = Browser(gateway, f"10.9.5.{len(field)}")
    fields = {"username": name, "password": "Wrong-password-999", "csrf": await b.csrf(f"{PREFIX}/login"),
              "next": "/oa/"}
    body = "&".join(f"{k}={'%FF%FE' if k == field else v}" for k, v in fields.items()).encode()
    for _ in range(5):  # more than max_failures: none of them may count, nor lock the account or the address
        r = await b.post(f"{PREFIX}/login", body)
        assert r.status_code == 400, r.text[:300]
    assert (await b.password(name, PASSWORD)).status_code == 303  # not locked


# -- TOTP failures count towards the lockout ----------------------------------------------------------------


async def test_wrong_totp_codes_lock_the_account_and_mfa_then_answers_429_with_the_lock_end(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    waiting = Browser(gateway, "10.20.0.1")  # a second browser, half-way through its own login
    assert (await waiting.password("mfalock", PASSWORD)).status_code == 303
    guesser = Browser(gateway, "10.20.0.2")
    assert (await guesser.password("mfalock", PASSWORD)).status_code == 303
    answers = [await guesser.mfa(wrong_code(runtime, SECRET)) for _ in range(3)]  # max_failures: 3
    locked_at = runtime.now()
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert "动态口令错误或已使用" in answers[0].text

    # The waiting browser now posts the right code: 429 with when the lock ends, no session.
    right = await waiting.mfa(code_now(runtime, SECRET))
    assert right.status_code == 429
    assert session_cookie(right) is None
    assert "location" not in right.headers
    wrong = await waiting.mfa(wrong_code(runtime, SECRET))
    assert wrong.status_code == 429
    # The same answer whether the code was right or wrong (only the request id differs).
    assert LOCK_BODY_NOISE.sub("", right.text) == LOCK_BODY_NOISE.sub("", wrong.text)
    token = await waiting.csrf(f"{PREFIX}/mfa")
    as_json = await waiting.post(f"{PREFIX}/mfa", {"code": code_now(runtime, SECRET), "csrf": token},
                                 headers=[("Accept", "application/json")])
    assert as_json.status_code == 429
    body = as_json.json()
    assert set(body) == {"error", "until", "request_id"}
    until = datetime.fromisoformat(body["until"])
    assert until.utcoffset() == timedelta(hours=8)  # in gateway.timezone
    assert abs(until - (locked_at + timedelta(minutes=30))) < timedelta(seconds=30)  # lockout: 30m
    assert 1700 <= int(as_json.headers["retry-after"]) <= 1800
    assert "解除" in right.text
    assert until.strftime("%Y-%m-%d %H:%M:%S") in right.text
    # And the right password, from an address with no failures at all, is refused the same way.
    assert (await Browser(gateway, "10.20.0.9").password("mfalock", PASSWORD)).status_code == 429


async def test_a_lock_reached_elsewhere_stops_an_open_session_of_the_account(gateway: InProcessGateway) -> None:
    working = Browser(gateway)
    assert (await working.login("sessionlock", PASSWORD, SECRET)).status_code == 303
    assert (await working.get("/oa/")).forwarded
    guesser = Browser(gateway, "10.20.0.5")
    assert [(await guesser.password("sessionlock", WRONG)).status_code for _ in range(3)] == [200, 200, 429]
    r = await working.get("/oa/", headers=[("Accept", "application/json")])
    assert r.status_code == 403  # a locked account is refused, session or not (docs/decisions.md §2)
    assert r.json()["reason"] == "locked"


# -- lockout by source address (login.ip_max_failures) --------------------------------------------------------


async def fail_ten_times(b: Browser, names: list[str]) -> list[int]:
    assert len(names) == 10  # ip_max_failures: 10 in the test policy
    return [(await b.password(name, WRONG)).status_code for name in names]


async def test_an_address_is_locked_after_ip_max_failures_across_accounts(gateway: InProcessGateway) -> None:
    # Ten failures from one address, never three on one account: only the address limit can lock.
    names = ["ghost-1", "iplock-a", "ghost-2", "iplock-b", "ghost-3", "iplock-a", "ghost-4", "iplock-b",
             "ghost-5", "ghost-6"]
    statuses = await fail_ten_times(Browser(gateway, "10.20.1.1"), names)
    assert statuses == [200] * 9 + [429]
    # That address is locked for every account, even with the right password…
    same = await Browser(gateway, "10.20.1.1").password("iplock-b", PASSWORD)
    assert same.status_code == 429
    assert "解除" in same.text
    # …and another address is not, for the very same account (which has two failures: not locked).
    assert (await Browser(gateway, "10.20.1.2").password("iplock-b", PASSWORD)).status_code == 303


async def test_an_ipv6_address_is_locked_by_its_slash_64(gateway: InProcessGateway) -> None:
    statuses = await fail_ten_times(Browser(gateway, "2001:db8:20:1::a"), [f"nobody-{i}" for i in range(10)])
    assert statuses == [200] * 9 + [429]
    assert (await Browser(gateway, "2001:db8:20:1::b").password("iplock-c", PASSWORD)).status_code == 429  # same /64
    assert (await Browser(gateway, "2001:db8:20:2::a").password("iplock-c", PASSWORD)).status_code == 303  # another


# -- the half-done login ----------------------------------------------------------------------------------------


async def test_the_half_done_login_is_bound_to_the_browser_address_and_cookie(gateway: InProcessGateway,
                                                                              runtime: InProcessRuntime) -> None:
    owner = Browser(gateway, "10.20.2.1")
    r = await owner.password("pending", PASSWORD)
    assert r.status_code == 303
    pending = [c for c in r.set_cookies if c.startswith("govgate-pending=")]
    assert len(pending) == 1
    assert f"Max-Age={PENDING_TTL_SECONDS}" in pending[0]
    assert "HttpOnly" in pending[0]
    token = await owner.csrf(f"{PREFIX}/mfa")
    code = code_now(runtime, SECRET)

    # Every cookie of the owner's browser and its CSRF token, replayed from another address: no session.
    thief = Browser(gateway, "10.20.2.2", cookies=owner.cookies)
    stolen = await thief.post(f"{PREFIX}/mfa", {"code": code, "csrf": token})
    assert stolen.status_code == 303
    assert stolen.location == f"{PREFIX}/login"
    assert session_cookie(stolen) is None
    assert (await thief.get(f"{PREFIX}/mfa")).status_code == 303  # no MFA form either

    # The owner's own address without the pending cookie: no session.
    cookies = {k: v for k, v in owner.cookies.items() if k != "govgate-pending"}
    assert len(cookies) == len(owner.cookies) - 1
    bare = Browser(gateway, "10.20.2.1", cookies=cookies)
    r = await bare.post(f"{PREFIX}/mfa", {"code": code, "csrf": token})
    assert r.status_code == 303
    assert r.location == f"{PREFIX}/login"
    assert session_cookie(r) is None

    # The real browser still completes its login (the refusals above were about binding, not the code).
    done = await owner.post(f"{PREFIX}/mfa", {"code": code, "csrf": token})
    assert done.status_code == 303
    assert done.location == "/oa/"
    assert session_cookie(done)


async def test_the_half_done_login_lasts_five_minutes_by_its_creation_time_not_only_the_stores_expiry(
        gateway: InProcessGateway, runtime: InProcessRuntime, store_url: str | None) -> None:
    stale = Browser(gateway, "10.20.3.1")
    assert (await stale.password("pendingttl", PASSWORD)).status_code == 303
    pending_id = stale.cookies["govgate-pending"]
    stale_token = await stale.csrf(f"{PREFIX}/mfa")
    if store_url is not None:  # Redis also drops the key after the same five minutes
        client = redis.Redis.from_url(store_url, decode_responses=True)
        key = "govgate:pending:" + hashlib.sha256(pending_id.encode()).hexdigest()
        try:
            assert (PENDING_TTL_SECONDS - 10) * 1000 < client.pttl(key) <= PENDING_TTL_SECONDS * 1000
        finally:
            client.close()
    runtime.clock.advance(PENDING_TTL + timedelta(seconds=1))
    r = await stale.post(f"{PREFIX}/mfa", {"code": code_now(runtime, SECRET), "csrf": stale_token})
    assert r.status_code == 303
    assert r.location == f"{PREFIX}/login"
    assert session_cookie(r) is None
    assert await runtime.store.get_pending_login(pending_id) is None  # and the stale state is dropped

    fresh = Browser(gateway, "10.20.3.2")
    assert (await fresh.password("pendingttl", PASSWORD)).status_code == 303
    fresh_token = await fresh.csrf(f"{PREFIX}/mfa")
    runtime.clock.advance(PENDING_TTL - timedelta(minutes=1))  # four minutes old: still good
    r = await fresh.post(f"{PREFIX}/mfa", {"code": code_now(runtime, SECRET), "csrf": fresh_token})
    assert r.status_code == 303
    assert r.location == "/oa/"
    assert session_cookie(r)


async def test_the_memory_store_forgets_a_half_done_login_after_five_minutes() -> None:
    """Store level: the memory store with the gateway's TTL, on its own monotonic clock."""
    assert PENDING_TTL_SECONDS == 300
    clock = [1000.0]
    mem = MemoryStore(monotonic=lambda: clock[0])
    runtime = InProcessRuntime()
    pending = PendingLogin(id="p" * 43, account="someone", next="/oa/", client="10.0.0.1", created=runtime.now())
    await mem.put_pending_login(pending, timedelta(seconds=PENDING_TTL_SECONDS))
    clock[0] += PENDING_TTL_SECONDS - 1
    assert await mem.get_pending_login(pending.id) == pending
    clock[0] += 2
    assert await mem.get_pending_login(pending.id) is None


async def test_a_half_done_login_is_void_after_the_password_is_changed(gateway: InProcessGateway,
                                                                       runtime: InProcessRuntime) -> None:
    attacker = Browser(gateway, "10.9.3.1")
    assert (await attacker.password("halfway", PASSWORD)).status_code == 303  # password step done
    token = await attacker.csrf(f"{PREFIX}/mfa")  # and the MFA form fetched
    runtime.clock.advance(timedelta(seconds=20))
    changed = replace(ACCOUNTS.get("halfway"), password_changed=runtime.now())  # `govgate account passwd`
    runtime.accounts = Accounts(tuple(changed if a.name == "halfway" else a for a in ACCOUNTS))
    r = await attacker.post(f"{PREFIX}/mfa", {"code": code_now(runtime, SECRET), "csrf": token})
    assert r.status_code == 303
    assert r.location.endswith(f"{PREFIX}/login")  # back to the start, no session
    assert (await attacker.get("/oa/")).status_code == 303
    assert (await attacker.get(f"{PREFIX}/mfa")).status_code == 303


async def test_signing_out_also_ends_a_half_done_login(gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    b = Browser(gateway, "10.9.4.1")
    assert (await b.password("signout", PASSWORD)).status_code == 303  # password given, no code yet
    mfa_token = await b.csrf(f"{PREFIX}/mfa")
    r = await b.post(f"{PREFIX}/logout", {"csrf": await b.csrf(f"{PREFIX}/logout")})
    assert r.status_code == 200
    r = await b.post(f"{PREFIX}/mfa", {"code": code_now(runtime, SECRET), "csrf": mfa_token})
    assert r.status_code == 303
    assert r.location.endswith(f"{PREFIX}/login")  # back to the start, no session
    assert (await b.get("/oa/")).status_code == 303


# -- session fixation --------------------------------------------------------------------------------------------


async def test_a_session_id_set_before_login_is_replaced_by_a_new_one(gateway: InProcessGateway) -> None:
    planted = "F1xat10n-" + "A" * 34
    b = Browser(gateway, cookies={"govgate-session": planted})
    r = await b.login("fixation", PASSWORD, SECRET)
    assert r.status_code == 303
    issued = session_cookie(r)
    assert issued
    assert issued != planted
    assert b.cookies["govgate-session"] == issued  # replaced in the browser too
    assert (await b.get("/echo/staff/me")).portal_headers["x-govgate-user"] == "fixation"
    # The planted value opens nothing: an attacker who set it has no session.
    assert (await Browser(gateway, cookies={"govgate-session": planted}).get("/echo/staff/me")).status_code == 303


# -- what the portal receives ------------------------------------------------------------------------------------


async def test_the_portal_receives_user_groups_and_device_set_by_the_gate(gateway: InProcessGateway) -> None:
    spoofed = [("X-GovGate-User", "admin"), ("X-GovGate-Groups", "admin"), ("X-GovGate-Device", "fake-device")]
    # From a private address outside the office network, the enrolled device is what lets staff in.
    b = Browser(gateway, "192.168.7.7", cookies={"govgate-device": DEVICE_TOKEN})
    assert (await b.login("headers", PASSWORD, SECRET, next_path="/echo/staff/x")).status_code == 303
    seen = (await b.get("/echo/staff/x", headers=spoofed)).portal_headers
    assert seen["x-govgate-user"] == "headers"
    assert seen["x-govgate-groups"] == "finance,staff"
    assert seen["x-govgate-device"] == "hd-phone"
    assert DEVICE_TOKEN not in json.dumps(seen)  # the device cookie never reaches the portal
    # The same session without the device cookie: from that address, refused by the network check.
    session = b.cookies["govgate-session"]
    no_device = Browser(gateway, "192.168.7.7", cookies={"govgate-session": session})
    r = await no_device.get("/echo/staff/x", headers=[("Accept", "application/json")])
    assert r.status_code == 403
    assert r.json()["reason"] == "network"
    # From the office, without the device: the session was opened on the device and is used on it only (Art. 30,
    # account–device binding): it ends, and the browser logs in again.
    office = Browser(gateway, cookies={"govgate-session": session})
    ended = await office.get("/echo/staff/x", headers=spoofed)
    assert ended.status_code == 303
    assert ended.location == f"{PREFIX}/login?next=/echo/staff/x"
    assert (await b.get("/echo/staff/x")).status_code == 303  # ended for its device too: the id is gone
    # Logged in from the office without a device: user and groups, and no device header (the client's is removed).
    gateway.runtime.clock.advance(timedelta(seconds=30))  # a new TOTP step: each code logs in once
    office = Browser(gateway)
    assert (await office.login("headers", PASSWORD, SECRET, next_path="/echo/staff/x")).status_code == 303
    seen = (await office.get("/echo/staff/x", headers=spoofed)).portal_headers
    assert seen["x-govgate-user"] == "headers"
    assert seen["x-govgate-groups"] == "finance,staff"
    assert "x-govgate-device" not in seen


ZS_TOKEN, LS_TOKEN = "enrol-zs-4Tn8Kd3Wp6Qm2xVb9Lr7", "enrol-ls-9Lr4Tn8Kd3Wp6Qm2xVb7"


async def test_a_session_opened_on_a_device_is_used_on_that_device_only(store_url: str | None) -> None:
    # Art. 30 (账号与设备绑定). Found in review: zhangsan's session id, opened in the office on his device, went on
    # working from a home address on lisi's enrolled device (the portal was told zhangsan on ls-pc).
    store = RedisStore.from_url(store_url, timedelta(seconds=2)) if store_url else MemoryStore()
    devices = [device("zs-pc", "zhangsan", token=ZS_TOKEN), device("ls-pc", "lisi", token=LS_TOKEN)]
    runtime = InProcessRuntime(policy=policy(devices=devices), accounts=ACCOUNTS, store=store)
    try:
        async with InProcessGateway(runtime) as gateway:
            own = Browser(gateway, cookies={"govgate-device": ZS_TOKEN})  # in the office, on his own device
            assert (await own.login("zhangsan", PASSWORD, SECRET, next_path="/echo/staff/x")).status_code == 303
            assert (await own.get("/echo/staff/x")).portal_headers["x-govgate-device"] == "zs-pc"
            session = own.cookies["govgate-session"]
            elsewhere = Browser(gateway, "111.235.160.1", cookies={"govgate-session": session,
                                                                   "govgate-device": LS_TOKEN})
            answer = await elsewhere.get("/echo/staff/x")
            assert answer.status_code == 303
            assert answer.location == f"{PREFIX}/login?next=/echo/staff/x"
            assert any(c.startswith("govgate-session=;") for c in answer.set_cookies)  # cleared
            assert (await own.get("/echo/staff/x")).status_code == 303  # the session is over on its device too
            [ended] = [e for e in runtime.events if e.event == "session.expired"]
            assert (ended.account, ended.reason, ended.device, ended.article) == ("zhangsan", "device", "ls-pc",
                                                                                  "Art. 30")
            # A session opened without a device goes on when the browser becomes one (enrolled, then approved).
            runtime.clock.advance(timedelta(seconds=30))
            plain = Browser(gateway)
            assert (await plain.login("zhangsan", PASSWORD, SECRET, next_path="/echo/staff/x")).status_code == 303
            plain.cookies["govgate-device"] = ZS_TOKEN
            assert (await plain.get("/echo/staff/x")).portal_headers["x-govgate-device"] == "zs-pc"
    finally:
        await store.close()


# -- session idle expiry ------------------------------------------------------------------------------------------


async def test_an_idle_session_ends_on_this_store_and_its_cookie_is_cleared(gateway: InProcessGateway,
                                                                            runtime: InProcessRuntime) -> None:
    b = Browser(gateway)
    assert (await b.login("napper", PASSWORD, SECRET)).status_code == 303
    session = b.cookies["govgate-session"]
    ask = Browser(gateway, cookies={"govgate-session": session})
    assert (await ask.get("/oa/")).forwarded
    # A request renews the session: idle means no request at all for idle_timeout (15 minutes here).
    runtime.clock.advance(timedelta(minutes=15))
    r = await ask.get("/oa/")
    assert r.status_code == 303
    assert r.location.startswith(f"{PREFIX}/login?next=")
    assert any(c.startswith("govgate-session=;") for c in r.set_cookies)
    assert (await Browser(gateway, cookies={"govgate-session": session}).get("/oa/")).status_code == 303


# -- Redis round trips per staff request ------------------------------------------------------------------------


async def test_a_staff_request_with_a_valid_session_costs_at_most_one_redis_round_trip(
        gateway: InProcessGateway, store_url: str | None, redis_server: RedisServer) -> None:
    if store_url is None:
        pytest.skip("Redis store only")
    requests = 30
    b = Browser(gateway)
    assert (await b.login("roundtrip", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded  # warm: scripts loaded, connection open
    monitor = RedisMonitor(redis_server.port)
    try:
        start = monitor.mark()
        began = time.monotonic()
        for _ in range(requests):
            assert (await b.get("/echo/staff/x")).forwarded
        end = monitor.mark()
        busy = monitor.client_commands(start, end)
    finally:
        monitor.close()
    assert busy, "MONITOR saw no command from the gateway: the measurement is broken"
    assert len(busy) / requests <= 1.0, (f"{len(busy)} Redis commands for {requests} staff requests in "
                                         f"{time.monotonic() - began:.1f}s: {sorted(set(busy))}")
