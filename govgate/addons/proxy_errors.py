"""Errors mitmproxy answers itself get the gate's own page, with the same security headers (Art. 29).

When the upstream cannot be reached, or a request cannot be parsed at all, mitmproxy's HTTP layers
answer below every addon hook, with a page that names the upstream address, the raw error text and
mitmproxy's version, and without HSTS. mitmproxy has no hook for that response, so this addon
replaces the three functions that build it (``_http1.make_error_response`` and ``format_error`` as
imported by ``_http1``/``_http2``/``_http3``) with ones that render ``govgate.pages.refusal.proxy_error``.
``tests/e2e/test_gateway_tls.py`` checks the result over HTTP/1.1 and HTTP/2, so a mitmproxy upgrade
that moves these functions fails the suite instead of silently bringing the old page back.
The details stay in the operator's log (``upstream.error``), with the request id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import flow as mitm_flow
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import _http1, _http2, _http3
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import RequestProtocolError, ResponseProtocolError
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook

from govgate.addons.context import context_of, request_event, respond
from govgate.addons.security_headers import HSTS
from govgate.core.audit_event import AuditDecision
from govgate.pages.refusal import proxy_error
from govgate.repeated import REPEATED
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)
_CLIENT_GONE = ("Client disconnected", "Connection killed")  # flow errors that say nothing about the portal


def _install(hsts: Callable[[], bool]) -> None:
    def format_error(status_code: int, message: str) -> bytes:
        return proxy_error(status_code).body

    def make_error_response(status_code: int, message: str = "") -> bytes:
        page = proxy_error(status_code)
        fields = [("Connection", "close"), ("Content-Type", page.content_type), *page.headers]
        if hsts():
            fields.append(("Strict-Transport-Security", HSTS))
        headers = http.Headers([(k.encode(), v.encode()) for k, v in fields])
        assembled: bytes = http1.assemble_response(  # type: ignore[no-untyped-call]
            http.Response.make(status_code, page.body, headers))
        return assembled

    for module in (_http1, _http2, _http3):
        if not hasattr(module, "format_error"):
            logger.warning("proxy_errors: mitmproxy %s has no format_error: its own error pages are in use",
                           module.__name__)
            continue
        module.format_error = format_error  # type: ignore[attr-defined]
    if hasattr(_http1, "make_error_response"):
        _http1.make_error_response = make_error_response
    else:
        logger.warning("proxy_errors: mitmproxy has no make_error_response: its own error pages are in use")
    _limit_request_heads()


MAX_REQUEST_HEAD = 64 * 1024  # bytes of request line and headers (nginx allows 4 x 8 KiB by default)
_HEAD_END = re.compile(rb"\n\r?\n")  # the blank line ending a head (h11 accepts bare LF too)


def _limit_request_heads() -> None:
    """Answer 431 and close when an HTTP/1 request's head grows past ``MAX_REQUEST_HEAD`` unfinished.

    mitmproxy 12 buffers a request head without limit ("FIXME: protect against header size DoS" in its
    ``Http1Server.read_headers``): one client streaming an endless header line grows the gateway by
    gigabytes. HTTP/2 is limited by its own settings. Wrapped once (``_govgate_limited`` marks it).
    """
    server = _http1.Http1Server
    original = server.read_headers
    if getattr(original, "_govgate_limited", False):
        return

    def read_headers(self: _http1.Http1Server, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        # The data just received is already in self.buf: a head that does not end within the limit is refused,
        # whether it is still coming or arrived whole.
        if (isinstance(event, events.DataReceived) and len(self.buf) > MAX_REQUEST_HEAD
                and _HEAD_END.search(bytes(self.buf), 0, MAX_REQUEST_HEAD) is None):
            self.buf = ReceiveBuffer()
            self.state = self.done
            yield commands.SendData(self.conn, _http1.make_error_response(431))
            yield commands.CloseConnection(self.conn)
            return
        yield from original(self, event)

    read_headers._govgate_limited = True  # type: ignore[attr-defined]
    server.read_headers = read_headers  # type: ignore[method-assign]


UPSTREAM_TIMEOUT_KEY = "govgate.upstream_timeout"  # set on a flow whose portal did not answer in time
CLIENT_SIDE_KEY = "govgate.client_side_error"  # set on a flow whose error came from the client's connection


def _answer_portal_failures_with_pages() -> None:
    """A portal that cannot be reached, closes the connection, or does not answer within ``upstream_timeout``
    gets the client the gate's own 502/504 page *as a response* — over HTTP/1.1 and HTTP/2 alike, through the
    response hooks (HSTS over TLS, security headers), with the request id, keeping the client's connection.

    mitmproxy turns such a failure into a ``ResponseProtocolError`` and writes its own error page below every
    hook (over HTTP/2 with ``server: mitmproxy`` and no HSTS). ``HttpStream.handle_protocol_error`` is wrapped
    so that, for a request the gate forwarded and fully read, with nothing of a response sent yet, the stream
    sends ``flow.response`` set to our page instead. Anything else goes to mitmproxy's handling unchanged.
    """
    stream_class = http_layer.HttpStream
    original = stream_class.handle_protocol_error
    if getattr(original, "_govgate_pages", False):
        return

    def handle_protocol_error(self: http_layer.HttpStream,
                              event: RequestProtocolError | ResponseProtocolError) -> layer.CommandGenerator[None]:
        flow = getattr(self, "flow", None)
        if isinstance(event, RequestProtocolError) and flow is not None:
            # The client's side failed (it reset the stream, sent GOAWAY, went away): nothing about the portal.
            flow.metadata[CLIENT_SIDE_KEY] = True
        status = event.code.http_status_code() if isinstance(event, ResponseProtocolError) else None
        ctx = context_of(flow) if flow is not None else None
        if (flow is None or status is None or status < 500 or flow.response is not None or flow.error is not None
                or ctx is None or self.client_state != self.state_done):
            yield from original(self, event)
            return
        timed_out = bool(flow.metadata.get(UPSTREAM_TIMEOUT_KEY))
        flow.error = mitm_flow.Error(event.message)
        yield HttpErrorHook(flow)  # logged and audited by ProxyErrors.error
        respond(flow, proxy_error(504 if timed_out else 502, ctx.request_id, as_json=ctx.as_json))
        yield from self.send_response()

    handle_protocol_error._govgate_pages = True  # type: ignore[attr-defined]
    stream_class.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]


def _own_headers_on_http2_errors(hsts: Callable[[], bool]) -> None:
    """What is left of mitmproxy's own error answers over HTTP/2 (a request it refuses as too large or invalid)
    carries the gate's headers, not ``server: mitmproxy`` and without HSTS. ``Http2Connection._handle_event`` is
    wrapped for exactly the case where it would write its own headers."""
    conn_class = _http2.Http2Connection
    original = conn_class._handle_event
    if getattr(original, "_govgate_headers", False):
        return

    def _handle_event(self: _http2.Http2Connection, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, ResponseProtocolError) and not self.is_closed(event.stream_id):
            status = event.code.http_status_code()
            stream = self.h2_conn.streams[event.stream_id]
            if status is not None and self.is_open_for_us(event.stream_id) and not stream.state_machine.headers_sent:
                page = proxy_error(status)
                fields = [(b":status", b"%d" % status), (b"content-type", page.content_type.encode()),
                          *((k.lower().encode(), v.encode()) for k, v in page.headers)]
                if hsts():
                    fields.append((b"strict-transport-security", HSTS.encode()))
                self.h2_conn.send_headers(event.stream_id, fields)
                self.h2_conn.send_data(event.stream_id, page.body, end_stream=True)
                yield commands.SendData(self.conn, self.h2_conn.data_to_send())
                return
        yield from original(self, event)

    _handle_event._govgate_headers = True  # type: ignore[attr-defined]
    conn_class._handle_event = _handle_event  # type: ignore[method-assign]


def _answer_malformed_bodies() -> None:
    """A request body that cannot be read (a malformed chunk size, a body cut short) gets the gate's 400 page
    before the connection is closed: mitmproxy's ``read_body`` only closed it, so the client got an empty
    reply. Nothing of such a request reaches the portal (it is refused before the ``request`` hook)."""
    conn_class = _http1.Http1Connection
    original = conn_class.read_body

    def _protocol_error(self: _http1.Http1Connection, message: str) -> ReceiveHttp:
        """What mitmproxy's ``read_body`` yields for a body h11 cannot read: the stream answers and closes."""
        assert self.stream_id is not None
        return ReceiveHttp(self.ReceiveProtocolError(self.stream_id, message, code=self.ReceiveProtocolError.code))
    if getattr(original, "_govgate_400", False):
        return

    def read_body(self: _http1.Http1Connection, event: events.Event) -> layer.CommandGenerator[None]:
        steps = original(self, event)
        try:
            try:
                command = next(steps)
            except NotImplementedError:
                # Trailers after a chunked body ("not implemented yet" in mitmproxy 12): a protocol error like any
                # other body that cannot be read, not "mitmproxy has crashed!" and a client left without an answer.
                yield _protocol_error(self, "HTTP/1 protocol error: trailers are not supported")
                return
            while True:
                if (isinstance(self, _http1.Http1Server) and isinstance(command, commands.CloseConnection)
                        and command.connection is self.conn and self.response is None):
                    yield commands.SendData(self.conn, _http1.make_error_response(400))
                    # The answer is sent: mitmproxy's own later attempt (for the same error) must not send another.
                    self.response = http.Response.make(400)
                reply = yield command
                try:
                    command = steps.send(reply)
                except NotImplementedError:
                    yield _protocol_error(self, "HTTP/1 protocol error: trailers are not supported")
                    return
        except StopIteration:
            return

    read_body._govgate_400 = True  # type: ignore[attr-defined]
    conn_class.read_body = read_body  # type: ignore[method-assign]


class ProxyErrors:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        _install(lambda: not runtime.policy.gateway.insecure)
        _answer_portal_failures_with_pages()
        _answer_malformed_bodies()
        _own_headers_on_http2_errors(lambda: not runtime.policy.gateway.insecure)

    def error(self, flow: http.HTTPFlow) -> None:
        # The detail mitmproxy would have shown the client (upstream address, OS error) is for the operator.
        if flow.error is None or flow.response is not None:
            return
        ctx = context_of(flow)
        request_id = ctx.request_id if ctx is not None else "-"
        if flow.error.msg.startswith(_CLIENT_GONE) or (
                flow.metadata.get(CLIENT_SIDE_KEY) and flow.request.timestamp_end is not None
                and not flow.metadata.get(UPSTREAM_TIMEOUT_KEY)):
            # The browser went away, reset the stream or closed its HTTP/2 connection while the portal was still to
            # answer: routine, not worth a warning each, and not a portal failure (no upstream.error record).
            logger.debug("request.aborted request_id=%s error=%s", request_id, flow.error.msg)
            return
        if flow.request.timestamp_end is None:  # the client's request itself could not be read: it got a 400
            logger.info("request.malformed request_id=%s error=%s", request_id, flow.error.msg[:200])
            return
        timed_out = bool(flow.metadata.get(UPSTREAM_TIMEOUT_KEY))
        REPEATED.warning(logger, "upstream.error", "upstream.error request_id=%s reason=%s error=%s", request_id,
                         "timeout" if timed_out else "unreachable", flow.error.msg)
        if ctx is not None:
            self.runtime.audit.emit(request_event(
                ctx, flow, "upstream.error", AuditDecision.ERROR, time=self.runtime.now(),
                reason="timeout" if timed_out else "unreachable", extra={"status": 504 if timed_out else 502}))
