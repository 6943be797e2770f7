"""HTTP/2 clients, HTTP/1.1 portal: an idle portal connection serves the client connection's next stream.

mitmproxy 12.3 gives every HTTP/2 stream a portal connection of its own when the portal speaks HTTP/1.1:
``Http1Client.mark_done`` closes the connection after one answer ("If we proxy HTTP/2 to HTTP/1, we only use
upstream connections for one request") and ``HttpLayer.get_connection`` never hands a connected one to a second
stream (the "tricky multiplexing edge case": an answer delimited by the connection's close cannot share it).
With TLS to the portal that is a TCP and TLS handshake per request; it made HTTP/2 through the gateway (and
through bare mitmdump) 2.5 × slower than HTTP/1.1.

Patches, for HTTP/2 client connections only (HTTP/1.1 clients and HTTP/2 portals are untouched):

- ``Http1Client.mark_done``: once both the request and its answer are complete, the portal connection is kept
  for another request only when HTTP/1.1 would keep it too (RFC 9112 §9.3): the answer's length was known (not
  read until the close: an HTTP/1.0 answer without a length always closes), no ``Connection: close`` on either
  side, not a ``101``/``CONNECT`` tunnel or an interim ``1xx`` answer, the connection still open both ways, and
  no bytes from the portal beyond the answer. It then waits for the next request as it does for an HTTP/1.1
  client. Anything else is left to mitmproxy, which closes the connection as before.
- ``HttpLayer.get_connection``: a stream first takes a portal connection of its own client connection (the
  ``HttpLayer`` belongs to one client connection: nothing is shared between clients) that matches (address,
  TLS, no upstream proxy), is connected and idle: set up, no request on it, nothing received since. One idle
  for longer than ``IDLE_REUSE_SECONDS`` is closed instead (a portal may close an idle connection at any moment:
  Apache's default is after 5 s, and a request sent just then would fail), and is closed anyway at the
  ``HttpLayer``'s next look (every ``WAIT_CHECK_SECONDS`` while it has idle ones): the portal is not left holding
  a connection for as long as the client keeps its own open. Without an idle one, mitmproxy's own
  choice applies (a new connection) while fewer than ``MAX_PER_CLIENT`` are open or opening.
- At ``MAX_PER_CLIENT`` the stream waits, in order, until one of them is idle or closed (checked after every
  event of the ``HttpLayer``). This is mitmproxy's own bound: its connection handler lets a client connection
  have 5 connections to one address at a time (``ConnectionHandler.max_conns``), so a sixth would wait there —
  for ever, now that idle connections stay open.
- A waiting stream whose ``gateway.upstream_timeout`` ran out (``govgate/addons/upstream_timeout.py`` marks its
  flow) is answered as a failed connect, which the gate turns into its 504 page, at the next look: after any
  event of the ``HttpLayer``, and every ``WAIT_CHECK_SECONDS`` while streams wait (a ``RequestWakeup`` of the
  layer's own), so a connection where nothing else happens does not keep it waiting. The connection being
  opened for a stream is noted (``pending_connection``), because the stream's flow names it only once it is up
  and the timeout must be able to cancel a connect that hangs.

A stream therefore never shares a connection with another in flight (no pipelining), and everything that
ends a request abnormally (an upstream timeout, a client resetting the stream, an error mid-answer, a body
over the limit) closes the connection as it did. Measured in docs/performance.md (HTTP/2 section).

And one fix that the reuse needs (and that was a hole without it): an HTTP/2 request's body is framed by its
DATA frames, so a client need not send ``content-length``. mitmproxy 12.3 then wrote the request to the
HTTP/1.1 portal with neither ``Content-Length`` nor ``Transfer-Encoding``, i.e. without a body (RFC 9112
§6.3), and the body's bytes followed on the connection: the portal read them as a *new request*, one the gate
never saw or decided on (request smuggling, on a connection of its own before this module as well).
``Http1Client.send`` now gives such a request the ``Content-Length`` of its body (read whole, as the gate
reads every body), or ``Transfer-Encoding: chunked`` when the body is streamed; ``_keep_for_next`` refuses a
connection whose request went out without either all the same.
"""

from __future__ import annotations

import collections
import time
import weakref

from mitmproxy import http
from mitmproxy.connection import Connection, ConnectionState
from mitmproxy.http import Headers
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._events import HttpEvent, RequestHeaders

from govgate.addons.proxy_errors import UPSTREAM_TIMEOUT_KEY

MAX_PER_CLIENT = 5  # portal connections per client connection: mitmproxy's ConnectionHandler.max_conns
IDLE_REUSE_SECONDS = 2.0  # an idle portal connection older than this is closed, not reused

_IDLE_SINCE = "_govgate_idle_since"  # on an Http1Client: when it was left idle for reuse (None: not idle)
_WAITING = "_govgate_waiting"  # on an HttpLayer: streams waiting for a portal connection, in order
_WAKEUP = "_govgate_wakeup"  # on an HttpLayer: its pending RequestWakeup for a look at the waiting streams
_HAS_IDLE = "_govgate_has_idle"  # on an HttpLayer: it may have idle portal connections to close once stale
WAIT_CHECK_SECONDS = 0.25  # how often waiting streams and idle connections are looked at


def _connection_close(http_version: str, headers: Headers) -> bool:
    """``Connection: close``, or an HTTP/1.0 message without ``Connection: keep-alive`` (mitmproxy's own test)."""
    return bool(http1.connection_close(http_version, headers))  # type: ignore[no-untyped-call]


def frame_body(event: RequestHeaders) -> None:
    """An HTTP/2 (or 3) request with a body but no length: give it one for HTTP/1.1 (see above). An HTTP/1 request
    with a body always has one from its client; should it have lost it on the way, its body would reach the portal
    as the next request (smuggling): it gets one too."""
    request = event.request
    if event.end_stream:
        return
    if "content-length" in request.headers or "transfer-encoding" in request.headers:
        return
    if not (request.is_http2 or request.is_http3) and not request.raw_content and not request.stream:
        return  # HTTP/1 without a body: nothing to frame
    if request.raw_content is not None:  # read whole: its length is known
        request.headers["content-length"] = str(len(request.raw_content))
    else:  # streamed: Http1Client chunks each piece, and ends with the last chunk
        request.headers["transfer-encoding"] = "chunked"


def _framed(request: http.Request) -> bool:
    """Whether the portal can tell where this request ended: a length, chunked, or no body at all."""
    return (not request.raw_content and not request.stream) or "content-length" in request.headers \
        or "transfer-encoding" in request.headers


def http1_client(http: http_layer.HttpLayer, conn: Connection) -> _http1.Http1Client | None:
    """The HTTP/1 client layer speaking on portal connection ``conn``, once set up (else None)."""
    top = http.connections.get(conn)
    if top is None or conn in http.waiting_for_establishment:
        return None
    last = top.context.layers[-1]
    if isinstance(last, _http1.Http1Client) and last.conn is conn:
        return last
    return None


def _idle(client: _http1.Http1Client) -> bool:
    """Left for reuse by ``_keep_for_next``, and nothing asked or received since."""
    return (getattr(client, _IDLE_SINCE, None) is not None and client.stream_id is None and client.request is None
            and client.state == client.read_headers and not client.buf
            and client.conn.state is ConnectionState.OPEN)


def http_layer_of(below: layer.Layer) -> http_layer.HttpLayer | None:
    """The HTTP layer above ``below`` (a layer it made: a portal connection's, the HTTP/2 client connection's)."""
    for found in reversed(below.context.layers):
        if isinstance(found, http_layer.HttpLayer):
            return found
    return None


def _keep_for_next(client: _http1.Http1Client, request_done: bool, response_done: bool) -> bool:
    """Whether the exchange now complete on ``client`` leaves its connection fit for the next HTTP/2 stream."""
    req, resp = client.request, client.response
    if req is None or resp is None or not (request_done and response_done) or not req.is_http2:
        return False
    if resp.status_code < 200 or _http1.should_make_pipe(req, resp):
        return False
    try:
        if http1.expected_http_body_size(req, resp) == -1:  # delimited by the close
            return False
    except ValueError:
        return False
    if _connection_close(req.http_version, req.headers) or _connection_close(resp.http_version, resp.headers):
        return False
    if client.conn.state is not ConnectionState.OPEN or client.buf or not _framed(req):
        return False
    http = http_layer_of(client)
    return http is not None and http.context.client.alpn == b"h2"


def _in_use(http: http_layer.HttpLayer, event: http_layer.GetHttpConnection) -> int:
    """Portal connections for ``event`` that hold one of mitmproxy's slots: open (even half) or opening."""
    return sum(1 for conn in http.connections
               if event.connection_spec_matches(conn)
               and (conn.state is not ConnectionState.CLOSED or conn in http.waiting_for_establishment))


def _idle_connection(http: http_layer.HttpLayer, event: http_layer.GetHttpConnection,
                     now: float) -> tuple[Connection | None, list[Connection]]:
    """An idle portal connection fit for ``event`` (or None), and the idle ones too old to reuse."""
    stale: list[Connection] = []
    for conn in http.connections:
        if not (event.connection_spec_matches(conn) and conn.connected and conn.alpn != b"h2"):
            continue
        client = http1_client(http, conn)
        if client is None or not _idle(client):
            continue
        if now - getattr(client, _IDLE_SINCE) > IDLE_REUSE_SECONDS:
            stale.append(conn)
            continue
        return conn, stale
    return None, stale


def _timed_out(layer_: http_layer.HttpLayer, waiting: http_layer.GetHttpConnection) -> bool:
    """Whether the stream behind ``waiting`` ran out of ``gateway.upstream_timeout`` while it waited."""
    flow = getattr(layer_.command_sources.get(waiting), "flow", None)
    return isinstance(flow, http.HTTPFlow) and bool(flow.metadata.get(UPSTREAM_TIMEOUT_KEY))


# The portal connection each stream waits on while it is being opened: the stream's flow names it only once it is
# up, and ``gateway.upstream_timeout`` must be able to cancel a connect that hangs. Kept with the layer and the
# stream's request for it, so that it counts only while that request still waits on that connection (mitmproxy
# moves a stream that shared another's connect on to a connection of its own, or to the pool's queue).
_PENDING: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[http_layer.HttpLayer, http_layer.GetHttpConnection,
                                                         Connection]] = weakref.WeakKeyDictionary()


def _note_pending(layer_: http_layer.HttpLayer, event: http_layer.GetHttpConnection) -> None:
    for conn, waiting in layer_.waiting_for_establishment.items():
        if event in waiting:
            flow = getattr(layer_.command_sources.get(event), "flow", None)
            if isinstance(flow, http.HTTPFlow):
                _PENDING[flow] = (layer_, event, conn)
            return


def pending_connection(flow: http.HTTPFlow) -> Connection | None:
    """The portal connection being opened that ``flow``'s request is waiting on, if any (else None)."""
    noted = _PENDING.get(flow)
    if noted is None:
        return None
    layer_, event, conn = noted
    return conn if event in layer_.waiting_for_establishment.get(conn, ()) else None


def sharing_connect(flow: http.HTTPFlow) -> list[http.HTTPFlow]:
    """Every flow whose request waits on the portal connection being opened that ``flow``'s waits on (``flow``
    included; HTTP/2 streams sent together share one connect), or [] when it waits on none."""
    noted = _PENDING.get(flow)
    if noted is None:
        return []
    layer_, event, conn = noted
    waiting = layer_.waiting_for_establishment.get(conn, ())
    if event not in waiting:
        return []
    flows = (getattr(layer_.command_sources.get(other), "flow", None) for other in waiting)
    return [f for f in flows if isinstance(f, http.HTTPFlow)]


def _close_stale(layer_: http_layer.HttpLayer) -> layer.CommandGenerator[bool]:
    """Close the idle portal connections older than ``IDLE_REUSE_SECONDS``; whether younger idle ones remain."""
    now, remain = time.monotonic(), False
    for conn in list(layer_.connections):
        client = http1_client(layer_, conn) if conn.connected and conn.alpn != b"h2" else None
        if client is None or not _idle(client):
            continue
        if now - getattr(client, _IDLE_SINCE) > IDLE_REUSE_SECONDS:
            setattr(client, _IDLE_SINCE, None)  # not handed out while it closes
            yield commands.CloseConnection(conn)
        else:
            remain = True
    return remain


def _check_later(layer_: http_layer.HttpLayer) -> layer.CommandGenerator[None]:
    """Ask for a look in ``WAIT_CHECK_SECONDS`` (one request at a time): a stream that ran out of time while it
    waited is answered then, and an idle portal connection past ``IDLE_REUSE_SECONDS`` closed, even if nothing
    else happens on the client connection meanwhile."""
    if getattr(layer_, _WAKEUP, None) is None:
        wakeup = commands.RequestWakeup(WAIT_CHECK_SECONDS)
        setattr(layer_, _WAKEUP, wakeup)
        yield wakeup


def _waiting(http: http_layer.HttpLayer) -> collections.deque[http_layer.GetHttpConnection]:
    queue: collections.deque[http_layer.GetHttpConnection] | None = getattr(http, _WAITING, None)
    if queue is None:
        queue = collections.deque()
        setattr(http, _WAITING, queue)
    return queue


def reuse_idle_portal_connections() -> None:
    """Install the patches (once)."""
    client_class = _http1.Http1Client
    original_mark_done = client_class.mark_done
    if getattr(original_mark_done, "_govgate_pool", False):
        return

    def mark_done(self: _http1.Http1Client, *, request: bool = False,
                  response: bool = False) -> layer.CommandGenerator[None]:
        if not _keep_for_next(self, self.request_done or request, self.response_done or response):
            setattr(self, _IDLE_SINCE, None)
            return (yield from original_mark_done(self, request=request, response=response))
        # As mitmproxy does for an HTTP/1.1 client's connection: ready for the next request's answer.
        self.request_done = self.response_done = False
        self.request = self.response = None
        self.stream_id = None
        self.state = self.read_headers
        setattr(self, _IDLE_SINCE, time.monotonic())
        owner = http_layer_of(self)
        if owner is not None:
            setattr(owner, _HAS_IDLE, True)  # its next event asks for a look, which closes the connection once stale
        return None

    mark_done._govgate_pool = True  # type: ignore[attr-defined]
    client_class.mark_done = mark_done  # type: ignore[method-assign,assignment]

    original_send = client_class.send

    def send(self: _http1.Http1Client, event: HttpEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, RequestHeaders):
            frame_body(event)
        return (yield from original_send(self, event))

    client_class.send = send  # type: ignore[method-assign]

    layer_class = http_layer.HttpLayer
    original_get_connection = layer_class.get_connection
    original_handle_event = layer_class._handle_event

    def get_connection(self: http_layer.HttpLayer, event: http_layer.GetHttpConnection, *,
                       reuse: bool = True) -> layer.CommandGenerator[None]:
        if self.context.client.alpn != b"h2":
            yield from original_get_connection(self, event, reuse=reuse)
            _note_pending(self, event)  # HTTP/1.1 clients too: a hanging connect must be cancellable
            return None
        conn, stale = _idle_connection(self, event, time.monotonic())
        for old in stale:
            client = http1_client(self, old)
            if client is not None:
                setattr(client, _IDLE_SINCE, None)  # not handed out while it closes
            yield commands.CloseConnection(old)
        if conn is not None:
            client = http1_client(self, conn)
            assert client is not None
            setattr(client, _IDLE_SINCE, None)  # leased: busy until its exchange is done
            stream = self.command_sources.pop(event)
            yield from self.event_to_child(stream, http_layer.GetHttpConnectionCompleted(event, (conn, None)))
            return None
        if _in_use(self, event) >= MAX_PER_CLIENT:
            _waiting(self).append(event)  # served by `_handle_event` once a connection is idle or closed
            yield from _check_later(self)
            return None
        yield from original_get_connection(self, event, reuse=reuse)
        _note_pending(self, event)
        return None

    def _handle_event(self: http_layer.HttpLayer, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Wakeup) and event.command is getattr(self, _WAKEUP, None):
            setattr(self, _WAKEUP, None)  # our own: a look at the waiting streams and the idle connections
            setattr(self, _HAS_IDLE, (yield from _close_stale(self)))
        else:
            yield from original_handle_event(self, event)
        queue: collections.deque[http_layer.GetHttpConnection] | None = getattr(self, _WAITING, None)
        if queue and any(_timed_out(self, waiting) for waiting in queue):
            for late in [waiting for waiting in queue if _timed_out(self, waiting)]:
                queue.remove(late)
                yield from self.event_to_child(self.command_sources.pop(late), http_layer.GetHttpConnectionCompleted(
                    late, (None, "upstream timeout while waiting for a portal connection")))
        while queue:
            first = queue[0]
            idle, stale = _idle_connection(self, first, time.monotonic())
            if idle is None and not stale and _in_use(self, first) >= MAX_PER_CLIENT:
                break
            queue.popleft()
            yield from self.get_connection(first)
        if queue or getattr(self, _HAS_IDLE, False):
            yield from _check_later(self)

    layer_class.get_connection = get_connection  # type: ignore[method-assign]
    layer_class._handle_event = _handle_event  # type: ignore[method-assign]
