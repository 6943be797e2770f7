"""How many bytes of request bodies the gateway holds at once, and whether one more may come in. Pure arithmetic.

mitmproxy reads a request's whole body before the ``request`` hook (the gate decides there, so a body is never
streamed to the portal ahead of the decision), up to ``body_size_limit`` each, and keeps it until the answer. An
unauthenticated client could make it hold as much as it cared to send: 100 HTTP/2 streams a connection, each a body
left a byte short of its length and kept alive a byte per ``idle_timeout`` (measured: 16 streams of 16 MiB grew the
gateway by 291 MiB in under 3 s). Past ``limit`` the next byte is refused, so such a flood fails its own requests,
not the gateway (which would otherwise be killed for memory, staff and public alike).
"""

from __future__ import annotations


class BodyBudget:
    """Bytes held per request (by flow id), and in all. Not thread-safe: one event loop."""

    __slots__ = ("by_flow", "held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.by_flow: dict[str, int] = {}

    def take(self, flow_id: str, size: int) -> bool:
        """The request ``flow_id`` now holds ``size`` bytes of body: True if that fits (and it is counted), False if
        it would take the total past the limit (and nothing changes)."""
        grown = size - self.by_flow.get(flow_id, 0)
        if grown > 0 and self.held + grown > self.limit:
            return False
        self.by_flow[flow_id] = size
        self.held += grown
        return True

    def release(self, flow_id: str) -> None:
        """The request is over (answered, failed, refused): its bytes are no longer held."""
        self.held -= self.by_flow.pop(flow_id, 0)
