"""A staff member's browser, in code: fetch forms, carry cookies and CSRF tokens, log in with TOTP."""

from __future__ import annotations

import re
import time

import httpx
import pyotp

from tests.waiting import wait_for

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


OPEN_BROWSERS: list[Browser] = []  # closed after each test by the autouse fixture in conftest.py


class Browser:
    def __init__(self, base: str, client_ip: str | None = None, **kwargs: object) -> None:
        OPEN_BROWSERS.append(self)
        headers = {"X-Forwarded-For": client_ip} if client_ip else {}
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=15, headers=headers,
                                 **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.http.close()

    def csrf(self, page: str) -> str:
        r = self.http.get(page)
        m = CSRF.search(r.text)
        assert m, f"no csrf field on {page}: {r.status_code} {r.text[:300]}"
        return m.group(1)

    def password(self, username: str, password: str, next_path: str = "/oa/") -> httpx.Response:
        token = self.csrf(f"/__govgate/login?next={next_path}")
        return self.http.post("/__govgate/login", data={"username": username, "password": password,
                                                        "csrf": token, "next": next_path})

    def mfa(self, code: str) -> httpx.Response:
        token = self.csrf("/__govgate/mfa")
        return self.http.post("/__govgate/mfa", data={"code": code, "csrf": token})

    def login(self, username: str, password: str, secret: str, next_path: str = "/oa/") -> httpx.Response:
        r = self.password(username, password, next_path)
        assert r.status_code == 303, r.text[:500]
        assert r.headers["location"].endswith("/__govgate/mfa")
        return self.mfa(fresh_code(secret))


_last_step: dict[str, int] = {}


def fresh_code(secret: str) -> str:
    """A valid code of a later time step than any returned before for ``secret`` in this test run: the gateway
    accepts a code once only, and only of a step after the last one used (the current step or the next)."""
    totp = pyotp.TOTP(secret)
    code: list[str] = []

    def unused_step() -> bool:
        now = time.time()
        for offset in (0, 30):
            step = int((now + offset) // 30)
            if step > _last_step.get(secret, -1):
                _last_step[secret] = step
                code.append(totp.at(now + offset))
                return True
        return False

    wait_for(unused_step, 35, "a TOTP step later than the last one used")
    return code[0]


def wrong_code(secret: str) -> str:
    """A well-formed code that no step the gateway could accept (±1 around now, and the next) matches."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(123456, 1_000_000, 7919)) if c not in valid)
