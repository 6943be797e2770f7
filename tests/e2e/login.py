"""A staff member's browser, in code: fetch forms, carry cookies and CSRF tokens, log in with TOTP."""

from __future__ import annotations

import re
import time

import httpx
import pyotp

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


_used: dict[str, set[str]] = {}


def fresh_code(secret: str) -> str:
    """A valid code not used before in this test run (codes are accepted once only)."""
    totp = pyotp.TOTP(secret)
    used = _used.setdefault(secret, set())
    deadline = time.monotonic() + 35
    while time.monotonic() < deadline:
        now = time.time()
        for offset in (0, 30, -30):
            code = totp.at(now + offset)
            step = int((now + offset) // 30)
            if f"{step}" not in used:
                used.add(f"{step}")
                return code
        time.sleep(0.5)
    raise AssertionError("no fresh TOTP step within 35 s")
