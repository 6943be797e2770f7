"""``/metrics`` on ``metrics.listen`` (Prometheus text format, apart from the proxy port), and the request latency.

The endpoint is a tiny HTTP/1.1 server on asyncio streams: operators point Prometheus at it; nothing else is served
there. It starts when the gateway runs and stops with it; absent ``metrics.listen``: no endpoint. The text comes
from ``prometheus-client`` (``govgate.metrics``), with the state gauges read at each scrape (``govgate.health``).

The ``response`` and ``error`` hooks time every request, from its first byte to its answer, by outcome (a fixed
vocabulary: ``forward``, ``refuse``, ``login``, ``error``): this addon runs after the others, so the answer is
final when it looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from mitmproxy import http

from govgate.addons.context import LOCAL_KEY, context_of
from govgate.health import observe
from govgate.runtime import Runtime
from govgate.workers import listen_port, reuse_port

logger = logging.getLogger(__name__)


def outcome_of(flow: http.HTTPFlow, prefix: str) -> str:
    """What became of a request, in ``govgate.metrics.OUTCOMES``' words."""
    response = flow.response
    if response is None:
        return "error"
    if not flow.metadata.get(LOCAL_KEY):
        return "forward"
    if response.status_code in (502, 504):
        return "error"
    path = flow.request.path
    if path == prefix or path.startswith(prefix + "/") or response.status_code == 303:
        return "login"  # the gate's own pages, and the way to the login page
    return "refuse"


class MetricsEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.server: asyncio.Server | None = None

    async def running(self) -> None:
        listen = self.runtime.policy.metrics.listen
        if listen is None:
            return
        try:
            # Several workers (`--workers N`, govgate/workers.py) share the address: SO_REUSEPORT, the port reserved.
            self.server = await asyncio.start_server(self._handle, listen.host, listen_port("metrics", listen.port),
                                                     reuse_port=reuse_port() or None)
        except OSError as exc:
            logger.error("metrics.listen failed address=%s error=%s", listen, exc)
            return
        bound = self.server.sockets[0].getsockname()
        print(f"govgate: metrics on http://{listen.host}:{bound[1]}/metrics", flush=True)

    # -- request latency --------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> None:
        self._observe(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.response is None:
            self._observe(flow)

    def _observe(self, flow: http.HTTPFlow) -> None:
        ctx = context_of(flow)
        prefix = ctx.snapshot.policy.gateway.prefix if ctx is not None else self.runtime.policy.gateway.prefix
        outcome = outcome_of(flow, prefix)
        self.runtime.metrics.observe_request(outcome, time.time() - flow.request.timestamp_start)

    # -- the endpoint -----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split(b" ")
            if len(line) == 3 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
                observed = await observe(self.runtime)
                body, content_type = self.runtime.metrics.exposition(observed.gauges(self.runtime))
                status, ctype = b"200 OK", content_type.encode()
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
