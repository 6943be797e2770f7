"""The sample portal's HTTP/1.1 handling, over real sockets: keep-alive, pipelining, bodies that arrive in pieces,
``Connection: close``, bad requests, and a client that does not read its answers."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from govgate.sample_portal import start_sample_portal


@pytest.fixture
async def portal() -> AsyncIterator[int]:
    server = await start_sample_portal("127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(portal: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", portal)
    writer.write(b"GET /static/app.css HTTP/1.1\r\nHost: a\r\n\r\n"
                 b"GET /echo/one HTTP/1.1\r\nHost: a\r\n\r\nGET /nothing HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, headers["content-type"], body) == (200, "text/css", b"body{font-family:sans-serif}\n")
    assert headers["connection"] == "keep-alive"
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)["path"]) == (200, "/echo/one")
    status, _, _ = await read_response(reader)
    assert status == 404
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # the same connection, later
    status, _, body = await read_response(reader)
    assert status == 200
    assert "示例政务门户".encode() in body
    writer.close()


async def test_a_body_and_a_head_that_arrive_in_pieces(portal: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", portal)
    request = b"POST /echo/form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    request += b"GET /echo/next HTTP/1.1\r\nHost: a\r\n\r\n"
    for i in range(0, len(request), 7):
        writer.write(request[i:i + 7])
        await writer.drain()
        await asyncio.sleep(0.001)
    status, _, body = await read_response(reader)
    echoed = json.loads(body)
    assert (status, echoed["method"], echoed["path"]) == (200, "POST", "/echo/form")
    assert ["Content-Length", "11"] in echoed["headers"]
    status, _, body = await read_response(reader)  # the body was not read as the next request
    assert (status, json.loads(body)["path"]) == (200, "/echo/next")
    writer.close()


async def test_connection_close_is_answered_then_closed(portal: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", portal)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /echo HTTP/1.1\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (200, "close")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the second request is not answered
    writer.close()


@pytest.mark.parametrize(("request_bytes", "answer"), [
    (b"NONSENSE\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n"),  # not a request line: 400, then closed
    (b"POST /echo HTTP/1.1\r\nContent-Length: many\r\n\r\n", b""),  # a length that is not a number
    (b"POST /echo HTTP/1.1\r\nContent-Length: -5\r\n\r\nGET / HTTP/1.1\r\n\r\n", b""),  # a negative length
    (b"GET /" + b"a" * 70_000, b""),  # a head longer than 64 KiB with no end
])
async def test_bad_requests_close_the_connection(portal: int, request_bytes: bytes, answer: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", portal)
    writer.write(request_bytes)
    got = await asyncio.wait_for(reader.read(), 5)  # read() returns once the portal has closed
    assert got[:len(answer)] == answer
    assert len(got) == len(answer) if not answer else got.endswith(b"\r\n\r\n")
    writer.close()


async def test_a_client_that_does_not_read_is_not_read_from_without_bound(portal: int) -> None:
    """Requests keep coming but their answers are not read. Once its unsent answers pass asyncio's high-water mark
    the portal stops reading, so the client's sends stall after about what the sockets' buffers hold (about 4 MB
    here: the client's buffers are small, the portal's receive buffer grows), instead of the portal reading (and
    answering into memory) everything it is sent."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the client reads nothing
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", portal))
    request = b"GET /news/forms.html HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    chunk = request * 64
    limit, sent = 16 * 2**20, 0
    try:
        while sent < limit:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, chunk), 1.0)
            except TimeoutError:
                break  # the portal has stopped reading
            sent += len(chunk)
        assert sent < limit, f"the portal read {sent} bytes of requests whose answers nobody reads"
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: drop what is queued
        sock.close()
