"""One HTTP/2 request over TLS with the h2 library: httpx offers ALPN "http/1.1" before "h2", and the
gateway (like mitmproxy) follows the client's order, so httpx's HTTP/2 client ends up on HTTP/1.1."""

from __future__ import annotations

import socket
import ssl


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
