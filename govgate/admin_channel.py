"""The running gateway's local admin channel: a Unix socket the ``govgate`` command asks read-only questions on.

Without ``state.redis``, locks and sessions live in the gateway's own memory, where ``govgate account list``
cannot read them. The gateway therefore answers a few questions on a Unix socket beside its key file
(``<key_file folder>/govgate-admin.sock``), mode 0600 in a folder only its owner should enter: only the
user the gateway runs as (and root) can connect. One JSON object per line each way, one question per
connection:

    → {"question": "status"}
    ← {"ok": true, "pid": 4711, "policy_version": 3, "policy_sha256": "…", "store": "memory"}
    → {"question": "locks", "accounts": ["zhangsan", "lisi"]}
    ← {"ok": true, "now": "2026-11-25T10:00:00+08:00", "locks": {"zhangsan": "2026-11-25T10:30:00+08:00", "lisi": null}}

Nothing it answers is secret (no session ids, no secrets, no addresses), and nothing it is asked changes
anything: unlocking and logging out stay with the accounts file, which is audited (Art. 20). A question is
at most ``MAX_QUESTION`` bytes and must arrive within ``TIMEOUT`` seconds.

The path of a Unix socket may be at most 107 bytes; a longer one is reached through ``/proc/self/fd`` and a
descriptor of its folder (Linux). The socket is bound under a temporary name, given mode 0600, then renamed
into place, so it is never reachable with looser permissions; a socket left by a gateway that died is
replaced, one another gateway still answers on is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SOCKET_NAME = "govgate-admin.sock"
MAX_QUESTION = 64 * 1024
MAX_ACCOUNTS = 10_000
TIMEOUT = 5.0
_SUN_PATH_MAX = 100  # bytes; the kernel's limit is 107 plus a NUL

type Answer = dict[str, Any]
type Handler = Callable[[dict[str, Any]], Awaitable[Answer]]


def socket_path(key_file: Path) -> Path:
    """Where the gateway whose key file is ``key_file`` answers."""
    return key_file.parent / SOCKET_NAME


@contextlib.contextmanager
def _reachable(path: Path) -> Iterator[str]:
    """A name for ``path`` short enough for ``bind``/``connect``: itself, or ``/proc/self/fd/N/<name>``."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _reachable(path) as name:
            sock.connect(name)
    except BaseException:
        sock.close()
        raise
    return sock


def ask(path: Path, question: dict[str, Any], *, timeout: float = TIMEOUT) -> Answer | None:
    """Ask the gateway answering at ``path``; None when none answers (no socket, nobody listening, no answer in
    time, or an answer that is not one). Blocking: for the command line."""
    try:
        sock = _connect(path, timeout)
    except OSError:
        return None
    with sock:
        try:
            sock.sendall(json.dumps(question).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > 16 * MAX_QUESTION:
                    return None
        except OSError:
            return None
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _someone_answers(path: Path) -> bool:
    try:
        _connect(path, 1.0).close()
    except OSError:
        return False
    return True


def _bind(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600 from the moment it has that name."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _reachable(temporary) as name:
            sock.bind(name)
        try:
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        sock.listen(16)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class AdminChannelServer:
    """The gateway's end: ``await start()`` on the event loop, ``await close()`` when it stops."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.Server | None = None
        self._inode: int | None = None

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> bool:
        """Listen at ``path``; False (and a warning) when it cannot, e.g. another gateway answers there."""
        path = self.path
        try:
            info = path.lstat()
        except FileNotFoundError:
            info = None
        except OSError as exc:
            logger.warning("admin.channel not started path=%s error=%s", path, exc.strerror)
            return False
        if info is not None:
            if not stat.S_ISSOCK(info.st_mode):
                logger.warning("admin.channel not started path=%s error=not a socket; left alone", path)
                return False
            if await asyncio.to_thread(_someone_answers, path):
                logger.warning("admin.channel not started path=%s error=another gateway answers there", path)
                return False
            # A socket left by a gateway that stopped without removing it: nobody is listening.
        try:
            sock = await asyncio.to_thread(_bind, path)
        except OSError as exc:
            logger.warning("admin.channel not started path=%s error=%s", path, exc.strerror or exc)
            return False
        self._inode = path.stat().st_ino
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_QUESTION)
        logger.info("admin.channel listening path=%s", path)
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                line = await reader.readuntil(b"\n")
                answer = await self._answer(line)
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            logger.debug("admin.channel dropped error=%s", type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> Answer:
        try:
            question = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "not JSON"}
        if not isinstance(question, dict):
            return {"ok": False, "error": "expected a JSON object"}
        try:
            return await self.handler(question)
        except Exception:
            logger.exception("admin.channel error")
            return {"ok": False, "error": "the gateway could not answer"}

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        # Remove the socket only if it is still ours (not one a newer gateway put there).
        with contextlib.suppress(OSError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()


def locks_question(accounts: list[str]) -> dict[str, Any]:
    return {"question": "locks", "accounts": accounts}


def parse_locks(answer: Answer | None) -> dict[str, datetime | None] | None:
    """The ``locks`` answer as times; None unless it is a good one."""
    if answer is None or answer.get("ok") is not True or not isinstance(answer.get("locks"), dict):
        return None
    locks: dict[str, datetime | None] = {}
    for name, until in answer["locks"].items():
        if until is None:
            locks[str(name)] = None
            continue
        try:
            locks[str(name)] = datetime.fromisoformat(str(until))
        except ValueError:
            return None
    return locks
