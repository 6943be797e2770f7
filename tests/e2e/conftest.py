from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Upstream, start_upstream
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
