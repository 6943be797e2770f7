"""End to end through a real mitmproxy (reverse mode, own process): HTML without Content-Length.

The upstream answers with ``Transfer-Encoding: chunked``; the addon collects the body with its own
bounded stream function. Under the limit the page arrives rewritten; past it the client never gets
a byte of the page, only the "not shown" notice.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SMALL = b'<!doctype html><p>hello</p><a href="http://evil.example/">x</a>'
LARGE_CHUNK = b'<a href="http://evil.example/big">x</a>' + b"y" * 65536  # 160 of them: past the 8 MiB limit


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        chunks = [SMALL[:20], SMALL[20:]] if self.path == "/small" else [LARGE_CHUNK] * 160
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[str]:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.outbound.rewrite_proxy", str(port),
                             str(upstream.server_address[1])], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30, process=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.shutdown()
        upstream.server_close()


def test_chunked_html_comes_through_the_proxy_rewritten(proxy_url: str) -> None:
    r = httpx.get(proxy_url + "/small", timeout=20)
    assert r.status_code == 200
    assert b"<p>hello</p>" in r.content
    assert b"/__govgate/leave?url=http://evil.example/" in r.content


def test_chunked_html_past_the_limit_never_reaches_the_client(proxy_url: str) -> None:
    r = httpx.get(proxy_url + "/large", timeout=30)
    assert b"evil.example" not in r.content
    assert "页面无法显示".encode() in r.content
    assert len(r.content) < 100_000
