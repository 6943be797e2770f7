from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Upstream, start_upstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = start_upstream()
    yield up
    up.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir()
    return tmp_path
