"""`govgate demo`: a first look on a fresh machine — over HTTPS with a certificate made at start (its printed
fingerprint is the one served), real ``__Host-`` cookies and HSTS, and every printed ``curl`` answering as the
text says; ``--insecure`` keeps plain HTTP. SIGTERM and Ctrl-C exit 0. In headless Chromium: sign in, reach the
office system, be warned on a link and on a form, go back."""

from __future__ import annotations

import hashlib
import re
import shlex
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.command import GOVGATE
from tests.e2e.chromium import chromium_browser
from tests.e2e.harness import OutputReader
from tests.e2e.login import Browser, fresh_code
from tests.ports import free_port

pytestmark = pytest.mark.e2e


@contextmanager
def demo(*args: str, stop: signal.Signals = signal.SIGTERM) -> Iterator[tuple[int, str]]:
    """A running ``govgate demo`` on a free port: (its port, what it printed once ready). Checks it exits 0."""
    port = free_port()
    proc = subprocess.Popen([*GOVGATE, "demo", "--listen", f"127.0.0.1:{port}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = OutputReader(proc.stdout)
    try:
        out.wait_for_line(r"Ctrl-C to stop")
        yield port, out.text()
    finally:
        proc.send_signal(stop)
        code = proc.wait(15)
        out.join()
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0, out.text()[-2000:]


def printed(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return m.group(1)


def test_demo_serves_https_with_the_printed_certificate_cookies_hsts_and_a_login() -> None:
    with demo() as (port, text):
        fingerprint = printed(r"SHA-256 fingerprint: ([0-9A-F:]{95})", text)
        cert_file = printed(r"for curl --cacert\): (\S+)", text)
        password = printed(r"password: (\S+)", text)
        secret = printed(r"otpauth://\S+secret=([A-Z2-7]+)", text)
        base = f"https://localhost:{port}"
        assert f"{base}/oa/" in text
        # The certificate served is the one whose fingerprint was printed (what a user checks in the browser).
        unchecked = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unchecked.check_hostname = False
        unchecked.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                unchecked.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()) == fingerprint
        # Trusting that certificate alone, the name checks out and every answer carries HSTS.
        trust = ssl.create_default_context(cafile=cert_file)
        home = httpx.get(base + "/", verify=trust)
        assert home.status_code == 200
        assert home.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/")  # an unknown certificate: the browser's warning
        b = Browser(base, verify=trust)
        done = b.login("demo", password, secret)
        assert done.status_code == 303
        cookies = done.headers.get_list("set-cookie")
        assert cookies
        assert all(c.startswith("__Host-") and "; Secure" in c and "; Path=/" in c for c in cookies), cookies
        assert b.http.get("/oa/").status_code == 200


def test_every_printed_curl_answers_as_the_text_says() -> None:
    with demo() as (_, text):
        trials = re.findall(r"\((\d+\.\d+\.\d+\.\d+)\): expect (\d{3})( \w+)?.*\n\s+(curl .+)", text)
        assert [t[0] for t in trials] == ["10.1.2.3", "111.235.160.1", "81.2.69.160", "216.160.83.57"]
        for address, status, reason, command in trials:
            assert f"X-Forwarded-For: {address}" in command
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True)
            body, _, code = done.stdout.rstrip("\n").rpartition("\n")
            assert code == status, (address, done.stdout, done.stderr)
            if status == "403":
                assert f'"reason": "{reason.strip()}"' in body, (address, body)


def test_demo_insecure_serves_plain_http_and_stops_on_ctrl_c() -> None:
    with demo("--insecure", stop=signal.SIGINT) as (port, text):
        assert "SHA-256 fingerprint" not in text
        password = printed(r"password: (\S+)", text)
        secret = printed(r"otpauth://\S+secret=([A-Z2-7]+)", text)
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/" in text
        assert httpx.get(base + "/").status_code == 200
        b = Browser(base)
        assert b.login("demo", password, secret).status_code == 303
        assert b.http.get("/oa/").status_code == 200


@pytest.mark.browser
def test_the_demo_in_a_real_browser_over_https(tmp_path: Path) -> None:
    """What a newcomer does first, in headless Chromium: open the demo over HTTPS, sign in with the password
    and a TOTP code, reach the office system, follow a link off the site and be warned (Art. 15), go back to
    the page the link was on, send a search form off the site and be warned, go back again."""
    with demo() as (port, text), chromium_browser() as browser:
        password = printed(r"password: (\S+)", text)
        secret = printed(r"otpauth://\S+secret=([A-Z2-7]+)", text)
        base = f"https://localhost:{port}"
        # The certificate is the demo's own (its fingerprint is checked above); the office address stands in
        # for the client, as the printed text explains.
        context = browser.new_context(ignore_https_errors=True, locale="zh-CN",
                                      extra_http_headers={"X-Forwarded-For": "10.1.2.3"})
        page = context.new_page()
        page.goto(base + "/")
        page.click("text=办公系统 Office system (staff)")
        assert "/__govgate/login" in page.url
        page.fill("#username", "demo")
        page.fill("#password", password)
        page.click("button[type=submit]")
        page.fill("#code", fresh_code(secret))
        page.click("button[type=submit]")
        assert page.url == base + "/oa/"
        assert page.locator("#user").inner_text() == "demo"
        assert all(c["name"].startswith("__Host-") and c["secure"] for c in context.cookies())
        page.screenshot(path=str(tmp_path / "demo-office.png"), full_page=True)

        page.goto(base + "/news/2026/notice.html")
        page.click("text=合作方报告 Partner report")
        assert "/__govgate/leave" in page.url
        assert "partner.example.org" in page.locator("main").inner_text()
        page.screenshot(path=str(tmp_path / "demo-leave.png"), full_page=True)
        page.click("text=返回 Back")
        assert page.url == base + "/news/2026/notice.html"

        page.goto(base + "/news/forms.html")
        page.fill("#search #q", "公积金 提取")
        page.click("#search button[type=submit]")
        assert "search.example.org" in page.locator("main").inner_text()
        page.screenshot(path=str(tmp_path / "demo-leave-form.png"), full_page=True)
        page.click("text=返回 Back")
        assert page.url == base + "/news/forms.html"
        context.close()
