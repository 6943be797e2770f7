"""An administrator's command beside a real gateway (Art. 30): ``govgate account unlock`` writes the accounts file,
the running gateway reloads it and applies the unlock in its store (memory, then a real Redis).

Everything else about staff login — password and TOTP, CSRF, replay, lockout, the half-done login, sessions — is
tested in process: ``tests/addons/test_login_pages_addon.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import (
    OFFICE_ADDRESS,
    AccountTemplates,
    Gateway,
    Upstream,
    start_store_gateway,
)
from tests.e2e.login import Browser

pytestmark = pytest.mark.e2e

PASSWORD = "Correct-horse-battery-9"


ACCOUNTS = ["zhangsan"]


@pytest.fixture(scope="module")
def login_gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, store: str,
                  store_redis_url: str | None,
                  account_templates: AccountTemplates) -> Iterator[tuple[Gateway, dict[str, str]]]:
    """One gateway per store (memory, then a real Redis): the test below runs against both."""
    workdir = tmp_path_factory.mktemp(f"login-{store}")
    (workdir / "secrets").mkdir()
    g, secrets = start_store_gateway(workdir, upstream.url, store, store_redis_url, account_templates,
                                     {name: (PASSWORD, "staff") for name in ACCOUNTS},
                                     session={"idle_timeout": "15m", "absolute_timeout": "8h"})
    yield g, secrets
    assert g.stop() == 0


@pytest.fixture(scope="module")
def gw(login_gateway: tuple[Gateway, dict[str, str]]) -> Gateway:
    return login_gateway[0]


def browser(gw: Gateway, ip: str = OFFICE_ADDRESS) -> Browser:
    return Browser(gw.url, ip)


def run_cli(gw: Gateway, *args: str, stdin: str = "") -> None:
    import subprocess

    from tests.command import GOVGATE

    subprocess.run([*GOVGATE, *args, "-p", str(gw.policy_path)], input=stdin, capture_output=True, text=True,
                   check=True, cwd=gw.policy_path.parent)


def test_an_admin_unlock_really_unlocks_and_failures_count_again_afterwards(gw: Gateway) -> None:
    from tests.waiting import wait_for

    gw.add_account("unlockme", PASSWORD)
    b = browser(gw, "10.9.2.1")
    for _ in range(3):
        last = b.password("unlockme", "Wrong-password-123")
    assert last.status_code == 429
    before = gw.data_version()
    run_cli(gw, "account", "unlock", "unlockme")
    wait_for(lambda: gw.data_version() > before, 5, "the gateway to apply the unlock")
    # Unlocked for real: a wrong password is counted and answered as wrong (not 429), then the right one works.
    assert browser(gw, "10.9.2.2").password("unlockme", "Wrong-password-456").status_code == 200
    assert browser(gw, "10.9.2.3").password("unlockme", PASSWORD).status_code == 303


