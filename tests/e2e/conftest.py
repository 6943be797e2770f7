from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.chromium import chromium_browser
from tests.e2e.harness import STORE_PARAMS, AccountTemplates, Upstream, start_upstream
from tests.e2e.login import OPEN_BROWSERS


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while OPEN_BROWSERS:
        OPEN_BROWSERS.pop().close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    return tmp_path


@pytest.fixture(scope="module", params=STORE_PARAMS)
def store(request: pytest.FixtureRequest) -> str:
    """The state store a module's gateway runs on: every test using it runs once per store."""
    return str(request.param)


@pytest.fixture(scope="module")
def store_redis_url(store: str, request: pytest.FixtureRequest) -> str | None:
    """For the "redis" store, the real Redis server of this session (per xdist worker), emptied for this module.

    Module-scoped gateways share it with nothing else while they run: tests run one module at a time per
    worker, and a module using this fixture must not also use the per-test ``redis_url`` (which flushes)."""
    if store != "redis":
        return None
    server = request.getfixturevalue("redis_server")
    if not server.running:
        server.start()
    server.flushall()
    return str(server.url)


@pytest.fixture(scope="session")
def account_templates(tmp_path_factory: pytest.TempPathFactory) -> AccountTemplates:
    return AccountTemplates(tmp_path_factory.mktemp("account-templates"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium per test module (``tests/e2e/chromium.py``)."""
    with chromium_browser() as browser:
        yield browser
