"""Serves ``GET /metrics`` (Prometheus text format) on ``metrics.listen``, apart from the proxy port.

A tiny HTTP/1.1 server on asyncio streams: operators point Prometheus at it; nothing else is served
there. It starts when the gateway runs and stops with it; absent ``metrics.listen``: no endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from govgate.errors import StoreUnavailable
from govgate.metrics import render
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)


class MetricsEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: asyncio.Server | None = None

    async def running(self) -> None:
        listen = self.runtime.policy.metrics.listen
        if listen is None:
            return
        try:
            self.server = await asyncio.start_server(self._handle, listen.host, listen.port)
        except OSError as exc:
            logger.error("metrics.listen failed address=%s error=%s", listen, exc)
            return
        bound = self.server.sockets[0].getsockname()
        print(f"govgate: metrics on http://{listen.host}:{bound[1]}/metrics", flush=True)

    async def _gauges(self) -> list[tuple[str, str, float]]:
        store_ok = 1.0
        try:
            await self.runtime.store.ping()
        except StoreUnavailable:
            store_ok = 0.0
        writer = self.runtime.audit_writer
        writable = 1.0 if writer.healthy else 0.0
        return [
            ("govgate_policy_version", "Good policy loads since start.", float(self.runtime.policy_version)),
            ("govgate_store_reachable", "1 if the state store answers (staff paths need it).", store_ok),
            ("govgate_audit_writable", "1 if audit records are being written (Art. 20).", writable),
            ("govgate_audit_queued", "Audit records waiting to be written.", float(writer.queued)),
            ("govgate_audit_lost", "Audit records dropped because the queue was full.", float(writer.lost)),
        ]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split(b" ")
            if len(line) == 3 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
                body = render(self.runtime.counting.counts, await self._gauges()).encode()
                status, ctype = b"200 OK", b"text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            logger.debug("metrics.bad_request error=%s", type(exc).__name__)  # the connection is just closed
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def done(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
