"""An HTTP/1.1 portal that counts the connections it accepts, for the portal-connection tests over HTTP/2.

Runs on its own asyncio loop in a thread. Every answer names the request it answers (its path), so a test can
tell that each stream got its own answer. The path, under ``/echo/public/`` (public in the test policy), picks
how the answer is framed:

- ``n/…``: ``Content-Length``, kept alive;          ``chunked/…``: chunked, kept alive;
- ``close/…``: ``Content-Length`` and ``Connection: close``, then the portal closes;
- ``http10/…``: an HTTP/1.0 answer without a length (read until the portal closes);
- ``cut/…``: a head promising 100 bytes, 10 bytes, then the portal closes (an error mid-answer);
- ``slow/…``: as ``n/`` after 0.3 s;          ``hang/…``: never answers (until the connection is closed);
- ``trickle/…``: the head at once, then the path ten times over ``TRICKLE_SECONDS``, kept alive.

A request body is read by its ``Content-Length`` and answered with its length and SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from dataclasses import dataclass, field

TRICKLE_SECONDS = 4.0


@dataclass
class Counts:
    accepted: int = 0  # connections accepted so far
    open: int = 0  # connections open now
    most_open: int = 0  # the most open at once
    requests: int = 0  # requests read, on all connections
    per_connection: list[int] = field(default_factory=list)  # requests read on each connection, in accept order


class CountingPortal:
    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="counting portal", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def snapshot(self) -> Counts:
        with self._lock:
            c = self.counts
            return Counts(c.accepted, c.open, c.most_open, c.requests, list(c.per_connection))

    def reset(self) -> None:
        with self._lock:
            self.counts = Counts(open=self.counts.open, most_open=self.counts.open)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            counts = self.counts
            counts.accepted += 1
            counts.open += 1
            counts.most_open = max(counts.most_open, counts.open)
            index = len(counts.per_connection)
            counts.per_connection.append(0)
        try:
            while await self._answer(reader, writer, counts, index):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with self._lock:
                self.counts.open -= 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: Counts,
                      index: int) -> bool:
        """Answer one request; False when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        _method, target, _version = lines[0].split(" ")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
        with self._lock:
            counts.requests += 1
            counts.per_connection[index] += 1
        text = target.encode()
        if body:
            text += b" %d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
        kind = target.removeprefix("/echo/public/").split("/", 1)[0]
        if kind == "slow":
            await asyncio.sleep(0.3)
        elif kind == "hang":
            await reader.read()  # until the gateway closes the connection
            return False
        if kind == "http10":
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + text)
            await writer.drain()
            return False
        if kind == "cut":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789")
            await writer.drain()
            return False
        if kind == "trickle":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (len(text) * 10)
            writer.write(head)
            await writer.drain()
            for _ in range(10):
                await asyncio.sleep(TRICKLE_SECONDS / 10)
                writer.write(text)
                await writer.drain()
            return True
        if kind == "chunked":
            half = len(text) // 2
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, text[:half], len(text) - half, text[half:]))
            await writer.drain()
            return True
        close = kind == "close"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
                     % (len(text), b"Connection: close\r\n" if close else b"", text))
        await writer.drain()
        return not close
