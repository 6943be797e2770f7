"""Staff login through a real gateway (Art. 30): password + TOTP, CSRF, replay, lockout, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from tests.e2e.harness import (
    OFFICE_ADDRESS,
    AccountTemplates,
    Gateway,
    Upstream,
    add_account,
    start_gateway,
    start_store_gateway,
)
from tests.e2e.login import Browser, fresh_code
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

PASSWORD = "Correct-horse-battery-9"


ACCOUNTS = ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi", "zhouba", "wujiu", "qianshi"]


@pytest.fixture(scope="module")
def login_gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, store: str,
                  store_redis_url: str | None,
                  account_templates: AccountTemplates) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """One gateway per store (memory, then a real Redis): every test below runs against both."""
    workdir = tmp_path_factory.mktemp(f"login-{store}")
    (workdir / "secrets").mkdir()
    g, secrets = start_store_gateway(workdir, upstream.url, store, store_redis_url, account_templates,
                                     {name: (PASSWORD, "staff") for name in ACCOUNTS},
                                     session={"idle_timeout": "15m", "absolute_timeout": "8h"})
    yield g, secrets
    assert g.stop() == 0


@pytest.fixture(scope="module")
def gw(login_gateway: tuple[Gateway, dict[str, str]]) -> Gateway:
    return login_gateway[0]


@pytest.fixture(scope="module")
def accounts(login_gateway: tuple[Gateway, dict[str, str]]) -> dict[str, str]:
    return login_gateway[1]


def browser(gw: Gateway, ip: str = OFFICE_ADDRESS) -> Browser:
    return Browser(gw.url, ip)


def test_full_login_reaches_the_portal_with_identity_headers(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw)
    r = b.login("zhangsan", PASSWORD, accounts["zhangsan"], next_path="/echo/staff/inbox")
    assert r.status_code == 303
    assert r.headers["location"] == "/echo/staff/inbox"
    cookie = r.headers.get_list("set-cookie")
    session = [c for c in cookie if c.startswith("govgate-session=")]
    assert session
    assert "HttpOnly" in session[0]
    assert "SameSite=Lax" in session[0]
    echo = b.http.get("/echo/staff/inbox")
    assert echo.status_code == 200
    headers = {k.lower(): v for k, v in echo.json()["headers"]}
    assert headers["x-govgate-user"] == "zhangsan"
    assert headers["x-govgate-groups"] == "staff"


def test_unknown_account_and_wrong_password_get_the_same_answer(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw, "10.9.0.1")
    wrong = b.password("lisi", "Not-the-password-1")
    unknown = b.password("nobody-here", "Not-the-password-1")
    assert wrong.status_code == unknown.status_code == 200
    strip = lambda t: t.replace("lisi", "X").replace("nobody-here", "X")  # noqa: E731
    import re

    token = re.compile(r'value="[^"]{20,}"')
    assert token.sub("", strip(wrong.text)) == token.sub("", strip(unknown.text))


def test_a_totp_code_is_accepted_once_only(gw: Gateway, accounts: dict[str, str]) -> None:
    code = fresh_code(accounts["wangwu"])
    first = browser(gw, "10.9.0.2")
    assert first.password("wangwu", PASSWORD).status_code == 303
    assert first.mfa(code).status_code == 303
    second = browser(gw, "10.9.0.3")
    assert second.password("wangwu", PASSWORD).status_code == 303
    replay = second.mfa(code)
    assert replay.status_code == 200
    assert "动态口令错误或已使用" in replay.text


def test_login_without_a_valid_csrf_token_is_refused(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw, "10.9.0.4")
    b.csrf("/__govgate/login")
    r = b.http.post("/__govgate/login", data={"username": "zhaoliu", "password": PASSWORD, "csrf": "forged",
                                              "next": "/oa/"})
    assert r.status_code == 400
    assert "mfa" not in r.headers.get("location", "")


def test_next_cannot_send_the_browser_off_site(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw, "10.9.0.5")
    r = b.login("sunqi", PASSWORD, accounts["sunqi"], next_path="//evil.example/x")
    assert r.status_code == 303
    assert r.headers["location"] == "/"


def test_locked_account_gets_429_even_with_the_right_password(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw, "10.9.0.6")
    for _ in range(3):  # max_failures: 3 in the test policy
        last = b.password("zhouba", "Wrong-password-123")
    assert last.status_code == 429
    right = browser(gw, "10.9.0.7").password("zhouba", PASSWORD)
    assert right.status_code == 429
    assert "解除" in right.text  # says when the lock ends
    assert "mfa" not in right.headers.get("location", "")


def test_logout_ends_the_session(gw: Gateway, accounts: dict[str, str]) -> None:
    b = browser(gw, "10.9.0.8")
    assert b.login("wujiu", PASSWORD, accounts["wujiu"]).status_code == 303
    assert b.http.get("/oa/").status_code == 200
    token = b.csrf("/__govgate/logout")
    r = b.http.post("/__govgate/logout", data={"csrf": token})
    assert r.status_code == 200
    assert b.http.get("/oa/").status_code == 303


def test_a_forged_session_cookie_goes_to_login_and_is_cleared(gw: Gateway) -> None:
    b = browser(gw, "10.9.0.9")
    r = b.http.get("/oa/", headers={"Cookie": "govgate-session=" + "A" * 43})
    assert r.status_code == 303
    assert any(c.startswith("govgate-session=;") for c in r.headers.get_list("set-cookie"))


def test_secret_values_are_never_logged(gw: Gateway, accounts: dict[str, str]) -> None:
    text = gw.output.text()
    assert PASSWORD not in text
    for secret in accounts.values():
        assert secret not in text
    assert pyotp  # codes are short-lived; passwords and secrets are what must never appear


def test_account_login_across_two_instances_sharing_nothing_is_independent(
    upstream: Upstream, workdir: Path
) -> None:
    # With the memory store each instance keeps its own sessions: a session from one is unknown to another.
    policy = workdir / "policy.yaml"
    write_policy(policy, policy_data(workdir, upstream.url))
    secret = add_account(policy, "solo", PASSWORD)
    one, two = start_gateway(policy), start_gateway(policy)
    try:
        b = Browser(one.url, OFFICE_ADDRESS)
        assert b.login("solo", PASSWORD, secret).status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in b.http.cookies.items())
        assert Browser(two.url, OFFICE_ADDRESS).http.get("/oa/", headers={"Cookie": cookie}).status_code == 303
    finally:
        one.stop()
        two.stop()


def test_a_burst_of_concurrent_wrong_passwords_is_still_held_to_max_failures(
    gw: Gateway, accounts: dict[str, str]
) -> None:
    import asyncio

    import httpx

    async def burst() -> list[int]:
        b = browser(gw, "10.9.1.1")
        token = b.csrf("/__govgate/login")
        cookies = dict(b.http.cookies.items())
        async with httpx.AsyncClient(base_url=gw.url, cookies=cookies, timeout=30,
                                     headers={"X-Forwarded-For": "10.9.1.1"}) as c:
            async def attempt(i: int) -> int:
                r = await c.post("/__govgate/login", data={"username": "qianshi", "password": f"Wrong-guess-{i:04d}x",
                                                           "csrf": token, "next": "/oa/"})
                return r.status_code

            return list(await asyncio.gather(*(attempt(i) for i in range(12))))

    statuses = asyncio.run(burst())
    # max_failures is 3: two wrong answers, then the lock; every later attempt is refused unverified.
    assert statuses.count(200) == 2
    assert statuses.count(429) == 10
    assert browser(gw, "10.9.1.2").password("qianshi", PASSWORD).status_code == 429


def test_a_compressed_login_form_is_refused_before_it_is_inflated(gw: Gateway) -> None:
    import brotli

    b = browser(gw, "10.9.1.3")
    token = b.csrf("/__govgate/login")
    body = brotli.compress(b"username=x&password=" + b"A" * 10_000_000 + b"&csrf=" + token.encode())
    r = b.http.post("/__govgate/login", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "br"})
    assert r.status_code == 400


def run_cli(gw: Gateway, *args: str, stdin: str = "") -> None:
    import subprocess

    from tests.command import GOVGATE

    subprocess.run([*GOVGATE, *args, "-p", str(gw.policy_path)], input=stdin, capture_output=True, text=True,
                   check=True, cwd=gw.policy_path.parent)


def test_an_admin_unlock_really_unlocks_and_failures_count_again_afterwards(gw: Gateway) -> None:
    from tests.waiting import wait_for

    gw.add_account("unlockme", PASSWORD)
    b = browser(gw, "10.9.2.1")
    for _ in range(3):
        last = b.password("unlockme", "Wrong-password-123")
    assert last.status_code == 429
    before = gw.policy_version()
    run_cli(gw, "account", "unlock", "unlockme")
    wait_for(lambda: gw.policy_version() > before, 5, "the gateway to apply the unlock")
    # Unlocked for real: a wrong password is counted and answered as wrong (not 429), then the right one works.
    assert browser(gw, "10.9.2.2").password("unlockme", "Wrong-password-456").status_code == 200
    assert browser(gw, "10.9.2.3").password("unlockme", PASSWORD).status_code == 303


def test_a_half_done_login_is_void_after_the_password_is_changed(gw: Gateway) -> None:
    from tests.waiting import wait_for

    secret = gw.add_account("halfway", PASSWORD)
    attacker = browser(gw, "10.9.3.1")
    assert attacker.password("halfway", PASSWORD).status_code == 303  # password step done
    token = attacker.csrf("/__govgate/mfa")  # and the MFA form fetched
    before = gw.policy_version()
    run_cli(gw, "account", "passwd", "halfway", "--password-stdin", stdin="Brand-new-secret-77\n")
    wait_for(lambda: gw.policy_version() > before, 5, "the gateway to see the new password")
    r = attacker.http.post("/__govgate/mfa", data={"code": fresh_code(secret), "csrf": token})
    assert r.status_code == 303
    assert r.headers["location"].endswith("/__govgate/login")  # back to the start, no session
    assert attacker.http.get("/oa/").status_code == 303
    assert attacker.http.get("/__govgate/mfa").status_code == 303


def test_signing_out_also_ends_a_half_done_login(gw: Gateway) -> None:
    secret = gw.add_account("signout", PASSWORD)
    b = browser(gw, "10.9.4.1")
    assert b.password("signout", PASSWORD).status_code == 303  # password given, no code yet
    mfa_token = b.csrf("/__govgate/mfa")
    r = b.http.post("/__govgate/logout", data={"csrf": b.csrf("/__govgate/logout")})
    assert r.status_code == 200
    r = b.http.post("/__govgate/mfa", data={"code": fresh_code(secret), "csrf": mfa_token})
    assert r.status_code == 303
    assert r.headers["location"].endswith("/__govgate/login")  # back to the start, no session
    assert b.http.get("/oa/").status_code == 303


@pytest.mark.parametrize("field", ["username", "password", "csrf"])
def test_form_fields_that_are_not_utf8_get_a_400_and_are_not_counted_as_attempts(gw: Gateway, field: str) -> None:
    name = f"utf8{field}"
    gw.add_account(name, PASSWORD)
    b = browser(gw, f"10.9.5.{len(field)}")
    fields = {"username": name, "password": "Wrong-password-999", "csrf": b.csrf("/__govgate/login"), "next": "/oa/"}
    body = "&".join(f"{k}={'%FF%FE' if k == field else v}" for k, v in fields.items())
    for _ in range(5):  # more than max_failures: none of them may count, nor lock the account or the address
        r = b.http.post("/__govgate/login", content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400, r.text[:300]
    assert b.password(name, PASSWORD).status_code == 303  # not locked
