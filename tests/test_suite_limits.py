"""The suite's own guard rails: every test runs under pytest-timeout's limit (pyproject.toml ``timeout``)."""

from __future__ import annotations

import pytest


def test_every_test_has_a_time_limit(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed (scripts/setup --test)"
    limit = float(request.config.getini("timeout"))
    assert 0 < limit <= 300, limit
