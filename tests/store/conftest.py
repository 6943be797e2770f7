"""The store under test: every store contract test runs against ``MemoryStore`` and a real-Redis ``RedisStore``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from govgate.store.base import Store
from govgate.store.memory import MemoryStore
from govgate.store.redis import RedisStore

# Generous: these tests are about what the store does, not how fast (40 concurrent first connections on a
# loaded 2-core machine have taken more than 500 ms). The time limit itself is tested in
# test_redis_store.py, with the policy's default of 500 ms.
TIMEOUT = timedelta(seconds=5)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    else:
        url: str = request.getfixturevalue("redis_url")
        made = RedisStore.from_url(url, TIMEOUT)
    yield made
    await made.close()


@pytest.fixture
async def redis_stores(redis_url: str) -> AsyncIterator[Callable[[], RedisStore]]:
    """A factory of RedisStores on the shared server, each with its own connection pool; all closed after."""
    made: list[RedisStore] = []

    def make() -> RedisStore:
        s = RedisStore.from_url(redis_url, TIMEOUT)
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()
