"""An account's life beside a real gateway (Art. 25, Art. 30), on the memory store and on a real Redis:
``govgate account set`` narrows an open session's rights, ``account delete`` ends its sessions, ``account list``
shows the locks the gateway holds — from Redis, or from the gateway's memory over its local admin channel.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from govgate.admin_channel import ask, socket_path
from tests.command import GOVGATE
from tests.e2e.harness import (
    OFFICE_ADDRESS,
    AccountTemplates,
    Gateway,
    Upstream,
    read_records,
    start_store_gateway,
)
from tests.e2e.login import Browser
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Correct-horse-battery-9"
ACCOUNTS = ["leaver", "mover", "forgetful"]


@pytest.fixture(scope="module")
def lifecycle(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, store: str, store_redis_url: str | None,
              account_templates: AccountTemplates) -> Iterator[tuple[Gateway, dict[str, str], str]]:
    workdir = tmp_path_factory.mktemp(f"lifecycle-{store}")
    (workdir / "secrets").mkdir()
    g, secrets = start_store_gateway(workdir, upstream.url, store, store_redis_url, account_templates,
                                     {name: (PASSWORD, "staff") for name in ACCOUNTS})
    yield g, secrets, store
    assert g.stop() == 0
    assert not socket_path(workdir / "secrets" / "gateway.key").exists()  # the gateway removes its admin socket


def govgate(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOVGATE, *args, "-p", str(gw.policy_path)], capture_output=True, text=True,
                          cwd=gw.policy_path.parent, check=False)


def applied(gw: Gateway, before: int) -> None:
    wait_for(lambda: gw.data_version() > before, 5, "the gateway to reload the accounts file")


def admin_records(gw: Gateway, event: str) -> list[dict[str, Any]]:
    return [r for r in read_records(gw.workdir / "audit") if r["event"] == event]


def test_set_groups_narrows_an_open_session_and_widens_it_again(
        lifecycle: tuple[Gateway, dict[str, str], str]) -> None:
    gw, secrets, _ = lifecycle
    b = Browser(gw.url, OFFICE_ADDRESS)
    assert b.login("mover", PASSWORD, secrets["mover"]).status_code == 303
    assert b.http.get("/oa/").status_code == 200
    before = gw.data_version()
    done = govgate(gw, "account", "set", "mover", "--groups", "guests")
    assert done.returncode == 0, done.stderr
    applied(gw, before)
    refused = b.http.get("/oa/")
    assert refused.status_code == 403
    assert "group" in refused.text
    before = gw.data_version()
    assert govgate(gw, "account", "set", "mover", "--groups", "staff").returncode == 0
    applied(gw, before)
    assert b.http.get("/oa/").status_code == 200  # the same session: set changes rights, not sessions
    assert [r["groups"] for r in admin_records(gw, "admin.account.set")] == ["guests", "staff"]


def test_delete_ends_the_accounts_sessions_and_the_gateway_says_so_in_its_log(
        lifecycle: tuple[Gateway, dict[str, str], str]) -> None:
    gw, secrets, store = lifecycle
    b = Browser(gw.url, OFFICE_ADDRESS)
    assert b.login("leaver", PASSWORD, secrets["leaver"]).status_code == 303
    assert b.http.get("/oa/").status_code == 200
    before = gw.data_version()
    done = govgate(gw, "account", "delete", "leaver")
    assert done.returncode == 0, done.stderr
    if store == "redis":
        # The command ends the sessions in Redis itself: refused as soon as it returns, whether or not the gateway
        # has reloaded the file. (The gateway, seeing the account gone, ends them too: on a busy machine it may
        # do so between the command's file write and its Redis step, and the command then finds none left.)
        ended = re.search(r"deleted; (\d+) session\(s\) ended", done.stdout)
        assert ended, done.stdout
        assert int(ended.group(1)) in (0, 1)
        assert b.http.get("/oa/").status_code == 303
    applied(gw, before)
    answer = b.http.get("/oa/")
    if store == "memory":
        # The reload deletes the account's sessions from memory; a request between the new accounts and that is
        # refused all the same (403 `account`: the file holds no such account) and its session ended.
        assert answer.status_code in (303, 403)
        assert answer.status_code == 303 or "account" in answer.text
    else:
        assert answer.status_code == 303
    assert b.http.get("/oa/").status_code == 303  # and then none at all: off to the login page
    assert b.http.get("/oa/").headers["location"].startswith("/__govgate/login")
    # The gateway applied the deletion to its store, and its log line carries the time with its offset.
    line = gw.output.wait_for_line(r"account\.logout applied account=leaver").string
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00 INFO ", line), line
    record = admin_records(gw, "admin.account.delete")[-1]
    assert (record["account"], record["decision"], record["article"]) == ("leaver", "ok", "Art. 30")
    assert record["store"] == ("ok" if store == "redis" else "none")
    # Nobody of that name can sign in any more.
    assert Browser(gw.url, OFFICE_ADDRESS).password("leaver", PASSWORD).status_code == 200  # the form again


def test_list_shows_the_locks_the_gateway_holds(lifecycle: tuple[Gateway, dict[str, str], str]) -> None:
    gw, _, store = lifecycle
    b = Browser(gw.url, "10.9.3.1")
    for _ in range(3):
        last = b.password("forgetful", "Wrong-password-123")
    assert last.status_code == 429
    listed = govgate(gw, "account", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["forgetful"]["locked_until"] is not None
    assert rows["mover"]["locked_until"] is None
    if store == "memory":
        assert "as the running gateway holds them" in listed.stderr
    table = govgate(gw, "account", "list")
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith("forgetful"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d\+08:00", row[-1]), row
    before = gw.data_version()
    assert govgate(gw, "account", "unlock", "forgetful").returncode == 0
    applied(gw, before)
    listed = govgate(gw, "account", "list", "--json")
    assert {row["name"]: row for row in json.loads(listed.stdout)}["forgetful"]["locked_until"] is None


def test_the_admin_channel_is_the_gateways_own_and_only_without_redis(
        lifecycle: tuple[Gateway, dict[str, str], str]) -> None:
    gw, _, store = lifecycle
    path = socket_path(gw.workdir / "secrets" / "gateway.key")
    if store == "redis":
        assert not path.exists()  # the command reads Redis itself; several gateways share it
        return
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600
    answer = ask(path, {"question": "status"})
    assert answer is not None
    assert (answer["ok"], answer["pid"], answer["store"]) == (True, gw.proc.pid, "memory")
    assert answer["policy_version"] == gw.policy_version()
