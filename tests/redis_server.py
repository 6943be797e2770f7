"""A real ``redis-server`` for tests: on a free loopback port, in a temp dir, nothing persisted.

It can be stopped and started again on the same port, to simulate an outage. Waiting is polling a
condition (PING answered, port closed) with a deadline, never sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

from tests.ports import free_port
from tests.waiting import wait_for

START_DEADLINE = 10.0  # seconds
POLL = 0.01  # seconds between polls (spent waiting on the process, so an early exit is seen at once)


class RedisServerMissing(RuntimeError):
    """No ``redis-server`` (or ``valkey-server``) on PATH."""


def find_redis_server() -> str:
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise RedisServerMissing(
        "redis-server is not installed (nor valkey-server): the Redis tests need a real server. "
        "Install it with `scripts/setup --test` (or `apt-get install redis-server`)."
    )


def answers_ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``with RedisServer(tmp_dir) as server: server.url`` — or ``start()``, ``stop()``, ``start()`` again."""

    def __init__(self, directory: Path, port: int | None = None, *, sentinel_for: int | None = None,
                 master_name: str = "mymaster") -> None:
        """``sentinel_for``: run a Redis Sentinel (not a data server) monitoring the server on that port."""
        self.executable = find_redis_server()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self.sentinel_for = sentinel_for
        self.master_name = master_name
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = self.directory / "redis.log"
        if self.sentinel_for is not None:
            conf = self.directory / "sentinel.conf"  # Sentinel rewrites its own config file
            if not conf.exists():
                conf.write_text(
                    f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                    f"sentinel monitor {self.master_name} 127.0.0.1 {self.sentinel_for} 1\n"
                )
            args = [self.executable, str(conf), "--sentinel", "--loglevel", "warning"]
        else:
            args = [
                self.executable,
                "--save", "",
                "--appendonly", "no",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--daemonize", "no",
                "--loglevel", "warning",
            ]
        with log.open("ab") as out:
            self._process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.directory)
        deadline = time.monotonic() + START_DEADLINE
        while not answers_ping(self.port):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING: {log.read_text()[-2000:]}")
            try:
                code = self._process.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"redis-server exited with {code}: {log.read_text()[-2000:]}")

    def stop(self, *, kill: bool = True) -> None:
        """Stop the server (SIGKILL by default: an outage, not a polite shutdown) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server must be able to die
            if kill:
                process.kill()
            else:
                process.terminate()
            process.wait(timeout=START_DEADLINE)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is answered."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=START_DEADLINE) as s:
            s.sendall(b"FLUSHALL\r\n")
            reply = s.recv(64)
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisMonitor:
    """Every command a Redis server executes, as MONITOR reports it: (client address or "lua", command)."""

    LINE = re.compile(r'^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[tuple[str, str]] = []
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall(b"MONITOR\r\n")
        self._file = self._sock.makefile("rb")
        assert self._file.readline() == b"+OK\r\n"
        self._marker = socket.create_connection(("127.0.0.1", port), timeout=10)
        host, port_ = self._marker.getsockname()[:2]
        self.own = {f"{host}:{port_}"}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self._file:
                m = self.LINE.match(raw.decode("utf-8", "replace"))
                if m:
                    self.commands.append((m.group(1), m.group(2).upper()))
        except (OSError, ValueError):
            pass  # closed by close()

    def mark(self) -> int:
        """Run a marker command and wait until MONITOR has shown it: every command before it is in
        ``commands``, in order. Returns its position."""
        before = len(self.commands)
        self._marker.sendall(b"PING\r\n")
        assert self._marker.recv(64).startswith(b"+PONG")
        wait_for(lambda: any(addr in self.own for addr, _ in self.commands[before:]), 10, "the MONITOR marker")
        return next(i for i in range(before, len(self.commands)) if self.commands[i][0] in self.own)

    def client_commands(self, start: int, end: int) -> list[str]:
        """Commands sent by clients other than us between two marks (those run by scripts excluded)."""
        return [cmd for addr, cmd in self.commands[start + 1:end] if addr != "lua" and addr not in self.own]

    def close(self) -> None:
        self._marker.close()
        self._sock.shutdown(socket.SHUT_RDWR)  # ends the reader's loop (EOF) before anything is closed
        self._thread.join(5)
        self._file.close()
        self._sock.close()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """The port of a listening socket that reads and never answers: a Redis that has stopped answering."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
