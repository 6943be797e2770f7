"""`govgate demo`: a first look on a fresh machine — over HTTPS with a certificate made at start (its printed
fingerprint is the one served), real ``__Host-`` cookies and HSTS, and every printed ``curl`` answering as the
text says; ``--insecure`` keeps plain HTTP. SIGTERM and Ctrl-C exit 0."""

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

import httpx
import pytest

from tests.command import GOVGATE
from tests.e2e.harness import OutputReader
from tests.e2e.login import Browser
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
