"""A small sample portal to stand behind the gateway: for `govgate demo`, the shipped policy, tests and benchmarks.

It is deliberately tiny and fast (HTTP/1.1 keep-alive on an asyncio protocol, no framework) so that it is
never the bottleneck when the gateway is measured. Pages:

- ``/`` and ``/news/...``: public pages with a few links, some to non-government sites (Art. 15).
- ``/news/forms.html`` (UTF-8) and ``/news/forms-gbk.html`` (GBK): forms that submit to non-government sites
  by GET, by POST and as multipart (Art. 15: their targets go through the warning page too).
- ``/oa/...``: the "staff" office system; shows the identity headers the gate set.
- ``/echo...``: JSON of the request line and headers, for tests.
- ``/redirect-out``: a 302 to a non-government site.
- anything else: 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import ssl

logger = logging.getLogger(__name__)

_HOME = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>示例政务门户 Sample portal</title></head>
<body>
<h1>示例政务门户 Sample government portal</h1>
<ul>
<li><a href="/news/2026/notice.html">通知公告 News</a></li>
<li><a href="/oa/">办公系统 Office system (staff)</a></li>
<li><a href="https://www.gov.cn/">中国政府网 (government site)</a></li>
<li><a href="https://www.example.com/">外部网站 External site</a></li>
<li><a href="http://evilgov.cn/">evilgov.cn (external, not under gov.cn)</a></li>
</ul>
</body></html>
"""

_NEWS = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>通知公告</title></head>
<body><h1>通知公告 News</h1><p>关于举办国际会议的通知。</p>
<p><a href="https://partner.example.org/report.pdf">合作方报告 Partner report</a></p>
<p><a href="/">首页 Home</a></p></body></html>
"""


_FORMS = """<!doctype html>
<html lang="zh-CN"><head><meta charset="{charset}"><title>办事表单 Forms</title></head>
<body><h1>办事表单 Forms</h1>
<form id="search" action="https://search.example.org/search?site=portal" method="get">
<label for="q">站外搜索 Search elsewhere</label> <input id="q" name="q">
<input type="hidden" name="lang" value="中文">
<button type="submit">搜索 Search</button></form>
<form id="feedback" action="https://partner.example.org/feedback?form=1" method="post">
<label for="text">意见 Feedback</label> <textarea id="text" name="text"></textarea>
<input type="hidden" name="topic" value="办事服务 &amp; 咨询">
<button type="submit">提交 Send</button></form>
<form id="signup" action="https://partner.example.org/signup" method="post" enctype="multipart/form-data">
<label for="name">姓名 Name</label> <input id="name" name="name">
<button type="submit">报名 Sign up</button></form>
<form id="local" action="/news/" method="get"><input name="q" aria-label="站内搜索 Search this site">
<button type="submit">站内搜索 Search this site</button></form>
<p><a href="/">首页 Home</a></p></body></html>
"""


def _response(status: int, reason: str, body: bytes, content_type: str, extra: list[tuple[str, str]] | None = None,
              *, keep_alive: bool = True) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    for name, value in extra or []:
        head.append(f"{name}: {value}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


type Routed = tuple[int, str, bytes, str, list[tuple[str, str]]]


def route(method: str, target: str, headers: list[tuple[str, str]]) -> Routed:
    path = target.split("?", 1)[0]
    if path.startswith("/echo"):
        body = json.dumps({"method": method, "path": target, "headers": headers}, ensure_ascii=False).encode()
        return 200, "OK", body, "application/json", []
    if path == "/":
        return 200, "OK", _HOME.encode(), "text/html; charset=utf-8", []
    if path == "/news/forms.html":
        return 200, "OK", _FORMS.format(charset="utf-8").encode(), "text/html; charset=utf-8", []
    if path == "/news/forms-gbk.html":
        return 200, "OK", _FORMS.format(charset="gbk").encode("gbk"), "text/html; charset=gbk", []
    if path == "/news" or path.startswith("/news/"):
        return 200, "OK", _NEWS.encode(), "text/html; charset=utf-8", []
    if path == "/static/app.css":
        return 200, "OK", b"body{font-family:sans-serif}\n", "text/css", []
    if path == "/redirect-out":
        return 302, "Found", b"", "text/plain", [("Location", "https://www.example.com/landing")]
    if path == "/oa" or path.startswith("/oa/"):
        who = {k.lower(): v for k, v in headers}
        user = html.escape(who.get("x-govgate-user", "(none)"))
        groups = html.escape(who.get("x-govgate-groups", ""))
        device = html.escape(who.get("x-govgate-device", ""))
        page = (
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>办公系统</title></head><body>"
            f"<h1>办公系统 Office system</h1><p id=\"user\">{user}</p><p id=\"groups\">{groups}</p>"
            f"<p id=\"device\">{device}</p>"
            "<p><a href=\"https://mail.example.net/\">外部邮箱 External mail</a></p></body></html>"
        )
        return 200, "OK", page.encode(), "text/html; charset=utf-8", []
    return 404, "Not Found", b"not found\n", "text/plain", []


_HEAD_LIMIT = 2**16  # a request head longer than this closes the connection (asyncio streams' default limit)


def _parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]], int, bool] | None:
    """The request line and headers of ``head`` (without its blank line): method, target, headers, the body's
    length and whether the client asked to close; ``None`` for a request line that is not three words."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, _version = parts
    headers: list[tuple[str, str]] = []
    length = 0
    close = False
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        value = value.strip()
        headers.append((name, value))
        lname = name.lower()
        if lname == "content-length":
            length = int(value or 0)  # ValueError on a bad length: the connection is closed
            if length < 0:
                raise ValueError(f"negative Content-Length {value!r}")
        elif lname == "connection" and value.lower() == "close":
            close = True
    return method, target, headers, length, close


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 requests answered in order, keep-alive. A protocol rather than asyncio
    streams: each request costs one callback, no task switch, so the portal stays cheap beside the gateway."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        buffer = self._buffer
        buffer += data
        while buffer:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _HEAD_LIMIT:
                    transport.close()
                return
            try:
                parsed = _parse_head(bytes(buffer[:end]))
            except ValueError:
                transport.close()
                return
            if parsed is None:
                transport.write(_response(400, "Bad Request", b"", "text/plain", keep_alive=False))
                transport.close()
                return
            method, target, headers, length, close = parsed
            if len(buffer) < end + 4 + length:
                return  # the body is still on its way
            del buffer[:end + 4 + length]
            status, reason, body, ctype, extra = route(method, target, headers)
            transport.write(_response(status, reason, body, ctype, extra, keep_alive=not close))
            if close:
                transport.close()
                return

    def pause_writing(self) -> None:  # a client that does not read its answers: read no more requests from it
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._buffer.clear()


async def start_sample_portal(host: str = "127.0.0.1", port: int = 0, *,
                              tls: ssl.SSLContext | None = None) -> asyncio.Server:
    """Start the portal (over TLS with ``tls``); the bound port is ``server.sockets[0].getsockname()[1]``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(_Connection, host, port, reuse_address=True, ssl=tls)


def main() -> None:  # pragma: no cover - manual use: python -m govgate.sample_portal PORT [--tls PEM]
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    tls: ssl.SSLContext | None = None
    if "--tls" in sys.argv:  # a PEM with the key and the certificate chain (the benchmarks' TLS upstream)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(sys.argv[sys.argv.index("--tls") + 1])

    async def serve() -> None:
        server = await start_sample_portal("127.0.0.1", port, tls=tls)
        bound = server.sockets[0].getsockname()[1]
        print(f"sample portal on {'https' if tls else 'http'}://127.0.0.1:{bound}/", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":  # pragma: no cover
    main()
