"""``gateway.redirect_listen`` (port 80): every plain-HTTP request is answered with a 308 to its HTTPS URL.

Art. 29 (第二十九条): access must use secure connections. A small asyncio server of its own, apart from the
proxy: it reads one request head (at most 8 KiB, within 10 s), answers and closes. The Location is a
``public_hosts`` name (``govgate.core.https_redirect``), with the HTTPS listen port when that is not 443;
no HSTS (RFC 6797 §7.2: not over plain HTTP). Anything unreadable gets a bare 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mitmproxy import ctx
from mitmproxy.addons.proxyserver import Proxyserver

from govgate.core.hosts import split_host_port
from govgate.core.https_redirect import https_location
from govgate.core.request_shape import valid_target
from govgate.runtime import Runtime
from govgate.workers import listen_port, reuse_port

logger = logging.getLogger(__name__)

MAX_HEAD = 8192
READ_TIMEOUT = 10.0


def redirect_answer(head: bytes, runtime_hosts: tuple[str, ...], https_port: int) -> bytes:
    """The whole response to one request head (pure: bytes in, bytes out)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    host = b""
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"host":
            host = value.strip()
    location = None
    authority = split_host_port(host.decode("ascii")) if host.isascii() else None
    if len(parts) == 3 and parts[2] in (b"HTTP/1.0", b"HTTP/1.1") and valid_target(parts[1]):
        location = https_location(authority[0] if authority else "", parts[1].decode("ascii"), runtime_hosts,
                                  https_port)
    if location is None:
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    return (b"HTTP/1.1 308 Permanent Redirect\r\nLocation: " + location.encode("ascii")
            + b"\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")


class HttpsRedirect:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: asyncio.Server | None = None
        self.https_port = runtime.policy.gateway.listen.port

    async def running(self) -> None:
        listen = self.runtime.policy.gateway.redirect_listen
        if listen is None:
            return
        try:
            # Several workers (`--workers N`, govgate/workers.py) share the address: SO_REUSEPORT, the port reserved.
            self.server = await asyncio.start_server(self._handle, listen.host, listen_port("redirect", listen.port),
                                                     reuse_port=reuse_port() or None)
        except OSError as exc:
            logger.error("redirect.listen failed address=%s error=%s", listen, exc)
            return
        bound = self.server.sockets[0].getsockname()
        proxyserver: Proxyserver | None = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        ports = [addr[1] for addr in proxyserver.listen_addrs()] if proxyserver is not None else []
        self.https_port = ports[0] if ports else self.runtime.policy.gateway.listen.port  # the port really bound
        print(f"govgate: redirecting http://{listen.host}:{bound[1]}/ to HTTPS", flush=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEAD:
                raise ValueError("head too large")
            gw = self.runtime.policy.gateway
            writer.write(redirect_answer(head, gw.public_hosts, self.https_port))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError) as exc:
            logger.debug("redirect.bad_request error=%s", type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def done(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
