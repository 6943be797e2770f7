"""``gateway.upstream_timeout``: a portal that does not send its response head in time gets the client a 504.

mitmproxy's only timeout is ``tcp_timeout`` (600 s of silence), so a portal that accepts the connection and
never answers held both connections for ten minutes and then gave the client an empty reply. Here every
forwarded request gets one timer, from the ``request`` hook (the whole request read; connecting to the portal
counts) to ``responseheaders``. When it fires, the flow is marked and its portal connection is closed (a
connect still in progress is cancelled: the flow names its connection only once it is up, so the one being
opened for its request is found through ``h1_pool.pending_connection``, for HTTP/1.1 and HTTP/2 clients alike,
and only while the request still waits on it; a connect shared by several HTTP/2 streams is cancelled by the
first whose time runs out, and the others waiting on it are marked too, so that each gets the 504 of a portal that
did not answer in time, not the 502 of one that cannot be reached): mitmproxy reports the
failure and ``govgate/addons/proxy_errors.py`` answers with the gate's 504 page, logged and audited as
``upstream.error`` with ``reason: timeout``.
An HTTP/2 stream still waiting for a portal connection is answered by ``govgate/addons/h1_pool.py``, which sees
the mark; a connect that mitmproxy has not begun (waiting for one of its per-address slots, where a cancel
would be lost and the stream would hang) is looked at again every ``RECHECK_SECONDS`` until it can be cancelled.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.connection import Connection

from govgate.addons.h1_pool import pending_connection, sharing_connect
from govgate.addons.proxy_errors import UPSTREAM_TIMEOUT_KEY
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 0.05  # how soon a timed-out flow's connect that has not begun is looked at again


class UpstreamTimeout:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def request(self, flow: http.HTTPFlow) -> None:
        # Registered after the gate: a flow that still has no response here is being forwarded.
        if flow.response or flow.error or not flow.live:
            return
        delay = self.runtime.policy.gateway.upstream_timeout.total_seconds()
        self._timers[flow.id] = asyncio.get_running_loop().call_later(delay, self._expire, flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def _cancel(self, flow: http.HTTPFlow) -> None:
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, flow: http.HTTPFlow) -> None:
        self._timers.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        flow.metadata[UPSTREAM_TIMEOUT_KEY] = True
        proxyserver: Proxyserver | None = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver is not None else None
        conn: Connection = flow.server_conn
        io = None
        if handler is not None:
            # An HTTP/2 stream's flow names its portal connection only once it is up: one still being opened
            # for it is found through the pool (govgate/addons/h1_pool.py), and cancelled like any other.
            io = handler.transports.get(conn)
            pending = pending_connection(flow)
            if io is None and pending is not None:
                conn, io = pending, handler.transports.get(pending)
                if io is not None and io.handler is not None and conn.timestamp_start is not None:
                    for other in sharing_connect(flow):  # cancelled below: none of them got an answer in time
                        other.metadata[UPSTREAM_TIMEOUT_KEY] = True
        if io is None or io.handler is None:
            # No portal connection yet: an HTTP/2 stream waiting for one of its connection's portal connections
            # is answered by the pool, which sees the mark above.
            logger.debug("upstream.timeout no portal connection to close flow=%s", flow.id)
            return
        if conn.timestamp_start is None:
            # Still waiting for one of mitmproxy's per-address connection slots (ConnectionHandler.max_conns):
            # cancelled there, mitmproxy would never report the connect as failed and the stream would hang.
            # The slot frees as the connections holding it end (each under a timer like this one): look again.
            self._timers[flow.id] = asyncio.get_running_loop().call_later(RECHECK_SECONDS, self._expire, flow)
            return
        io.handler.cancel("upstream timeout")

    def done(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
