"""Backpressure for HTTP/2 clients: the portal is read no faster than the browser takes what it sent.

mitmproxy 12 sends a response to an HTTP/2 client through h2's flow control: what the client's window does not
admit waits in a buffer of the stream (``BufferedH2Connection.stream_buffers``), without limit, while the portal
is read as fast as it sends. A client that opens no window (``SETTINGS_INITIAL_WINDOW_SIZE`` 0) and asks for a
large download made the gateway buffer all of it: 3.7 GB in 12 s from one connection, never given back (found in
review). Over HTTP/1.1 the socket's own buffer pushes back: mitmproxy reads the next bytes of any connection only
once every writer has drained (``ConnectionHandler.drain_writers``).

Here the same wait covers the HTTP/2 buffers: after a read from a portal connection, while more than
``MAX_BUFFERED`` bytes wait for the client's window, the portal connection is not read again (its TCP window
closes, and the portal waits, as behind a slow HTTP/1.1 client). The client's own connection is read meanwhile
(its WINDOW_UPDATEs free the buffer). A client that takes nothing for ``STALL_SECONDS`` loses the portal
connection of the response (``upstream.stalled``), as nginx's ``send_timeout`` closes a client that stops reading;
what is buffered for it is bounded by ``MAX_BUFFERED`` plus one read.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import weakref

from mitmproxy import connection
from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http import _http2

from govgate.repeated import REPEATED

logger = logging.getLogger(__name__)

MAX_BUFFERED = 1 << 20  # bytes waiting for a client's HTTP/2 windows before its portal connections are not read
STALL_SECONDS = 60.0  # a client that frees nothing for this long loses the portal connection it holds up
POLL_SECONDS = 0.01

_READING: contextvars.ContextVar[connection.Connection | None] = contextvars.ContextVar("govgate_reading",
                                                                                         default=None)
_H2_BY_CLIENT: weakref.WeakKeyDictionary[connection.Client, _http2.Http2Server] = weakref.WeakKeyDictionary()


def buffered(h2_server: _http2.Http2Server) -> int:
    """Bytes this HTTP/2 client connection holds for streams whose windows are closed."""
    buffers = h2_server.h2_conn.stream_buffers
    if not buffers:
        return 0
    return sum(len(chunk.data) for chunks in buffers.values() for chunk in chunks)


def install() -> None:
    """Patch mitmproxy's connection handler and HTTP/2 server layer (once per process)."""
    handler = server.ConnectionHandler
    if getattr(handler.drain_writers, "_govgate_h2", False):
        return
    original_handle = handler.handle_connection
    original_drain = handler.drain_writers
    original_init = _http2.Http2Server.__init__

    async def handle_connection(self: server.ConnectionHandler, conn: connection.Connection) -> None:
        _READING.set(conn)  # this task's own context: which connection this read loop reads
        await original_handle(self, conn)

    async def drain_writers(self: server.ConnectionHandler) -> None:
        reading = _READING.get()
        if isinstance(reading, connection.Server):
            h2_server = _H2_BY_CLIENT.get(self.client)
            if h2_server is not None and buffered(h2_server) > MAX_BUFFERED:
                await _wait_for_the_client(self, h2_server, reading)
        await original_drain(self)  # type: ignore[no-untyped-call]

    def init(self: _http2.Http2Server, context: object) -> None:
        original_init(self, context)  # type: ignore[arg-type]
        _H2_BY_CLIENT[self.context.client] = self

    drain_writers._govgate_h2 = True  # type: ignore[attr-defined]
    handler.handle_connection = handle_connection  # type: ignore[method-assign,assignment]
    handler.drain_writers = drain_writers  # type: ignore[method-assign]
    _http2.Http2Server.__init__ = init  # type: ignore[method-assign]


async def _wait_for_the_client(handler: server.ConnectionHandler, h2_server: _http2.Http2Server,
                               portal: connection.Server) -> None:
    """Until the client has taken enough; after ``STALL_SECONDS`` without progress, the portal connection goes."""
    least = buffered(h2_server)
    since = time.monotonic()
    while least > MAX_BUFFERED:
        await asyncio.sleep(POLL_SECONDS)
        if not handler.client.connected or portal not in handler.transports:
            return  # the client left (its buffers go with it), or the portal connection was closed meanwhile
        now = buffered(h2_server)
        if now < least:
            least, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            REPEATED.warning(logger, "upstream.stalled", "upstream.stalled client=%s buffered=%d reason=the HTTP/2 "
                             "client took nothing for %.0f s: its portal connection is closed",
                             handler.client.peername, now, STALL_SECONDS)
            io = handler.transports.get(portal)
            if io is not None and io.handler is not None:
                io.handler.cancel("the HTTP/2 client does not read")
            return
