"""The gateway's request side in process, for addon tests: the context addon, the gate's pages and the gate under
mitmproxy's test context (``taddons``), each request's ``request`` hooks run by mitmproxy's own addon manager in
the gateway's order (``govgate.addons.chain``), and a browser that carries cookies and CSRF tokens through them.

Nothing is a stand-in: the runtime is ``InProcessRuntime`` (its store a ``MemoryStore`` or a ``RedisStore`` on a
real server, accounts with real Argon2id hashes and encrypted TOTP secrets, a clock the test moves). The portal is
what the gate forwards to: an ``Answer`` to a forwarded request is the portal's 200, and ``portal_headers`` are
the headers the portal would receive. Use inside an ``async`` test:

    async with InProcessGateway(runtime) as gateway:
        browser = Browser(gateway, client="10.1.2.3")
        answer = await browser.login("zhangsan", PASSWORD, SECRET)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import pyotp
from mitmproxy import http
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons

from govgate.addons.chain import gateway_addons
from tests.addons.flows import OFFICE_CLIENT, PORTAL_HOST, request_flow
from tests.runtime import InProcessRuntime

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PREFIX = "/__govgate"


@dataclass
class Answer:
    """What the browser got back: the gate's own answer, or the portal's (``forwarded``)."""

    flow: http.HTTPFlow

    @property
    def forwarded(self) -> bool:
        return self.flow.response is None

    @property
    def status_code(self) -> int:
        return 200 if self.flow.response is None else self.flow.response.status_code

    @property
    def headers(self) -> http.Headers:
        return http.Headers() if self.flow.response is None else self.flow.response.headers

    @property
    def text(self) -> str:
        return "" if self.flow.response is None else self.flow.response.get_text(strict=False) or ""

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    @property
    def set_cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie")

    @property
    def portal_headers(self) -> dict[str, str]:
        """The request headers the portal receives (lower-case names); only for a forwarded request."""
        assert self.forwarded, f"not forwarded: {self.status_code} {self.text[:300]}"
        return {k.lower(): v for k, v in self.flow.request.headers.items()}


class InProcessGateway:
    """The gateway's addons on ``runtime``, in their order, under mitmproxy's test context."""

    def __init__(self, runtime: InProcessRuntime) -> None:
        self.runtime = runtime
        addons = gateway_addons(runtime, lambda before, after: None)
        self.addons = addons.chain
        self._tctx: taddons.context | None = None

    async def __aenter__(self) -> InProcessGateway:
        self._tctx = taddons.context(*self.addons)  # in the test's event loop
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._tctx is not None
        self._tctx.__exit__(kind, exc, tb)

    async def request(self, flow: http.HTTPFlow) -> Answer:
        """Run every addon's ``request`` hook on ``flow``, as the proxy does once the request is read."""
        assert self._tctx is not None, "use `async with InProcessGateway(runtime)`"
        await self._tctx.master.addons.trigger_event(HttpRequestHook(flow))
        return Answer(flow)


class Browser:
    """A staff member's browser: sends requests from ``client``, keeps the cookies the gate sets."""

    def __init__(self, gateway: InProcessGateway, client: str = OFFICE_CLIENT,
                 cookies: dict[str, str] | None = None) -> None:
        self.gateway = gateway
        self.client = client
        self.cookies: dict[str, str] = dict(cookies or {})

    async def send(self, method: str, path: str, *, headers: Iterable[tuple[str, str]] = (), body: bytes = b"",
                   host: str = PORTAL_HOST) -> Answer:
        sent = list(headers)
        if self.cookies and not any(name.lower() == "cookie" for name, _ in sent):
            sent.append(("cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        answer = await self.gateway.request(request_flow(method, path, client=self.client, host=host, headers=sent,
                                                         body=body))
        self._keep_cookies(answer)
        return answer

    async def get(self, path: str, *, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        return await self.send("GET", path, headers=headers)

    async def post(self, path: str, form: dict[str, str] | bytes, *,
                   headers: Iterable[tuple[str, str]] = ()) -> Answer:
        body = form if isinstance(form, bytes) else urlencode(form).encode()
        sent = [("content-type", "application/x-www-form-urlencoded"), *headers]
        return await self.send("POST", path, headers=sent, body=body)

    def _keep_cookies(self, answer: Answer) -> None:
        for header in answer.set_cookies:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.partition("=")
            if "max-age=0" in attributes.lower().replace(" ", ""):
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value

    async def csrf(self, page: str) -> str:
        answer = await self.get(page)
        found = CSRF.search(answer.text)
        assert found, f"no csrf field on {page}: {answer.status_code} {answer.text[:300]}"
        return found.group(1)

    async def password(self, username: str, password: str, next_path: str = "/oa/") -> Answer:
        token = await self.csrf(f"{PREFIX}/login?next={next_path}")
        return await self.post(f"{PREFIX}/login", {"username": username, "password": password, "csrf": token,
                                                  "next": next_path})

    async def mfa(self, code: str) -> Answer:
        token = await self.csrf(f"{PREFIX}/mfa")
        return await self.post(f"{PREFIX}/mfa", {"code": code, "csrf": token})

    async def login(self, username: str, password: str, secret: str, next_path: str = "/oa/") -> Answer:
        answer = await self.password(username, password, next_path)
        assert answer.status_code == 303, answer.text[:500]
        assert answer.location.endswith(f"{PREFIX}/mfa")
        return await self.mfa(code_now(self.gateway.runtime, secret))


def code_now(runtime: InProcessRuntime, secret: str) -> str:
    """The TOTP code of ``secret`` at the runtime's time."""
    return pyotp.TOTP(secret).at(runtime.now())


def wrong_code(runtime: InProcessRuntime, secret: str) -> str:
    """A well-formed code that no step the gateway accepts now (the current one, one before, one after) matches."""
    totp = pyotp.TOTP(secret)
    now = runtime.now()
    valid = {totp.at(now + timedelta(seconds=offset)) for offset in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(123456, 1_000_000, 7919)) if c not in valid)
