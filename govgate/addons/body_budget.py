"""A bound on the request bodies the gateway holds at once (``govgate.core.body_budget`` says why).

mitmproxy checks each piece of a request body it buffers against ``body_size_limit`` in
``HttpStream.check_body_size``; that check is wrapped to also count the piece against ``BODIES``, the process's
budget. A piece that does not fit fails its request as one over ``body_size_limit`` does: the gate's 413 page (over
HTTP/1.1 the connection is closed after it), an ``error`` for the audit record; and a warning,
``request.body_refused``, for the operator. A request's bytes count until it is answered or fails
(``ConnectionLimits`` releases them): a body read whole stays in memory until then.
"""

from __future__ import annotations

import logging

from mitmproxy import flow as mitm_flow
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook
from mitmproxy.proxy.utils import ReceiveBuffer

from govgate.core.body_budget import BodyBudget
from govgate.repeated import REPEATED

logger = logging.getLogger(__name__)

REQUEST_BODIES_LIMIT = 256 << 20  # bytes of request bodies held at once, per process: four bodies of 64 MiB
BODIES = BodyBudget(REQUEST_BODIES_LIMIT)


def install() -> None:
    """Wrap mitmproxy's body size check (once per process)."""
    stream_class = http_layer.HttpStream
    original = stream_class.check_body_size
    if getattr(original, "_govgate_budget", False):
        return

    def check_body_size(self: http_layer.HttpStream, request: bool) -> layer.CommandGenerator[bool]:
        if request and self.request_body_buf and not BODIES.take(self.flow.id, len(self.request_body_buf)):
            return (yield from _refuse(self))
        return (yield from original(self, request))

    check_body_size._govgate_budget = True  # type: ignore[attr-defined]
    stream_class.check_body_size = check_body_size  # type: ignore[method-assign]


def _refuse(stream: http_layer.HttpStream) -> layer.CommandGenerator[bool]:
    """As mitmproxy refuses a body over ``body_size_limit`` (``HttpStream.check_body_size``)."""
    message = (f"Request body refused: the gateway already holds {BODIES.held >> 20} MiB of request bodies "
               f"(at most {BODIES.limit >> 20} MiB at once).")
    REPEATED.warning(logger, "request.body_refused", "request.body_refused client=%s held=%d limit=%d reason=the "
                     "request bodies held at once would pass the limit", stream.context.client.peername, BODIES.held,
                     BODIES.limit)
    stream.flow.error = mitm_flow.Error(message)
    yield HttpErrorHook(stream.flow)
    yield http_layer.SendHttp(ResponseProtocolError(stream.stream_id, message, ErrorCode.REQUEST_TOO_LARGE),
                              stream.context.client)
    stream.client_state = stream.state_errored  # the rest of the body is read and dropped
    # What it held goes now, not when the client ends the stream.
    stream.request_body_buf = ReceiveBuffer()  # type: ignore[no-untyped-call]
    stream.flow.live = False
    return True
