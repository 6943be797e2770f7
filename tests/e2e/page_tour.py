"""A tour of every page the gate serves, in a real browser against real gateways: for the accessibility test
(``tests/e2e/test_pages_accessible.py``, axe-core in headless Chromium) and for the screenshots in
``docs/screenshots/`` (``scripts/screenshots.py``), so that both look at the same pages reached the same way.

``PageTour`` starts two gateways (``govgate run``):

- a working one in front of the sample portal (memory store, two accounts): the login steps, sign-out, the
  Art. 15 warning pages for a link and for forms, and the refusals a person meets (403, 400, 404, 405, 429);
- a broken one in front of ``MisbehavingPortal`` (a portal that hangs, hangs up, or sends a page that cannot be
  rewritten) with an unreachable Redis as its store: 502, 504 and 503.

Each ``Stop`` drives a fresh browser context (cookies of its own; the client address is chosen with
``X-Forwarded-For``, which the test policy trusts from loopback) to one page and returns it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from playwright.sync_api import BrowserContext, Page, Route

from tests.e2e.harness import OFFICE_ADDRESS, US_ADDRESS, Gateway, start_gateway
from tests.e2e.login import fresh_code, wrong_code
from tests.policies import policy_data, write_policy
from tests.ports import free_port

PASSWORD = "Tour-of-the-gate-2026"
PREFIX = "/__govgate"


class MisbehavingPortal:
    """A portal that answers ``/news/close`` by hanging up, ``/news/bad-encoding`` with HTML in a content coding
    nobody knows (the gateway cannot rewrite it), and anything else never (the gateway's timeout answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    conn.close()
                    return
                head += chunk
            target = head.split(b" ", 2)[1]
            if target.startswith(b"/news/close"):
                conn.close()
            elif target.startswith(b"/news/bad-encoding"):
                body = b"<!doctype html><a href='https://www.example.com/'>x</a>"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: x-mystery"
                             b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                self.held.append(conn)  # never answered
        except OSError:
            conn.close()

    def stop(self) -> None:
        self._stop = True
        for conn in self.held:
            conn.close()
        self.sock.close()


@dataclass(frozen=True)
class Stop:
    name: str  # also the screenshot's file name: docs/screenshots/{name}.png
    description: str
    status: int  # what the gate answers there
    visit: Callable[[BrowserContext], Page]


def _client(context: BrowserContext, address: str) -> None:
    context.set_extra_http_headers({"X-Forwarded-For": address})


def _rewrite_request(page: Page, pattern: str, **changes: object) -> None:
    """Send the browser's next request to ``pattern`` changed (method, body, headers), as a script or another
    client could: the gate's real answer comes back to the browser."""
    def change(route: Route) -> None:
        route.continue_(**changes)  # type: ignore[arg-type]

    page.route(pattern, change, times=1)


class PageTour:
    def __init__(self, workdir: Path, upstream: str) -> None:
        self.workdir = workdir
        self.upstream = upstream
        self.portal = MisbehavingPortal()
        self.working: Gateway | None = None
        self.broken: Gateway | None = None
        self.secrets: dict[str, str] = {}

    def __enter__(self) -> PageTour:
        try:
            self.working = self._gateway("working", self.upstream)
            for name in ("liming", "locked"):
                self.secrets[name] = self.working.add_account(name, PASSWORD)
            self.broken = self._gateway("broken", self.portal.url, state={
                "redis": f"redis://127.0.0.1:{free_port()}/0", "timeout": "1s"}, upstream_timeout="1s")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for gateway in (self.working, self.broken):
            if gateway is not None:
                gateway.stop()
        self.portal.stop()

    def _gateway(self, name: str, upstream: str, *, upstream_timeout: str | None = None,
                 **sections: object) -> Gateway:
        folder = self.workdir / name
        (folder / "secrets").mkdir(parents=True)
        data = policy_data(folder, upstream, **sections)
        if upstream_timeout is not None:
            data["gateway"]["upstream_timeout"] = upstream_timeout
        return start_gateway(write_policy(folder / "policy.yaml", data))

    @property
    def url(self) -> str:
        assert self.working is not None
        return self.working.url

    @property
    def broken_url(self) -> str:
        assert self.broken is not None
        return self.broken.url

    # -- the stops ------------------------------------------------------------------------------------

    def stops(self) -> list[Stop]:
        return [
            Stop("login", "the sign-in form (password step)", 200, self._login),
            Stop("login-failed", "the sign-in form after a wrong password", 200, self._login_failed),
            Stop("mfa", "the one-time code form (TOTP step)", 200, self._mfa),
            Stop("mfa-failed", "the one-time code form after a wrong code", 200, self._mfa_failed),
            Stop("logout", "the sign-out button", 200, self._logout),
            Stop("logged-out", "after signing out", 200, self._logged_out),
            Stop("enrol", "enrolling this browser as a device (Art. 19, Art. 30), at the office", 200, self._enrol),
            Stop("leave", "the Art. 15 warning before a link leaves the site", 200, self._leave),
            Stop("leave-form-get", "the warning before a search form (GET) leaves the site", 200, self._form_get),
            Stop("leave-form-post", "the warning before a form (POST) is sent off the site: a continue form", 200,
                 self._form_post),
            Stop("leave-form-not-carried", "the warning for a posted form the gate cannot pass on", 200,
                 self._form_not_carried),
            Stop("leave-invalid", "400: a leave link the gateway did not sign", 400, self._leave_invalid),
            Stop("refused-403", "403: a staff page refused from abroad (reason overseas)", 403, self._refused),
            Stop("bad-request-400", "400: a request the gate cannot read (a login that is not a form)", 400,
                 self._bad_request),
            Stop("not-found-404", "404: a path under the prefix that is no page", 404, self._not_found),
            Stop("method-not-allowed-405", "405: a method a page does not take", 405, self._method_not_allowed),
            Stop("locked-429", "429: a locked account tries again", 429, self._locked),
            Stop("unavailable-503", "503: the state store is down; staff paths fail closed", 503,
                 self._unavailable),
            Stop("portal-unreachable-502", "502: the portal hung up", 502, self._unreachable),
            Stop("page-unavailable-502", "502: a portal page whose links could not be rewritten safely", 502,
                 self._not_rewritten),
            Stop("portal-timeout-504", "504: the portal did not answer in time", 504, self._timeout),
        ]

    def _open(self, context: BrowserContext, url: str, address: str = OFFICE_ADDRESS) -> Page:
        _client(context, address)
        page = context.new_page()
        page.goto(url)
        return page

    def _login(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.url}{PREFIX}/login?next=/oa/")

    def _password(self, context: BrowserContext, name: str, password: str, address: str = OFFICE_ADDRESS) -> Page:
        page = self._open(context, f"{self.url}/oa/", address)
        page.fill("#username", name)
        page.fill("#password", password)
        page.click("button[type=submit]")
        return page

    def _login_failed(self, context: BrowserContext) -> Page:
        return self._password(context, "liming", "Not-the-password-1")

    def _mfa(self, context: BrowserContext) -> Page:
        return self._password(context, "liming", PASSWORD)

    def _mfa_failed(self, context: BrowserContext) -> Page:
        page = self._mfa(context)
        page.fill("#code", wrong_code(self.secrets["liming"]))
        page.click("button[type=submit]")
        return page

    def _logout(self, context: BrowserContext) -> Page:
        page = self._signed_in(context)
        page.goto(f"{self.url}{PREFIX}/logout")
        return page

    def _signed_in(self, context: BrowserContext) -> Page:
        page = self._mfa(context)
        page.fill("#code", fresh_code(self.secrets["liming"]))
        page.click("button[type=submit]")
        return page

    def _enrol(self, context: BrowserContext) -> Page:
        page = self._signed_in(context)
        page.goto(f"{self.url}{PREFIX}/enroll")
        page.fill("#label", "李明的办公电脑")
        return page

    def _logged_out(self, context: BrowserContext) -> Page:
        page = self._logout(context)
        page.click("button[type=submit]")
        return page

    def _leave(self, context: BrowserContext) -> Page:
        page = self._open(context, f"{self.url}/news/2026/notice.html")
        page.click("text=合作方报告 Partner report")
        return page

    def _form(self, context: BrowserContext, form: str, text: str) -> Page:
        page = self._open(context, f"{self.url}/news/forms.html")
        field = "q" if form == "search" else "text"
        page.fill(f"#{form} #{field}", text)
        return page

    def _form_get(self, context: BrowserContext) -> Page:
        page = self._form(context, "search", "公积金 提取")
        page.click("#search button[type=submit]")
        return page

    def _form_post(self, context: BrowserContext) -> Page:
        page = self._form(context, "feedback", "网站很好用。")
        page.click("#feedback button[type=submit]")
        return page

    def _form_not_carried(self, context: BrowserContext) -> Page:
        page = self._form(context, "feedback", "网站很好用。")
        _rewrite_request(page, f"**{PREFIX}/leave-form/**", headers={"content-type": "text/plain"})
        page.click("#feedback button[type=submit]")
        return page

    def _leave_invalid(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.url}{PREFIX}/leave?url=https%3A%2F%2Fwww.example.com%2F&sig=forged")

    def _refused(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.url}/oa/", US_ADDRESS)

    def _bad_request(self, context: BrowserContext) -> Page:
        page = context.new_page()
        _client(context, OFFICE_ADDRESS)
        _rewrite_request(page, f"**{PREFIX}/login", method="POST", post_data="not a form",
                         headers={"content-type": "text/plain"})
        page.goto(f"{self.url}{PREFIX}/login")
        return page

    def _not_found(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.url}{PREFIX}/nothing-here")

    def _method_not_allowed(self, context: BrowserContext) -> Page:
        page = context.new_page()
        _client(context, OFFICE_ADDRESS)
        _rewrite_request(page, f"**{PREFIX}/login", method="PUT")
        page.goto(f"{self.url}{PREFIX}/login")
        return page

    def _locked(self, context: BrowserContext) -> Page:
        # The test policy locks an account at its third failure, which is answered with the lock.
        page = self._password(context, "locked", "Not-the-password-1", "10.66.1.1")
        for _ in range(2):
            page.fill("#password", "Not-the-password-1")
            page.click("button[type=submit]")
        return page

    def _unavailable(self, context: BrowserContext) -> Page:
        # A browser with a session: the gate must ask the store about it, and the store does not answer.
        context.add_cookies([{"name": "govgate-session", "value": "s" * 43, "url": self.broken_url}])
        return self._open(context, f"{self.broken_url}/oa/")

    def _unreachable(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.broken_url}/news/close")

    def _not_rewritten(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.broken_url}/news/bad-encoding")

    def _timeout(self, context: BrowserContext) -> Page:
        return self._open(context, f"{self.broken_url}/news/hang")
