"""Client connections that end gracefully: after ``gateway.max_requests_per_connection`` requests, and on SIGTERM.

Bounded connections: one long-lived connection must not grow the gateway without end (mitmproxy and its
HTTP/2 library keep some state per stream for the life of a connection). After the configured number of
requests (1,000 by default, as nginx's ``keepalive_requests``) the connection is closed gracefully: the
last answer over HTTP/1.1 carries ``Connection: close``; over HTTP/2 a GOAWAY naming the last stream served
goes out at once (``_goaway_when_asked`` wraps mitmproxy's HTTP/2 server: no hook exists there), the
streams in flight finish, and the connection is closed once idle.

Graceful shutdown (``drain``, on SIGTERM): stop accepting, answer requests in flight (up to
``gateway.drain_timeout``), closing each connection as soon as it is idle — nothing written still waiting in
its buffer and no request in flight — with ``Connection: close``/GOAWAY on answers given meanwhile; at the
deadline whatever is left is closed. Idle connections are closed by the sweeper, every 0.25 s.

``gateway.idle_timeout`` (``_close_quiet``, every second): a connection the client has left quiet is closed, for one
of three reasons: no request, a request body stalled, an answer the client stopped reading (its bytes dropped).
An HTTP/2 connection closed while idle, here or in the drain, first gets a GOAWAY naming the last stream served
(``_goaway_before_idle_close``).

Registered last, so its ``response`` hook also sees the final answer: one to ``HEAD`` goes out without a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import time
from collections import Counter
from collections.abc import Callable

import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import GoAwayFrame
from mitmproxy import connection, ctx, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands, events, layer, server
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers import tls
from mitmproxy.proxy.layers.http import _http2

from govgate.addons import body_budget, h2_backpressure
from govgate.addons.h1_pool import reuse_idle_portal_connections
from govgate.repeated import REPEATED
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 0.25
IDLE_SWEEP_SECONDS = 1.0  # how often connections are looked at for gateway.idle_timeout


_LAST_STREAM = "_govgate_last_stream"  # attribute of an HTTP/2 client layer: the last stream its GOAWAY named


def _unsent(handler: server.ConnectionHandler, io: server.ConnectionIO) -> tuple[int, int]:
    """Bytes of answers not yet taken by this handler's client: (in the socket: the transport's buffer and the
    kernel's send queue, which shrinks as the client acknowledges; in HTTP/2 streams waiting for its windows)."""
    unsent = 0
    transport = getattr(io.writer, "transport", None)
    if transport is not None:
        unsent = transport.get_write_buffer_size()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                unsent += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    h2_server = h2_backpressure.client_connection(handler.client)
    return unsent, h2_backpressure.buffered(h2_server) if h2_server is not None else 0


def _goaway_when_asked(wanted: Callable[[connection.Client, int], bool]) -> None:
    """After each new HTTP/2 stream, ask ``wanted(client, streams so far)``; once it says so, send GOAWAY with
    that stream as the last one served (RFC 9113 §6.8: the client opens new streams on a new connection)."""
    server = _http2.Http2Server
    original = server.handle_h2_event
    if getattr(original, "_govgate_goaway", False):
        return

    def handle_h2_event(self: _http2.Http2Server, event: h2.events.Event) -> layer.CommandGenerator[bool]:
        if not isinstance(event, h2.events.RequestReceived) or not isinstance(self.conn, connection.Client):
            return (yield from original(self, event))
        last = getattr(self, _LAST_STREAM, None)
        if last is not None and event.stream_id > last:
            # Opened before the client saw our GOAWAY: refused unprocessed, so the client may retry it elsewhere.
            # Unless the client has reset it already (in the same read): then there is nothing to refuse (the reset
            # raised StreamClosedError: "mitmproxy has crashed!" and a traceback, as often as a client liked).
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2_conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            yield commands.SendData(self.conn, self.h2_conn.data_to_send())
            return False
        stop: bool = yield from original(self, event)
        streams = getattr(self, "_govgate_streams", 0) + 1
        self._govgate_streams = streams  # type: ignore[attr-defined]
        if last is None and wanted(self.conn, streams):
            frame = GoAwayFrame(0)
            frame.last_stream_id = event.stream_id
            frame.error_code = 0  # NO_ERROR: a graceful close
            setattr(self, _LAST_STREAM, event.stream_id)
            # After what is already queued (a SETTINGS acknowledgement, say), not before it.
            yield commands.SendData(self.conn, self.h2_conn.data_to_send() + frame.serialize())
        return stop

    handle_h2_event._govgate_goaway = True  # type: ignore[attr-defined]
    server.handle_h2_event = handle_h2_event  # type: ignore[method-assign]


def _goaway_before_idle_close(client: connection.Client, io: server.ConnectionIO) -> None:
    """An HTTP/2 client connection closed while idle first gets a GOAWAY naming the last stream the gateway took
    (RFC 9113 §6.8), so a request that crosses the close is known unprocessed and may be sent again elsewhere.

    Written here, between two events (nothing else runs meanwhile): through the connection's TLS layer, which
    encrypts it, when there is one (mitmproxy's layers have no event to ask this of them)."""
    h2_server = h2_backpressure.client_connection(client)
    if h2_server is None or io.writer is None:
        return
    # NO_ERROR; the last stream: the one a GOAWAY sent before named (RFC 9113 §6.8: never higher; the streams the
    # client opened after it were refused), else the highest the client opened.
    with contextlib.suppress(h2.exceptions.ProtocolError):
        h2_server.h2_conn.close_connection(last_stream_id=getattr(h2_server, _LAST_STREAM, None))
    frames = h2_server.h2_conn.data_to_send()
    tls_layer = next((lay for lay in h2_server.context.layers
                      if isinstance(lay, tls.ClientTLSLayer) and lay.conn is client), None)
    if tls_layer is None:
        io.writer.write(frames)
        return
    for command in tls_layer.send_data(frames):
        if isinstance(command, commands.SendData) and command.connection is client:
            io.writer.write(command.data)


def _forget_closed_server_connections() -> None:
    """mitmproxy's ``HttpLayer`` keeps every portal connection it ever opened for a client connection in its
    ``connections`` dict, closed ones included (mitmproxy 12.3). Over HTTP/2 each request gets a portal
    connection of its own, so one long client connection grew by ~6 KB per request (the Server object and its
    layer stack), and each new request scanned all of them for one to reuse (CPU per request grew with the
    count). A portal connection that failed to open stayed there too, with its error, and every later
    request on the same client connection got that error without a new attempt. ``_handle_event`` is wrapped
    to drop closed portal connections once their close has been handled. The same retention is in a bare
    ``mitmdump`` (``scripts/bench_h2_soak.py`` measures both)."""
    layer_class = http_layer.HttpLayer
    original = layer_class._handle_event
    if getattr(original, "_govgate_forgets", False):
        return

    def _handle_event(self: http_layer.HttpLayer, event: events.Event) -> layer.CommandGenerator[None]:
        yield from original(self, event)
        # The last event a portal connection can get: its close (now handled), or the failure to open it.
        gone = None
        if isinstance(event, events.ConnectionClosed) and event.connection.state is ConnectionState.CLOSED:
            gone = event.connection
        elif (isinstance(event, events.OpenConnectionCompleted) and event.reply
              and isinstance(event.command, commands.OpenConnection)):
            gone = event.command.connection
        if gone is not None and gone is not self.context.client and gone not in self.waiting_for_establishment:
            self.connections.pop(gone, None)

    _handle_event._govgate_forgets = True  # type: ignore[attr-defined]
    layer_class._handle_event = _handle_event  # type: ignore[method-assign]


class ConnectionLimits:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.requests: Counter[str] = Counter()  # client connection id → requests begun on it
        # client connection id → its requests not yet answered, by flow id
        self.in_flight: dict[str, dict[str, http.HTTPFlow]] = {}
        self.closing: set[str] = set()  # to be closed once idle
        self.draining = False
        self._idle_seen: set[str] = set()  # connections found idle at the previous look
        self.quiet_since: dict[str, float] = {}  # client connection id → monotonic time since no request is in flight
        # client connection id → (bytes waiting to be written to the client at the last look, since when unchanged)
        self._written: dict[str, tuple[int, float]] = {}
        # flow id → (an HTTP/2 request's progress mark at the last look: body bytes in, or answer bytes buffered; since)
        self._marks: dict[str, tuple[int, float]] = {}
        self._next_idle_sweep = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        _goaway_when_asked(self._goaway_wanted)
        _forget_closed_server_connections()
        reuse_idle_portal_connections()  # HTTP/2 clients, HTTP/1.1 portal (govgate/addons/h1_pool.py)
        h2_backpressure.install()  # the portal read no faster than an HTTP/2 client takes (its windows)
        body_budget.install()  # request bodies held at once are bounded (released in ``_answered``)

    def _limit(self) -> int:
        return self.runtime.policy.gateway.max_requests_per_connection

    def _goaway_wanted(self, client: connection.Client, streams: int) -> bool:
        return self.draining or streams >= self._limit()

    # -- hooks ------------------------------------------------------------------------------------
    async def running(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="govgate connection sweeper")

    def client_connected(self, client: connection.Client) -> None:
        self.quiet_since[client.id] = time.monotonic()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        cid = flow.client_conn.id
        self.requests[cid] += 1
        self.in_flight.setdefault(cid, {})[flow.id] = flow
        self.quiet_since.pop(cid, None)
        if self.draining or self.requests[cid] >= self._limit():
            self.closing.add(cid)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._last_answer(flow)  # a streamed answer's head goes out right after this hook

    def response(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)
        if flow.websocket is not None:
            self.quiet_since.pop(flow.client_conn.id, None)  # a WebSocket now: quiet between messages by design
        self._last_answer(flow)  # an answer another addon replaced after `responseheaders`
        if flow.request.method.upper() == "HEAD" and flow.response is not None and flow.response.raw_content:
            # A page the gate made carries its body; an answer to HEAD must not (on a kept-alive HTTP/1.1
            # connection the client would read those bytes as the next answer). Content-Length stays, as for GET.
            flow.response.raw_content = b""

    def _last_answer(self, flow: http.HTTPFlow) -> None:
        if (flow.client_conn.id in self.closing and flow.response is not None
                and flow.request.http_version.startswith("HTTP/1")):
            flow.response.headers["Connection"] = "close"  # mitmproxy closes the connection after this answer

    def error(self, flow: http.HTTPFlow) -> None:
        self._answered(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self.requests.pop(client.id, None)
        self.in_flight.pop(client.id, None)
        self.closing.discard(client.id)
        self.quiet_since.pop(client.id, None)
        self._written.pop(client.id, None)

    async def done(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def _answered(self, flow: http.HTTPFlow) -> None:
        cid = flow.client_conn.id
        self._marks.pop(flow.id, None)
        body_budget.BODIES.release(flow.id)  # its body, read whole, is no longer held
        in_flight = self.in_flight.get(cid)
        if in_flight is None:
            return  # the connection is gone
        in_flight.pop(flow.id, None)
        if not in_flight:
            self.quiet_since[cid] = time.monotonic()

    # -- closing ----------------------------------------------------------------------------------
    def _proxyserver(self) -> Proxyserver | None:
        found: Proxyserver | None = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        return found

    def _close_idle(self, *, everything: bool = False) -> int:
        """Close the connections marked closing (all of them while draining) that are idle; with ``everything``,
        close whatever is left. Returns how many client connections remain."""
        proxyserver = self._proxyserver()
        if proxyserver is None:
            return 0
        remaining = 0
        seen: set[str] = set()
        for cid, handler in list(proxyserver.connections.items()):
            if not isinstance(cid, str):
                continue
            remaining += 1
            if not (everything or self.draining or cid in self.closing):
                continue
            io = handler.transports.get(handler.client)
            if io is None or io.handler is None:
                continue
            idle = not self.in_flight.get(cid) and _unsent(handler, io) == (0, 0)
            # Idle on two looks in a row: the answer is counted at the `response` hook, a moment before mitmproxy
            # writes it, so one look could fall between the two.
            if everything or (idle and cid in self._idle_seen):
                if idle:
                    _goaway_before_idle_close(handler.client, io)
                io.handler.cancel("closing gracefully")
            if idle:
                seen.add(cid)
        self._idle_seen = seen
        return remaining

    def _close_quiet(self, now: float) -> Counter[str]:
        """Close the client connections the client has left quiet for ``gateway.idle_timeout`` (nginx's
        ``client_header_timeout``, ``keepalive_timeout``, ``client_body_timeout`` and ``send_timeout`` in one):

        - ``no request``: nothing in flight, nothing left to write (idle keep-alive, a request head that never
          ends: slowloris, a TLS handshake never finished; mitmproxy alone waits 600 s). Bytes of a head that
          does not end do not count as activity.
        - ``request body stalled``: no byte of a request body has arrived (the portal is not asked before it has).
        - ``client stopped reading``: an answer waits to be written (the socket's buffers, HTTP/2 windows) and
          none of it has gone out. Its bytes are dropped, not kept for a client that may never read them.

        A request waiting for the portal is never cut here (``upstream_timeout`` bounds that), nor a streamed
        answer waiting for the portal's next bytes, nor a WebSocket (quiet between messages by design). A slow
        client that is moving is not cut either: over HTTP/2 each request is judged by its own body and its own
        stream's buffer (``_client_moved``), not by the connection's other frames. Returns how many were closed,
        by reason."""
        closed: Counter[str] = Counter()
        proxyserver = self._proxyserver()
        if proxyserver is None:
            return closed
        limit = self.runtime.policy.gateway.idle_timeout.total_seconds()
        for cid, handler in list(proxyserver.connections.items()):
            if not isinstance(cid, str):
                continue
            io = handler.transports.get(handler.client)
            if io is None or io.handler is None:
                continue
            unsent, in_streams = _unsent(handler, io)
            waiting = unsent + in_streams
            seen = self._written.get(cid)
            if seen is None or seen[0] != waiting:
                seen = self._written[cid] = (waiting, now)  # bytes went out (or more were queued): activity
            flows = list(self.in_flight.get(cid, {}).values())
            moved = self._client_moved(flows, handler, unsent, seen[1], now) if flows else None
            reason = self._quiet(cid, waiting, seen[1], moved, now, limit)
            if reason is None:
                continue
            transport = getattr(io.writer, "transport", None)
            if waiting and transport is not None:
                transport.abort()  # a plain close would hold the socket and its buffer until the client reads
            else:
                _goaway_before_idle_close(handler.client, io)
            io.handler.cancel("idle")
            self.quiet_since.pop(cid, None)
            closed[reason] += 1
        return closed

    def _client_moved(self, flows: list[http.HTTPFlow], handler: server.ConnectionHandler, unsent: int,
                      written_at: float, now: float) -> float | None:
        """When (``time.monotonic()``) the client last moved one of its requests in flight on: a byte of a body
        arrived, a byte of an answer went out. None while one of them waits for the portal. Each request's turn
        comes from mitmproxy's own flow: the client's while its body arrives (its end sets the request's
        ``timestamp_end``) and while a streamed answer goes out; the portal's otherwise."""
        h2_server = h2_backpressure.client_connection(handler.client)
        if h2_server is None:  # HTTP/1: one request at a time; every byte read from the client is its body's
            for flow in flows:
                if flow.request.timestamp_end is None:
                    continue
                if flow.response is None or not flow.response.stream or not unsent:
                    return None  # the portal's turn: it has yet to answer, or to send the answer's next bytes
            return max(written_at, h2_backpressure.client_read_at(handler))
        # HTTP/2: a PING or another stream's frame is no progress of this one; each request by its own stream.
        streams = h2_backpressure.streams_by_flow(h2_server)
        latest = written_at
        for flow in flows:
            found = streams.get(flow.id)
            if found is None:
                return None  # not (or no longer) a stream of this connection: not judged here
            stream_id, body_bytes = found
            if flow.request.timestamp_end is None:
                mark = body_bytes
            elif flow.response is not None and flow.response.stream:
                mark = h2_backpressure.buffered(h2_server, stream_id)
                if not mark and not unsent:
                    return None  # all sent: waiting for the portal's next bytes (an event stream, say)
            else:
                return None  # the portal's turn
            seen = self._marks.get(flow.id)
            if seen is None or seen[0] != mark:
                seen = self._marks[flow.id] = (mark, now)
            latest = max(latest, seen[1])
        return latest

    def _quiet(self, cid: str, waiting: int, written_at: float, client_moved: float | None, now: float,
               limit: float) -> str | None:
        """Why the client connection ``cid`` is to be closed for ``idle_timeout`` (None: it is not): ``waiting``
        bytes are still to be written to it, a number unchanged since ``written_at``; with requests in flight, the
        client last moved one on at ``client_moved`` (None: one waits for the portal). All on ``time.monotonic()``."""
        if not self.in_flight.get(cid):
            since = self.quiet_since.get(cid)
            if since is None:
                return None  # a WebSocket now
            if now - max(since, written_at) < limit:
                return None
            return "client stopped reading" if waiting else "no request"
        if client_moved is None or now - client_moved < limit:
            return None
        return "client stopped reading" if waiting else "request body stalled"

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                if self.closing or self.draining:
                    self._close_idle()
                now = time.monotonic()
                if now >= self._next_idle_sweep:
                    self._next_idle_sweep = now + IDLE_SWEEP_SECONDS
                    for reason, count in sorted(self._close_quiet(now).items()):
                        REPEATED.warning(logger, f"connection.idle_closed {reason}", "connection.idle_closed "
                                         "count=%d reason=%s for gateway.idle_timeout", count, reason)
            except Exception:
                logger.exception("connections.sweep error")

    async def drain(self, seconds: float) -> bool:
        """SIGTERM: stop accepting, let requests in flight finish for up to ``seconds``, close every connection
        as it becomes idle. True when everything finished in time."""
        self.draining = True
        proxyserver = self._proxyserver()
        if proxyserver is not None:
            for instance in list(proxyserver.servers):
                with contextlib.suppress(Exception):
                    await instance.stop()
        deadline = time.monotonic() + seconds
        logger.info("gateway.drain connections=%d in_flight=%d timeout=%.0fs",
                    len(proxyserver.connections) if proxyserver else 0, sum(map(len, self.in_flight.values())), seconds)
        while time.monotonic() < deadline:
            if self._close_idle() == 0:
                return True
            await asyncio.sleep(0.05)
        left = self._close_idle(everything=True)
        logger.warning("gateway.drain timeout: %d connection(s) closed with requests in flight", left)
        await asyncio.sleep(0.1)
        return False
