"""One HTTP/2 request over TLS with the h2 library: httpx offers ALPN "http/1.1" before "h2", and the
gateway (like mitmproxy) follows the client's order, so httpx's HTTP/2 client ends up on HTTP/1.1.
``h2_many``: many concurrent streams on one connection."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass


def h2_request(port: int, ctx: ssl.SSLContext, path: str, *, authority: str = "portal.example.gov.cn",
               headers: dict[str, str] | None = None, timeout: float = 30, method: str = "GET",
               body: bytes = b"") -> tuple[dict[str, str], bytes]:
    """(response headers with ":status", body) of one request; raises if the server does not speak h2."""
    import h2.connection
    import h2.events

    ctx.set_alpn_protocols(["h2"])
    conn = h2.connection.H2Connection()
    got: dict[str, str] = {}
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=authority) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn.initiate_connection()
        conn.send_headers(1, [(":method", method), (":path", path), (":scheme", "https"), (":authority", authority),
                              *((k.lower(), v) for k, v in (headers or {}).items())], end_stream=not body)
        if body:
            conn.send_data(1, body, end_stream=True)
        tls.sendall(conn.data_to_send())
        done = False
        while not done:
            data = tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    got = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    received += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
            tls.sendall(conn.data_to_send())
    return got, received


@dataclass
class Answer:
    status: int | None  # None: the stream was reset (or the connection ended) before an answer head
    body: bytes
    reset: bool


class H2Session:
    """One HTTP/2 connection over TLS kept open between exchanges (``with H2Session(...) as s: s.many([...])``)."""

    def __init__(self, port: int, ctx: ssl.SSLContext, *, authority: str = "portal.example.gov.cn",
                 timeout: float = 30) -> None:
        import h2.connection

        ctx.set_alpn_protocols(["h2"])
        self.authority = authority
        self.conn = h2.connection.H2Connection()
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.tls = ctx.wrap_socket(self.raw, server_hostname=authority)
        assert self.tls.selected_alpn_protocol() == "h2"
        self.conn.initiate_connection()
        self.tls.sendall(self.conn.data_to_send())

    def __enter__(self) -> H2Session:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.tls.close()
        self.raw.close()

    def many(self, requests: list[tuple[str, str, bytes]], *, lengths: bool = True) -> list[Answer]:
        """Send every ``(method, path, body)`` at once as concurrent streams; the answers in the same order.
        Bodies must fit the flow-control windows (64 KiB for the connection); ``lengths=False``: bodies go without
        ``content-length`` (HTTP/2 frames them; the header is optional)."""
        import h2.events

        conn = self.conn
        status: dict[int, int] = {}
        bodies: dict[int, bytes] = {}
        resets: set[int] = set()
        ended: set[int] = set()
        ids: list[int] = []
        for method, path, body in requests:
            sid = conn.get_next_available_stream_id()
            ids.append(sid)
            bodies[sid] = b""
            conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "https"),
                                    (":authority", self.authority),
                                    *([("content-length", str(len(body)))] if body and lengths else [])],
                              end_stream=not body)
            for start in range(0, len(body), 16384):  # the default largest frame
                conn.send_data(sid, body[start:start + 16384], end_stream=start + 16384 >= len(body))
        self.tls.sendall(conn.data_to_send())
        while not ended.issuperset(ids):
            data = self.tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    ended.add(event.stream_id)
                    resets.add(event.stream_id)
            self.tls.sendall(conn.data_to_send())
        return [Answer(status.get(sid), bodies[sid], sid in resets) for sid in ids]


def h2_many(port: int, ctx: ssl.SSLContext, requests: list[tuple[str, str, bytes]], *,
            authority: str = "portal.example.gov.cn", timeout: float = 30) -> list[Answer]:
    """``H2Session.many`` on a connection of its own."""
    with H2Session(port, ctx, authority=authority, timeout=timeout) as session:
        return session.many(requests)
