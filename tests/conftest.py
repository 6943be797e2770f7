"""Shared fixtures for the whole suite: a real Redis server (session-wide, flushed per test)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `tests.…` imports work under `.venv/bin/pytest` too (not only `python -m pytest`, which adds the cwd).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from hypothesis import settings  # noqa: E402

from tests.redis_server import RedisServer, RedisServerMissing  # noqa: E402

# Nothing in the suite is timed (speed is measured by scripts/bench*.py): hypothesis's default 200 ms deadline per
# example only made property tests fail when the shared 2-core machine was busy. Examples still run in full.
settings.register_profile("govgate", deadline=None)
settings.load_profile("govgate")


def _new_server(directory: Path, sentinel_for: int | None = None) -> RedisServer:
    try:
        return RedisServer(directory, sentinel_for=sentinel_for)
    except RedisServerMissing as exc:
        # Fail, never skip: a Redis test that does not run proves nothing.
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (per xdist worker). Do not stop it: use ``own_redis_server``."""
    server = _new_server(tmp_path_factory.mktemp("redis"))
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the shared server, emptied for this test."""
    if not redis_server.running:  # a test stopped it anyway: bring it back for the others
        redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and restart (outage tests)."""
    server = _new_server(tmp_path / "redis")
    with server:
        yield server


@pytest.fixture
def redis_sentinel(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis Sentinel watching the shared server as master ``mymaster``:
    ``redis+sentinel://127.0.0.1:{port}/mymaster/0`` reaches it."""
    sentinel = _new_server(tmp_path / "sentinel", sentinel_for=redis_server.port)
    with sentinel:
        yield sentinel
