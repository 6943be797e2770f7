"""The gateway's local admin channel: a real Unix socket, real JSON lines, the addon over a real MemoryStore."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from govgate.addons.admin_channel import AdminChannel
from govgate.admin_channel import AdminChannelServer, Answer, ask, locks_question, parse_locks, socket_path
from tests.runtime import InProcessRuntime


async def echo(question: dict[str, Any]) -> Answer:
    return {"ok": True, "asked": question}


async def ask_async(path: Path, question: dict[str, Any]) -> Answer | None:
    return await asyncio.to_thread(ask, path, question, timeout=5)


def short_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    return folder


async def test_the_socket_has_mode_0600_answers_one_question_and_is_removed_on_close(tmp_path: Path) -> None:
    path = short_dir(tmp_path) / "govgate-admin.sock"
    server = AdminChannelServer(path, echo)
    assert await server.start()
    info = path.lstat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    assert await ask_async(path, {"question": "status"}) == {"ok": True, "asked": {"question": "status"}}
    assert [p.name for p in path.parent.iterdir()] == ["govgate-admin.sock"]  # no temporary name left
    await server.close()
    assert not path.exists()
    assert await ask_async(path, {"question": "status"}) is None  # nobody answers: None, not an error


async def test_a_path_longer_than_a_unix_socket_allows_still_works(tmp_path: Path) -> None:
    folder = tmp_path / ("deep-folder-" + "x" * 60) / ("and-deeper-" + "y" * 60)
    folder.mkdir(parents=True)
    path = folder / "govgate-admin.sock"
    assert len(os.fsencode(path)) > 108
    server = AdminChannelServer(path, echo)
    assert await server.start()
    try:
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        answer = await ask_async(path, {"question": "status"})
        assert answer is not None
        assert answer["ok"] is True
    finally:
        await server.close()
    assert not path.exists()


async def test_a_stale_socket_is_replaced_and_a_live_one_left_alone(tmp_path: Path) -> None:
    path = short_dir(tmp_path) / "govgate-admin.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a gateway that died
    first = AdminChannelServer(path, echo)
    assert await first.start()
    second = AdminChannelServer(path, echo)
    assert not await second.start()  # another gateway answers there
    assert await ask_async(path, {"question": "x"}) is not None
    await second.close()
    assert path.exists()  # closing the one that never started removes nothing
    await first.close()


async def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = short_dir(tmp_path) / "govgate-admin.sock"
    path.write_text("mine", encoding="utf-8")
    server = AdminChannelServer(path, echo)
    assert not await server.start()
    assert path.read_text(encoding="utf-8") == "mine"


async def test_what_is_not_a_question_gets_an_error_or_nothing(tmp_path: Path) -> None:
    path = short_dir(tmp_path) / "govgate-admin.sock"
    server = AdminChannelServer(path, echo)
    assert await server.start()
    try:
        def raw(data: bytes) -> bytes:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(str(path))
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
                return out

        assert json.loads(await asyncio.to_thread(raw, b"not json\n")) == {"ok": False, "error": "not JSON"}
        assert json.loads(await asyncio.to_thread(raw, b"[1]\n"))["ok"] is False
        assert await asyncio.to_thread(raw, b"{" + b" " * (70 * 1024) + b"}\n") == b""  # too long: dropped
        assert await asyncio.to_thread(raw, b'{"question": "status"}') == b""  # no end of line: dropped
    finally:
        await server.close()


async def test_the_gateway_answers_the_locks_kept_in_its_memory(tmp_path: Path) -> None:
    runtime = InProcessRuntime()
    login = runtime.policy.login
    now = runtime.now()
    for _ in range(login.max_failures):
        await runtime.store.record_failure("zhangsan", "10.1.2.3", now, login)
    channel = AdminChannel(runtime)
    answer = await channel.answer(locks_question(["zhangsan", "lisi"]))
    locks = parse_locks(answer)
    assert locks is not None
    assert locks["lisi"] is None
    until = locks["zhangsan"]
    assert isinstance(until, datetime)
    assert until == now + login.lockout
    status = await channel.answer({"question": "status"})
    assert (status["ok"], status["store"], status["pid"]) == (True, "memory", os.getpid())
    assert "locks" not in status
    for bad in ({"question": "locks"}, {"question": "locks", "accounts": ["bad name"]},
                {"question": "locks", "accounts": "zhangsan"}, {"question": "unlock", "accounts": ["zhangsan"]}):
        assert (await channel.answer(bad))["ok"] is False
    # Asking changes nothing.
    assert await runtime.store.account_locked_until("zhangsan", now) == until


async def test_the_addon_listens_beside_the_key_file_while_running(tmp_path: Path) -> None:
    from tests.policies import policy

    runtime = InProcessRuntime(policy=policy(short_dir(tmp_path)))
    path = socket_path(runtime.policy.gateway.key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    channel = AdminChannel(runtime)
    await channel.running()
    try:
        answer = await ask_async(path, {"question": "status"})
        assert answer is not None
        assert answer["policy_sha256"] == runtime.policy.sha256
    finally:
        await channel.done()
    assert not path.exists()


def test_parse_locks_refuses_what_is_not_a_good_answer() -> None:
    assert parse_locks(None) is None
    assert parse_locks({"ok": False, "error": "x"}) is None
    assert parse_locks({"ok": True, "locks": {"a": "yesterday"}}) is None
    assert parse_locks({"ok": True, "locks": {"a": None}}) == {"a": None}


@pytest.mark.parametrize("key_file", ["secrets/gateway.key", "/etc/govgate/gateway.key"])
def test_the_socket_lives_beside_the_key_file(key_file: str) -> None:
    assert socket_path(Path(key_file)) == Path(key_file).parent / "govgate-admin.sock"
