"""More of staff login through a real gateway (Art. 30), on the memory store and on a real Redis.

TOTP failures and the lockout, lockout by source address, the pre-MFA state (its life and its binding to
the browser), session fixation, the identity headers the portal receives, session idle expiry, and the
cost of a staff request in Redis round trips.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
import redis

from govgate.core.login import PENDING_TTL
from govgate.store.base import PendingLogin
from govgate.store.memory import MemoryStore
from tests.e2e.harness import OFFICE_ADDRESS, AccountTemplates, Gateway, Upstream, start_store_gateway
from tests.e2e.login import Browser, fresh_code, wrong_code
from tests.redis_server import RedisServer
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Another-long-passphrase-31"
WRONG = "Not-the-right-one-77"
DEVICE_TOKEN = "enrol-7Qm2xVb9Lr4Tn8Kd3Wp6"
IDLE_SECONDS = 4
TZ = ZoneInfo("Asia/Shanghai")
ACCOUNTS = {
    "mfalock": "staff", "iplock-a": "staff", "iplock-b": "staff", "iplock-c": "staff", "pending": "staff",
    "pendingttl": "staff", "fixation": "staff", "headers": "staff,finance", "roundtrip": "staff", "napper": "staff",
    "sessionlock": "staff",
}
PENDING_TTL_SECONDS = int(PENDING_TTL.total_seconds())
LOCK_BODY_NOISE = re.compile(r"<code>[^<]*</code>")  # the request id differs per answer


@pytest.fixture(scope="module")
def login_gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, store: str,
                  store_redis_url: str | None,
                  account_templates: AccountTemplates) -> Iterator[tuple[Gateway, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp(f"login-more-{store}")
    (workdir / "secrets").mkdir()
    g, secrets = start_store_gateway(
        workdir, upstream.url, store, store_redis_url, account_templates,
        {name: (PASSWORD, groups) for name, groups in ACCOUNTS.items()},
        session={"idle_timeout": f"{IDLE_SECONDS}s", "absolute_timeout": "8h"},
        devices=[{"id": "hd-phone", "account": "headers", "token": DEVICE_TOKEN}],
    )
    yield g, secrets
    assert g.stop() == 0


@pytest.fixture(scope="module")
def gw(login_gateway: tuple[Gateway, dict[str, str]]) -> Gateway:
    return login_gateway[0]


@pytest.fixture(scope="module")
def secrets(login_gateway: tuple[Gateway, dict[str, str]]) -> dict[str, str]:
    return login_gateway[1]


def session_cookie(r: httpx.Response) -> str | None:
    for header in r.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "govgate-session":
            return rest.split(";", 1)[0]
    return None


def upstream_headers(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 200, r.text[:300]
    return {k.lower(): v for k, v in r.json()["headers"]}


# -- TOTP failures count towards the lockout (contract §5) --------------------------------------------------


def test_wrong_totp_codes_lock_the_account_and_mfa_then_answers_429_with_the_lock_end(
    gw: Gateway, secrets: dict[str, str]
) -> None:
    secret = secrets["mfalock"]
    waiting = Browser(gw.url, "10.20.0.1")  # a second browser, half-way through its own login
    assert waiting.password("mfalock", PASSWORD).status_code == 303
    guesser = Browser(gw.url, "10.20.0.2")
    assert guesser.password("mfalock", PASSWORD).status_code == 303
    answers = [guesser.mfa(wrong_code(secret)) for _ in range(3)]  # max_failures: 3
    locked_at = datetime.now(TZ)
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert "动态口令错误或已使用" in answers[0].text

    # The waiting browser now posts the right code: 429 with when the lock ends, no session. (A code of the
    # current step: while locked nothing is verified, so nothing is used up, and no wait for a fresh step.)
    right = waiting.mfa(pyotp.TOTP(secret).now())
    assert right.status_code == 429
    assert session_cookie(right) is None
    assert "location" not in right.headers
    wrong = waiting.mfa(wrong_code(secret))
    assert wrong.status_code == 429
    # The same answer whether the code was right or wrong (only the request id differs).
    assert LOCK_BODY_NOISE.sub("", right.text) == LOCK_BODY_NOISE.sub("", wrong.text)
    token = waiting.csrf("/__govgate/mfa")
    as_json = waiting.http.post("/__govgate/mfa", data={"code": pyotp.TOTP(secret).now(), "csrf": token},
                                headers={"Accept": "application/json"})
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
    assert Browser(gw.url, "10.20.0.9").password("mfalock", PASSWORD).status_code == 429


def test_a_lock_reached_elsewhere_stops_an_open_session_of_the_account(gw: Gateway, secrets: dict[str, str]) -> None:
    working = Browser(gw.url, OFFICE_ADDRESS)
    assert working.login("sessionlock", PASSWORD, secrets["sessionlock"]).status_code == 303
    assert working.http.get("/oa/").status_code == 200
    guesser = Browser(gw.url, "10.20.0.5")
    assert [guesser.password("sessionlock", WRONG).status_code for _ in range(3)] == [200, 200, 429]
    r = working.http.get("/oa/", headers={"Accept": "application/json"})
    assert r.status_code == 403  # contract §4.6: a locked account is refused, session or not
    assert r.json()["reason"] == "locked"


# -- lockout by source address (login.ip_max_failures) ---------------------------------------------------------


def fail_ten_times(b: Browser, names: list[str]) -> list[int]:
    assert len(names) == 10  # ip_max_failures: 10 in the test policy
    return [b.password(name, WRONG).status_code for name in names]


def test_an_address_is_locked_after_ip_max_failures_across_accounts(gw: Gateway) -> None:
    # Ten failures from one address, never three on one account: only the address limit can lock.
    names = ["ghost-1", "iplock-a", "ghost-2", "iplock-b", "ghost-3", "iplock-a", "ghost-4", "iplock-b",
             "ghost-5", "ghost-6"]
    statuses = fail_ten_times(Browser(gw.url, "10.20.1.1"), names)
    assert statuses == [200] * 9 + [429]
    # That address is locked for every account, even with the right password…
    same = Browser(gw.url, "10.20.1.1").password("iplock-b", PASSWORD)
    assert same.status_code == 429
    assert "解除" in same.text
    # …and another address is not, for the very same account (which has two failures: not locked).
    assert Browser(gw.url, "10.20.1.2").password("iplock-b", PASSWORD).status_code == 303


def test_an_ipv6_address_is_locked_by_its_slash_64(gw: Gateway) -> None:
    statuses = fail_ten_times(Browser(gw.url, "2001:db8:20:1::a"), [f"nobody-{i}" for i in range(10)])
    assert statuses == [200] * 9 + [429]
    assert Browser(gw.url, "2001:db8:20:1::b").password("iplock-c", PASSWORD).status_code == 429  # same /64
    assert Browser(gw.url, "2001:db8:20:2::a").password("iplock-c", PASSWORD).status_code == 303  # another /64


# -- the pre-MFA state ------------------------------------------------------------------------------------


def test_the_half_done_login_is_bound_to_the_browser_address_and_cookie(gw: Gateway, secrets: dict[str, str]) -> None:
    secret = secrets["pending"]
    owner = Browser(gw.url, "10.20.2.1")
    r = owner.password("pending", PASSWORD)
    assert r.status_code == 303
    pending = [c for c in r.headers.get_list("set-cookie") if c.startswith("govgate-pending=")]
    assert len(pending) == 1
    assert f"Max-Age={PENDING_TTL_SECONDS}" in pending[0]
    assert "HttpOnly" in pending[0]
    token = owner.csrf("/__govgate/mfa")
    code = pyotp.TOTP(secret).now()  # a right code (not taken from fresh_code: it must stay usable below)

    # Every cookie of the owner's browser and its CSRF token, replayed from another address: no session.
    thief = Browser(gw.url, "10.20.2.2", cookies=dict(owner.http.cookies.items()))
    stolen = thief.http.post("/__govgate/mfa", data={"code": code, "csrf": token})
    assert stolen.status_code == 303
    assert stolen.headers["location"] == "/__govgate/login"
    assert session_cookie(stolen) is None
    assert thief.http.get("/__govgate/mfa").status_code == 303  # no MFA form either

    # The owner's own address without the pending cookie: no session.
    cookies = {k: v for k, v in owner.http.cookies.items() if k != "govgate-pending"}
    assert len(cookies) == len(owner.http.cookies) - 1
    bare = Browser(gw.url, "10.20.2.1", cookies=cookies)
    r = bare.http.post("/__govgate/mfa", data={"code": code, "csrf": token})
    assert r.status_code == 303
    assert r.headers["location"] == "/__govgate/login"
    assert session_cookie(r) is None

    # The real browser still completes its login (the refusals above were about binding, not the code).
    done = owner.http.post("/__govgate/mfa", data={"code": fresh_code(secret), "csrf": token})
    assert done.status_code == 303
    assert done.headers["location"] == "/oa/"
    assert session_cookie(done)


def test_the_half_done_login_expires_after_five_minutes_in_redis(
    gw: Gateway, secrets: dict[str, str], store: str, redis_server: RedisServer
) -> None:
    """The gateway cannot be given a clock, so the five minutes are checked in Redis itself: the key's TTL, and
    a pending record back-dated past its 300 s (the gateway checks ``created`` too, not only the TTL)."""
    if store != "redis":
        pytest.skip("Redis store only: the memory store's five minutes are checked in the next test")
    secret = secrets["pendingttl"]
    client = redis.Redis(port=redis_server.port, decode_responses=True)

    def half_done(ip: str) -> tuple[Browser, str, str]:
        b = Browser(gw.url, ip)
        assert b.password("pendingttl", PASSWORD).status_code == 303
        key = "govgate:pending:" + hashlib.sha256(b.http.cookies["govgate-pending"].encode()).hexdigest()
        return b, key, b.csrf("/__govgate/mfa")

    def backdate(key: str, seconds: int) -> None:
        record = json.loads(client.get(key) or "{}")
        record["created"] -= seconds * 1_000_000  # µs since the epoch
        assert client.set(key, json.dumps(record), keepttl=True, xx=True)

    try:
        stale, stale_key, stale_token = half_done("10.20.3.1")
        ttl_ms = client.pttl(stale_key)
        assert (PENDING_TTL_SECONDS - 10) * 1000 < ttl_ms <= PENDING_TTL_SECONDS * 1000
        backdate(stale_key, PENDING_TTL_SECONDS + 1)
        r = stale.http.post("/__govgate/mfa", data={"code": pyotp.TOTP(secret).now(), "csrf": stale_token})
        assert r.status_code == 303
        assert r.headers["location"] == "/__govgate/login"
        assert session_cookie(r) is None
        assert client.exists(stale_key) == 0  # and the stale state is dropped

        fresh, fresh_key, fresh_token = half_done("10.20.3.2")
        backdate(fresh_key, PENDING_TTL_SECONDS - 60)  # four minutes old: still good
        r = fresh.http.post("/__govgate/mfa", data={"code": fresh_code(secret), "csrf": fresh_token})
        assert r.status_code == 303
        assert r.headers["location"] == "/oa/"
        assert session_cookie(r)
    finally:
        client.close()


async def test_the_memory_store_forgets_a_half_done_login_after_five_minutes() -> None:
    """Store level (no clock control over a running gateway): the memory store with the gateway's TTL."""
    assert PENDING_TTL_SECONDS == 300
    clock = [1000.0]
    mem = MemoryStore(monotonic=lambda: clock[0])
    pending = PendingLogin(id="p" * 43, account="someone", next="/oa/", client="10.0.0.1", created=datetime.now(TZ))
    await mem.put_pending_login(pending, timedelta(seconds=PENDING_TTL_SECONDS))
    clock[0] += PENDING_TTL_SECONDS - 1
    assert await mem.get_pending_login(pending.id) == pending
    clock[0] += 2
    assert await mem.get_pending_login(pending.id) is None


# -- session fixation ---------------------------------------------------------------------------------------


def test_a_session_id_set_before_login_is_replaced_by_a_new_one(gw: Gateway, secrets: dict[str, str]) -> None:
    planted = "F1xat10n-" + "A" * 34
    b = Browser(gw.url, OFFICE_ADDRESS)
    b.http.cookies.set("govgate-session", planted, domain=httpx.URL(gw.url).host, path="/")  # as a browser has it
    r = b.login("fixation", PASSWORD, secrets["fixation"])
    assert r.status_code == 303
    issued = session_cookie(r)
    assert issued
    assert issued != planted
    assert b.http.cookies["govgate-session"] == issued  # replaced in the browser too
    assert upstream_headers(b.http.get("/echo/staff/me"))["x-govgate-user"] == "fixation"
    # The planted value opens nothing: an attacker who set it has no session.
    attacker = Browser(gw.url, OFFICE_ADDRESS, cookies={"govgate-session": planted})
    assert attacker.http.get("/echo/staff/me").status_code == 303


# -- what the portal receives -------------------------------------------------------------------------------


def test_the_portal_receives_user_groups_and_device_set_by_the_gate(gw: Gateway, secrets: dict[str, str]) -> None:
    spoofed = {"X-GovGate-User": "admin", "X-GovGate-Groups": "admin", "X-GovGate-Device": "fake-device"}
    # From a private address outside the office network, the enrolled device is what lets staff in.
    b = Browser(gw.url, "192.168.7.7", cookies={"govgate-device": DEVICE_TOKEN})
    assert b.login("headers", PASSWORD, secrets["headers"], next_path="/echo/staff/x").status_code == 303
    seen = upstream_headers(b.http.get("/echo/staff/x", headers=spoofed))
    assert seen["x-govgate-user"] == "headers"
    assert seen["x-govgate-groups"] == "finance,staff"
    assert seen["x-govgate-device"] == "hd-phone"
    assert DEVICE_TOKEN not in json.dumps(seen)  # the device cookie never reaches the portal
    # The same session without the device cookie: from that address, refused by the network check.
    session = b.http.cookies["govgate-session"]
    no_device = Browser(gw.url, "192.168.7.7", cookies={"govgate-session": session})
    r = no_device.http.get("/echo/staff/x", headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.json()["reason"] == "network"
    # From the office, without the device: user and groups, and no device header (the client's is removed).
    office = Browser(gw.url, OFFICE_ADDRESS, cookies={"govgate-session": session})
    seen = upstream_headers(office.http.get("/echo/staff/x", headers=spoofed))
    assert seen["x-govgate-user"] == "headers"
    assert seen["x-govgate-groups"] == "finance,staff"
    assert "x-govgate-device" not in seen


# -- session idle expiry, on both stores ---------------------------------------------------------------------


def test_an_idle_session_ends_on_this_store_and_its_cookie_is_cleared(gw: Gateway, secrets: dict[str, str]) -> None:
    b = Browser(gw.url, OFFICE_ADDRESS)
    assert b.login("napper", PASSWORD, secrets["napper"]).status_code == 303
    session = b.http.cookies["govgate-session"]
    b.http.cookies.clear()
    ask = Browser(gw.url, OFFICE_ADDRESS)
    assert ask.http.get("/oa/", headers={"Cookie": f"govgate-session={session}"}).status_code == 200
    # A request renews the session: idle means no request at all for idle_timeout (IDLE_SECONDS here).
    idle_from = time.monotonic()
    wait_for(lambda: time.monotonic() - idle_from > IDLE_SECONDS + 0.3, IDLE_SECONDS + 5, "the idle timeout")
    r = ask.http.get("/oa/", headers={"Cookie": f"govgate-session={session}"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/__govgate/login?next=")
    assert any(c.startswith("govgate-session=;") for c in r.headers.get_list("set-cookie"))
    assert ask.http.get("/oa/", headers={"Cookie": f"govgate-session={session}"}).status_code == 303


# -- Redis round trips per staff request ----------------------------------------------------------------------


class RedisMonitor:
    """Every command a Redis server executes, as MONITOR reports it: (client address or "lua", command)."""

    LINE = re.compile(r'^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[tuple[str, str]] = []
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall(b"MONITOR\r\n")
        self._file = self._sock.makefile("rb")
        assert self._file.readline() == b"+OK\r\n"
        self._marker = socket.create_connection(("127.0.0.1", port), timeout=10)
        host, port_ = self._marker.getsockname()[:2]
        self.own = {f"{host}:{port_}"}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self._file:
                m = self.LINE.match(raw.decode("utf-8", "replace"))
                if m:
                    self.commands.append((m.group(1), m.group(2).upper()))
        except (OSError, ValueError):
            pass  # closed by close()

    def mark(self) -> int:
        """Run a marker command and wait until MONITOR has shown it: every command before it is in
        ``commands``, in order. Returns its position."""
        before = len(self.commands)
        self._marker.sendall(b"PING\r\n")
        assert self._marker.recv(64).startswith(b"+PONG")
        wait_for(lambda: any(addr in self.own for addr, _ in self.commands[before:]), 10, "the MONITOR marker")
        return next(i for i in range(before, len(self.commands)) if self.commands[i][0] in self.own)

    def client_commands(self, start: int, end: int) -> list[str]:
        """Commands sent by clients other than us between two marks (those run by scripts excluded)."""
        return [cmd for addr, cmd in self.commands[start + 1:end] if addr != "lua" and addr not in self.own]

    def close(self) -> None:
        self._marker.close()
        self._sock.shutdown(socket.SHUT_RDWR)  # ends the reader's loop (EOF) before anything is closed
        self._thread.join(5)
        self._file.close()
        self._sock.close()


def test_a_staff_request_with_a_valid_session_costs_at_most_one_redis_round_trip(
    gw: Gateway, secrets: dict[str, str], store: str, redis_server: RedisServer
) -> None:
    if store != "redis":
        pytest.skip("Redis store only")
    requests = 30
    b = Browser(gw.url, OFFICE_ADDRESS)
    assert b.login("roundtrip", PASSWORD, secrets["roundtrip"]).status_code == 303
    assert b.http.get("/oa/").status_code == 200  # warm: scripts loaded, connections open
    monitor = RedisMonitor(redis_server.port)
    try:
        # What the gateway sends to Redis with no request at all (reload polling, applying admin marks, …),
        # sampled over as many MONITOR marker round trips as there will be requests: each step waits for its
        # marker to be seen, so the sample takes as long as the machine needs and no fixed sleep.
        idle_start = idle_end = monitor.mark()
        idle_began = time.monotonic()
        for _ in range(requests):
            idle_end = monitor.mark()
        idle_seconds = time.monotonic() - idle_began
        background = monitor.client_commands(idle_start, idle_end)

        busy_began = time.monotonic()
        for _ in range(requests):
            assert b.http.get("/echo/staff/x").status_code == 200
        busy_end = monitor.mark()
        busy_seconds = time.monotonic() - busy_began
        busy = monitor.client_commands(idle_end, busy_end)
    finally:
        monitor.close()
    allowance = len(background) * busy_seconds / idle_seconds  # background commands expected meanwhile
    assert busy, "MONITOR saw no command from the gateway: the measurement is broken"
    per_request = (len(busy) - allowance) / requests
    assert per_request <= 1.0, (f"{len(busy)} Redis commands for {requests} staff requests "
                                f"(background {len(background)} in {idle_seconds:.1f}s): {sorted(set(busy))}")
