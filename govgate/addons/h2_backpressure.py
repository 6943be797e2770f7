"""Backpressure for HTTP/2 clients: the portal is read no faster than the browser takes what it sent.

mitmproxy 12 sends a response to an HTTP/2 client through h2's flow control: what the client's window does not
admit waits in a buffer of the stream (``BufferedH2Connection.stream_buffers``), without limit, while the portal
is read as fast as it sends. A client that opens no window (``SETTINGS_INITIAL_WINDOW_SIZE`` 0) and asks for a
large download made the gateway buffer all of it: 3.7 GB in 12 s from one connection, never given back (found in
review). Over HTTP/1.1 the socket's own buffer pushes back: mitmproxy reads the next bytes of any connection only
once every writer has drained (``ConnectionHandler.drain_writers``).

Here the same wait covers the HTTP/2 buffers, stream by stream: after a read from a portal connection, while more
than ``MAX_BUFFERED`` bytes of the stream it serves wait for the client's windows (or, past ``MAX_BUFFERED_TOTAL``
for the whole connection, any of them), that portal connection is not read again: its TCP window closes and the
portal waits, as behind a slow HTTP/1.1 client. The other streams of the connection go on (a paused video holds up
only itself). The wait wakes when the client opens a window. A stream whose client takes nothing for
``STALL_SECONDS`` loses its portal connection (``upstream.stalled``), as nginx's ``send_timeout`` closes a client
that stops reading; what is buffered is bounded by the limits plus one read per stream.

The same read loop notes when bytes last arrived from the client (``client_read_at``): ``connections.py`` closes a
connection whose request body stops arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import Coroutine

from mitmproxy import connection
from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http import _http2, _http_h2

from govgate.addons.h1_pool import http1_client, http_layer_of
from govgate.repeated import REPEATED

logger = logging.getLogger(__name__)

MAX_BUFFERED = 1 << 20  # bytes of one stream waiting for a client's windows before its portal connection waits
MAX_BUFFERED_TOTAL = 8 << 20  # bytes of all a client connection's streams, past which every stream with any waits
STALL_SECONDS = 60.0  # a stream whose client frees nothing for this long loses its portal connection
WAKE_SECONDS = 1.0  # at the latest, the wait looks again (a reset stream, a client gone)

_READING: contextvars.ContextVar[connection.Connection | None] = contextvars.ContextVar("govgate_reading",
                                                                                         default=None)
_H2 = "_govgate_h2"  # attribute of a client connection speaking HTTP/2: its HTTP/2 layer
_HTTP = "_govgate_http"  # attribute of that layer: the HTTP layer above it, which holds each portal connection's layer
_WINDOW_OPENED: weakref.WeakKeyDictionary[_http_h2.BufferedH2Connection, asyncio.Event] = weakref.WeakKeyDictionary()


def buffered(h2_server: _http2.Http2Server, stream_id: int | None = None) -> int:
    """Bytes this HTTP/2 client connection holds for stream ``stream_id`` (None: for all its streams) whose
    windows are closed."""
    buffers = h2_server.h2_conn.stream_buffers
    if not buffers:
        return 0
    if stream_id is not None:
        return sum(len(chunk.data) for chunk in buffers.get(stream_id, ()))
    return sum(len(chunk.data) for chunks in buffers.values() for chunk in chunks)


def client_connection(client: connection.Client) -> _http2.Http2Server | None:
    """The HTTP/2 layer of this client connection (None: it speaks HTTP/1)."""
    h2_server: _http2.Http2Server | None = getattr(client, _H2, None)
    return h2_server


def streams_by_flow(h2_server: _http2.Http2Server) -> dict[str, tuple[int, int]]:
    """This HTTP/2 client connection's streams in flight, by flow id: (stream id, request body bytes received)."""
    http = getattr(h2_server, _HTTP, None)
    if http is None:
        return {}
    return {stream.flow.id: (stream_id, len(stream.request_body_buf))
            for stream_id, stream in http.streams.items() if getattr(stream, "flow", None) is not None}


def _serving(h2_server: _http2.Http2Server, portal: connection.Server) -> int | None:
    """The client's stream that the portal connection now answers (None: none, or not over HTTP/1)."""
    http = getattr(h2_server, _HTTP, None)
    client = http1_client(http, portal) if http is not None else None
    return client.stream_id if client is not None else None


def client_read_at(handler: server.ConnectionHandler) -> float:
    """When (``time.monotonic()``) bytes last arrived from this handler's client; 0.0 if none since it began."""
    read_at: float = getattr(handler, "_govgate_read_at", 0.0)
    return read_at


def _held_up(h2_server: _http2.Http2Server, stream_id: int) -> bool:
    mine = buffered(h2_server, stream_id)
    return mine > MAX_BUFFERED or (mine > 0 and buffered(h2_server) > MAX_BUFFERED_TOTAL)


def install() -> None:
    """Patch mitmproxy's connection handler and HTTP/2 server layer (once per process)."""
    handler = server.ConnectionHandler
    if getattr(handler.drain_writers, "_govgate_h2", False):
        return
    original_handle = handler.handle_connection
    original_drain = handler.drain_writers
    original_init = _http2.Http2Server.__init__
    buffered_class = _http_h2.BufferedH2Connection
    original_stream_window = buffered_class.stream_window_updated
    original_connection_window = buffered_class.connection_window_updated

    async def handle_connection(self: server.ConnectionHandler, conn: connection.Connection) -> None:
        _READING.set(conn)  # this task's own context: which connection this read loop reads
        await original_handle(self, conn)

    # A plain function returning the coroutine to await: no frame of its own on every read (it is called after each).
    def drain_writers(self: server.ConnectionHandler) -> Coroutine[object, object, None]:
        reading = _READING.get()
        if reading is self.client:
            self._govgate_read_at = time.monotonic()  # type: ignore[attr-defined]  # ``client_read_at``
        elif isinstance(reading, connection.Server):
            h2_server = client_connection(self.client)
            if h2_server is not None:
                stream_id = _serving(h2_server, reading)
                if stream_id is not None and _held_up(h2_server, stream_id):
                    return wait_then_drain(self, h2_server, reading, stream_id)
        drained: Coroutine[object, object, None] = original_drain(self)  # type: ignore[no-untyped-call]
        return drained

    async def wait_then_drain(self: server.ConnectionHandler, h2_server: _http2.Http2Server,
                              portal: connection.Server, stream_id: int) -> None:
        await _wait_for_the_client(self, h2_server, portal, stream_id)
        await original_drain(self)  # type: ignore[no-untyped-call]

    def init(self: _http2.Http2Server, context: object) -> None:
        original_init(self, context)  # type: ignore[arg-type]
        setattr(self.context.client, _H2, self)
        setattr(self, _HTTP, http_layer_of(self))

    def stream_window_updated(self: _http_h2.BufferedH2Connection, stream_id: int) -> bool:
        sent: bool = original_stream_window(self, stream_id)
        _wake(self)
        return sent

    def connection_window_updated(self: _http_h2.BufferedH2Connection) -> None:
        original_connection_window(self)
        _wake(self)

    drain_writers._govgate_h2 = True  # type: ignore[attr-defined]
    handler.handle_connection = handle_connection  # type: ignore[method-assign,assignment]
    handler.drain_writers = drain_writers  # type: ignore[method-assign]
    _http2.Http2Server.__init__ = init  # type: ignore[method-assign]
    buffered_class.stream_window_updated = stream_window_updated  # type: ignore[method-assign]
    buffered_class.connection_window_updated = connection_window_updated  # type: ignore[method-assign]


def _wake(h2_conn: _http_h2.BufferedH2Connection) -> None:
    event = _WINDOW_OPENED.get(h2_conn)
    if event is not None:
        event.set()


async def _wait_for_the_client(handler: server.ConnectionHandler, h2_server: _http2.Http2Server,
                               portal: connection.Server, stream_id: int) -> None:
    """Until the client has taken enough of the stream; after ``STALL_SECONDS`` without progress on it, the
    portal connection goes. Woken by the client's window updates (and every ``WAKE_SECONDS``)."""
    opened = _WINDOW_OPENED.setdefault(h2_server.h2_conn, asyncio.Event())
    least = buffered(h2_server, stream_id)
    since = time.monotonic()
    while _held_up(h2_server, stream_id):
        opened.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(opened.wait(), WAKE_SECONDS)
        if not handler.client.connected or portal not in handler.transports:
            return  # the client left (its buffers go with it), or the portal connection was closed meanwhile
        now = buffered(h2_server, stream_id)
        if now < least:
            least, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            REPEATED.warning(logger, "upstream.stalled", "upstream.stalled client=%s stream=%d buffered=%d reason=the "
                             "HTTP/2 client took nothing of it for %.0f s: its portal connection is closed",
                             handler.client.peername, stream_id, now, STALL_SECONDS)
            io = handler.transports.get(portal)
            if io is not None and io.handler is not None:
                io.handler.cancel("the HTTP/2 client does not read")
            return
