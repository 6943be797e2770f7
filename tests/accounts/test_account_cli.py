"""`govgate account …` end to end through `run_cli`, with a real policy file, key file and audit log."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyotp
import pytest

from govgate.accounts_file import load_accounts, update_accounts
from govgate.cli.main import run_cli
from govgate.core import totp
from govgate.core.accounts import Account
from govgate.core.passwords import verify_password
from govgate.core.policy.model import Login, SessionLimits
from govgate.files import load_key_file
from govgate.store.base import Session
from govgate.store.redis import RedisStore
from tests.policies import policy_data, write_policy

PASSWORD = "Correct-horse-battery-9"
OTHER_PASSWORD = "Another-long-secret-42"
TZ = ZoneInfo("Asia/Shanghai")


def policy_file(folder: Path, **sections: object) -> Path:
    """The test policy in ``folder``, its files (key, accounts, audit log) beside it."""
    return write_policy(folder / "policy.yaml", policy_data(**sections))


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return policy_file(tmp_path)


class Cli:
    def __init__(self, policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.policy = policy
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str, stdin: str = "", terminal: bool = False) -> int:
        """``terminal``: whether getpass has a terminal to prompt on (it is replaced where one is needed)."""
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.monkeypatch.setattr("govgate.cli.account._have_terminal", lambda: terminal)
        code = run_cli([*argv, "-p", str(self.policy)])
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code

    def add(self, name: str, *options: str, password: str = PASSWORD) -> int:
        return self("account", "add", name, *options, "--password-stdin", stdin=password + "\n")


@pytest.fixture
def cli(policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(policy, monkeypatch, capsys)


def accounts_file(policy: Path) -> Path:
    return policy.parent / "accounts.yaml"


def account(policy: Path, name: str) -> Account:
    found = load_accounts(accounts_file(policy)).get(name)
    assert found is not None
    return found


def audit_events(policy: Path) -> list[dict[str, object]]:
    records = []
    for path in sorted((policy.parent / "audit").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in records if str(r["event"]).startswith("admin.")]


def secret_from(out: str) -> str:
    uri = next(word for word in out.split() if word.startswith("otpauth://"))
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    return parsed.secret


def test_add_creates_the_account_and_prints_a_working_otpauth_uri_and_qr_code(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff,finance", "--expires", "2099-12-31") == 0
    secret = secret_from(cli.out)
    assert "otpauth://totp/GovGate:zhangsan?secret=" in cli.out
    assert "█" in cli.out  # the terminal QR code
    created = account(policy, "zhangsan")
    assert created.groups == ("staff", "finance")
    assert created.expires == date(2099, 12, 31)
    assert not created.disabled
    assert verify_password(PASSWORD, created.password_hash)
    keys = load_key_file(policy.parent / "secrets" / "gateway.key", create=False)
    assert totp.decrypt_secret(keys, "zhangsan", created.totp_secret) == secret
    assert accounts_file(policy).stat().st_mode & 0o777 == 0o600
    assert (policy.parent / "secrets" / "gateway.key").stat().st_mode & 0o777 == 0o600


def test_the_file_holds_neither_the_password_nor_the_totp_secret(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    secret = secret_from(cli.out)
    text = accounts_file(policy).read_text(encoding="utf-8")
    assert PASSWORD not in text
    assert secret not in text


def test_add_is_an_audit_event_without_secrets(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff") == 0
    secret = secret_from(cli.out)
    events = audit_events(policy)
    assert [(e["event"], e["account"], e["decision"], e["article"]) for e in events] == [
        ("admin.account.add", "zhangsan", "ok", "Art. 30")]
    raw = "".join(p.read_text(encoding="utf-8") for p in (policy.parent / "audit").glob("*.jsonl"))
    assert PASSWORD not in raw
    assert secret not in raw
    assert cli("audit", "verify") == 0


def test_an_existing_name_is_refused(cli: Cli) -> None:
    assert cli.add("zhangsan") == 0
    assert cli.add("zhangsan") == 1
    assert "already exists" in cli.err
    assert cli.add("ZhangSan") == 1
    assert "letter case" in cli.err


@pytest.mark.parametrize("name", ["bad name", ".x", "张三", "a" * 65, "a/b"])
def test_a_bad_name_is_refused(cli: Cli, policy: Path, name: str) -> None:
    assert cli.add(name) == 1
    assert "invalid account name" in cli.err
    assert not accounts_file(policy).exists()


def test_a_weak_password_is_refused_with_the_reason_and_nothing_is_written(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", password="zhangsan2026!") == 1
    assert "password refused" in cli.err
    assert "account name" in cli.err
    assert "zhangsan2026!" not in cli.err + cli.out
    assert not accounts_file(policy).exists()
    assert audit_events(policy) == []


def test_without_a_terminal_and_without_password_stdin_the_password_is_asked_for_clearly(
    cli: Cli, policy: Path
) -> None:
    # `echo pw | govgate account add NAME`: stdin is a pipe, getpass would fall back to it and then fail.
    assert cli("account", "add", "zhangsan", stdin="Very-long-passphrase-42\n") == 1
    assert "--password-stdin" in cli.err
    assert "Traceback" not in cli.err
    assert not accounts_file(policy).exists()


def test_an_expiry_in_the_past_or_malformed_is_refused(cli: Cli) -> None:
    yesterday = (datetime.now(TZ).date() - timedelta(days=1)).isoformat()
    assert cli.add("zhangsan", "--expires", yesterday) == 1
    assert "in the past" in cli.err
    assert cli.add("zhangsan", "--expires", "30/06/2027") == 1
    assert "YYYY-MM-DD" in cli.err
    assert cli.add("zhangsan", "--expires", datetime.now(TZ).date().isoformat()) == 0  # today: the last day


def test_groups_must_be_declared_when_the_policy_declares_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(policy_file(tmp_path, groups=["staff", "finance"]), monkeypatch, capsys)
    assert cli.add("zhangsan", "--groups", "staff,hr") == 1
    assert "hr not declared" in cli.err
    assert cli.add("zhangsan", "--groups", "staff") == 0


def test_without_password_stdin_the_password_is_asked_twice(cli: Cli, policy: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([PASSWORD, PASSWORD])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert cli("account", "add", "zhangsan", terminal=True) == 0
    assert len(prompts) == 2
    assert verify_password(PASSWORD, account(policy, "zhangsan").password_hash)


def test_two_different_prompted_passwords_are_refused(cli: Cli, policy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([PASSWORD, OTHER_PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli("account", "add", "zhangsan", terminal=True) == 1
    assert "differ" in cli.err
    assert not accounts_file(policy).exists()


def test_an_empty_stdin_is_refused(cli: Cli) -> None:
    assert cli("account", "add", "zhangsan", "--password-stdin", stdin="") == 1
    assert "no password" in cli.err


def test_list_shows_status_groups_expiry_and_no_lock_without_redis(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff") == 0
    assert cli.add("lisi") == 0
    assert cli.add("wangwu", "--expires", "2099-01-01") == 0
    assert cli("account", "disable", "lisi") == 0
    update_accounts(accounts_file(policy), lambda a: a.with_account(
        _replace(account(policy, "wangwu"), expires=date(2020, 1, 1))))
    assert cli("account", "list") == 0
    lines = {line.split()[0]: line.split() for line in cli.out.splitlines()[1:]}
    assert lines["zhangsan"] == ["zhangsan", "active", "staff", "never", "-"]
    assert lines["lisi"] == ["lisi", "disabled", "-", "never", "-"]
    assert lines["wangwu"] == ["wangwu", "expired", "-", "2020-01-01", "-"]
    assert "gateway's memory" in cli.err
    assert cli("account", "list", "--json") == 0
    rows = json.loads(cli.out)
    assert [(r["name"], r["status"], r["locked_until"]) for r in rows] == [
        ("zhangsan", "active", None), ("lisi", "disabled", None), ("wangwu", "expired", None)]


def _replace(account: Account, **changes: Any) -> Account:
    return replace(account, **changes)


def test_list_of_no_accounts_says_so(cli: Cli) -> None:
    assert cli("account", "list") == 0
    assert "(no accounts)" in cli.out


def test_disable_and_enable_toggle_the_flag_and_are_audited(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    assert cli("account", "disable", "zhangsan") == 0
    assert account(policy, "zhangsan").disabled
    assert cli("account", "disable", "zhangsan") == 0
    assert "already disabled" in cli.out
    assert cli("account", "enable", "zhangsan") == 0
    assert not account(policy, "zhangsan").disabled
    assert [e["event"] for e in audit_events(policy)] == [
        "admin.account.add", "admin.account.disable", "admin.account.enable"]


@pytest.mark.parametrize("action", ["disable", "enable", "unlock", "logout", "reset-totp"])
def test_actions_on_an_unknown_account_are_refused(cli: Cli, action: str) -> None:
    assert cli("account", action, "nobody") == 1
    assert "no account named 'nobody'" in cli.err


def test_passwd_sets_a_new_password_and_refuses_the_current_one(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    assert cli("account", "passwd", "zhangsan", "--password-stdin", stdin=OTHER_PASSWORD + "\n") == 0
    changed = account(policy, "zhangsan")
    assert verify_password(OTHER_PASSWORD, changed.password_hash)
    assert not verify_password(PASSWORD, changed.password_hash)
    assert cli("account", "passwd", "zhangsan", "--password-stdin", stdin=OTHER_PASSWORD + "\n") == 1
    assert "current password" in cli.err
    assert cli("account", "passwd", "zhangsan", "--password-stdin", stdin="short\n") == 1
    assert "at least 12" in cli.err
    assert audit_events(policy)[-1]["event"] == "admin.account.passwd"


def test_reset_totp_gives_a_new_secret_and_the_old_one_stops_decrypting(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    old = secret_from(cli.out)
    assert cli("account", "reset-totp", "zhangsan") == 0
    new = secret_from(cli.out)
    assert new != old
    reset = account(policy, "zhangsan")
    assert reset.totp_version == 2
    keys = load_key_file(policy.parent / "secrets" / "gateway.key", create=False)
    assert totp.decrypt_secret(keys, "zhangsan", reset.totp_secret) == new
    event = audit_events(policy)[-1]
    assert event["event"] == "admin.account.reset-totp"
    assert event["totp_version"] == 2


def test_unlock_and_logout_without_redis_explain_where_the_state_lives(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    assert cli("account", "unlock", "zhangsan") == 0
    assert "the running gateway applies the unlock" in cli.out
    assert account(policy, "zhangsan").unlocked_at is not None
    assert cli("account", "logout", "zhangsan") == 0
    assert "the running gateway ends the sessions" in cli.out
    logged_out = account(policy, "zhangsan").logged_out_at
    assert logged_out is not None
    assert account(policy, "zhangsan").session_revoked(logged_out - timedelta(seconds=1))
    assert [e["event"] for e in audit_events(policy)][-2:] == ["admin.account.unlock", "admin.account.logout"]


def test_an_invalid_accounts_file_is_reported_and_left_alone(cli: Cli, policy: Path) -> None:
    accounts_file(policy).write_text("version: 1\naccounts:\n  zhangsan: {password: x}\n", encoding="utf-8")
    assert cli.add("lisi") == 1
    assert "accounts.yaml:3: accounts.zhangsan" in cli.err
    assert "lisi" not in accounts_file(policy).read_text(encoding="utf-8")


# -- set and delete ----------------------------------------------------------------------------------


def test_set_changes_groups_and_expiry_and_is_audited_with_before_and_after(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff") == 0
    assert cli("account", "set", "zhangsan", "--groups", "staff,finance", "--expires", "2099-06-30") == 0
    assert "groups staff, finance (were staff)" in cli.out
    assert "expires 2099-06-30 (was never)" in cli.out
    changed = account(policy, "zhangsan")
    assert changed.groups == ("staff", "finance")
    assert changed.expires == date(2099, 6, 30)
    event = audit_events(policy)[-1]
    assert (event["event"], event["account"], event["decision"], event["article"]) == (
        "admin.account.set", "zhangsan", "ok", "Art. 30")
    assert (event["groups"], event["groups_before"]) == ("staff,finance", "staff")
    assert (event["expires"], event["expires_before"]) == ("2099-06-30", "never")
    assert cli("audit", "verify") == 0


def test_set_expires_never_and_empty_groups_clear_them_and_keep_the_rest(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff", "--expires", "2099-01-01") == 0
    before = account(policy, "zhangsan")
    assert cli("account", "set", "zhangsan", "--expires", "never") == 0
    assert account(policy, "zhangsan").expires is None
    assert account(policy, "zhangsan").groups == ("staff",)
    assert cli("account", "set", "zhangsan", "--groups", "") == 0
    after = account(policy, "zhangsan")
    assert after.groups == ()
    # Nothing else about the account changes: password, secret, sessions.
    assert (after.password_hash, after.totp_secret, after.logged_out_at) == (
        before.password_hash, before.totp_secret, before.logged_out_at)


def test_set_without_a_change_is_said_and_not_audited(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan", "--groups", "staff") == 0
    assert cli("account", "set", "zhangsan", "--groups", "staff") == 0
    assert "unchanged" in cli.out
    assert [e["event"] for e in audit_events(policy)] == ["admin.account.add"]


def test_set_without_options_is_a_bad_argument(cli: Cli) -> None:
    assert cli.add("zhangsan") == 0
    assert cli("account", "set", "zhangsan") == 2
    assert "--groups" in cli.err


def test_set_refuses_an_unknown_account_a_past_expiry_and_undeclared_groups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(policy_file(tmp_path, groups=["staff", "finance"]), monkeypatch, capsys)
    assert cli.add("zhangsan", "--groups", "staff") == 0
    assert cli("account", "set", "nobody", "--groups", "staff") == 1
    assert "no account named 'nobody'" in cli.err
    assert cli("account", "set", "zhangsan", "--expires", "2020-01-01") == 1
    assert "in the past" in cli.err
    assert cli("account", "set", "zhangsan", "--expires", "soon") == 1
    assert "YYYY-MM-DD" in cli.err
    assert cli("account", "set", "zhangsan", "--groups", "staff,hr") == 1
    assert "hr not declared" in cli.err
    assert account(cli.policy, "zhangsan").groups == ("staff",)


def test_list_without_redis_and_without_a_gateway_says_the_locks_are_not_known(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    assert cli("account", "list") == 0
    assert "no gateway answers at" in cli.err
    assert str(policy.parent / "secrets" / "govgate-admin.sock") in cli.err
    assert "locks are not known" in cli.err


def test_delete_removes_the_account_and_is_audited(cli: Cli, policy: Path) -> None:
    assert cli.add("zhangsan") == 0
    assert cli.add("lisi") == 0
    assert cli("account", "delete", "zhangsan") == 0
    assert "account zhangsan deleted" in cli.out
    assert "refuses its sessions" in cli.out  # no Redis: the running gateway applies it
    assert load_accounts(accounts_file(policy)).names() == ("lisi",)
    event = audit_events(policy)[-1]
    assert (event["event"], event["account"], event["decision"], event["store"]) == (
        "admin.account.delete", "zhangsan", "ok", "none")
    assert cli("audit", "verify") == 0
    assert cli("account", "delete", "zhangsan") == 1
    assert "no account named 'zhangsan'" in cli.err
    # The name is free again; the new account is a new one (a new secret, a new creation time).
    assert cli.add("zhangsan") == 0


# -- with a real Redis: locks and sessions are reachable from the CLI ------------------------------


@pytest.fixture
def redis_cli(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> tuple[Cli, str]:
    return Cli(policy_file(tmp_path, state={"redis": redis_url}), monkeypatch, capsys), redis_url


def _on_store[T](url: str, action: Callable[[RedisStore], Awaitable[T]]) -> T:
    async def go() -> T:
        store = RedisStore.from_url(url, timedelta(seconds=2))
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.mark.redis
def test_list_shows_the_lock_and_unlock_clears_it_in_redis(redis_cli: tuple[Cli, str]) -> None:
    cli, url = redis_cli
    assert cli.add("zhangsan") == 0
    login = Login(max_failures=3, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30),
                  ip_max_failures=10)

    async def lock(store: RedisStore) -> datetime | None:
        now = datetime.now(TZ)
        for _ in range(3):
            await store.record_failure("zhangsan", "10.1.2.3", now, login)
        return await store.account_locked_until("zhangsan", now)

    until = _on_store(url, lock)
    assert until is not None
    assert cli("account", "list") == 0
    row = next(line.split() for line in cli.out.splitlines() if line.startswith("zhangsan"))
    assert row[-1] == until.astimezone(TZ).isoformat(timespec="minutes")
    assert cli("account", "unlock", "zhangsan") == 0
    assert "unlocked" in cli.out

    async def locked_until(store: RedisStore) -> datetime | None:
        return await store.account_locked_until("zhangsan", datetime.now(TZ))

    assert _on_store(url, locked_until) is None


@pytest.mark.redis
def test_logout_ends_every_session_of_the_account_in_redis(redis_cli: tuple[Cli, str]) -> None:
    cli, url = redis_cli
    assert cli.add("zhangsan") == 0
    limits = SessionLimits()
    now = datetime.now(TZ)

    async def open_sessions(store: RedisStore) -> None:
        for i in range(2):
            await store.create_session(Session(id=f"s{i}" * 20, account="zhangsan", device=None, client="10.1.2.3",
                                               created=now, last_seen=now), limits)
        await store.create_session(Session(id="other" * 10, account="lisi", device=None, client="10.1.2.3",
                                           created=now, last_seen=now), limits)

    _on_store(url, open_sessions)
    assert cli("account", "logout", "zhangsan") == 0
    assert "2 session(s) ended" in cli.out

    async def lookup(store: RedisStore) -> tuple[bool, bool]:
        mine = await store.touch_session("s0" * 20, datetime.now(TZ), limits)
        theirs = await store.touch_session("other" * 10, datetime.now(TZ), limits)
        return mine.session is None, theirs.session is not None

    assert _on_store(url, lookup) == (True, True)


def test_an_unreachable_redis_makes_unlock_fail_and_list_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(policy_file(tmp_path, state={"redis": "redis://127.0.0.1:1/0", "timeout": "1s"}), monkeypatch, capsys)
    assert cli.add("zhangsan") == 0
    assert cli("account", "list") == 0
    assert "cannot be reached" in cli.err
    assert cli.out.splitlines()[1].split()[-1] == "?"
    assert cli("account", "unlock", "zhangsan") == 1
    assert "could not be reached" in cli.err
    # The unlock is recorded in the file and audited all the same (Art. 20).
    assert account(cli.policy, "zhangsan").unlocked_at is not None
    assert audit_events(cli.policy)[-1]["event"] == "admin.account.unlock"
    assert audit_events(cli.policy)[-1]["store"] == "unavailable"


# -- `govgate check` covers the accounts file --------------------------------------------------------

def test_check_lists_the_accounts_files_problems_with_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(policy_file(tmp_path), monkeypatch, capsys)
    assert cli("check") == 0
    accounts_file(cli.policy).write_text("version: 1\naccounts:\n  zhangsan:\n    disabled: maybe\n", encoding="utf-8")
    assert cli("check") == 1
    assert f"{accounts_file(cli.policy)}:4: accounts.zhangsan.disabled: expected true or false" in cli.out


def test_check_finds_undeclared_groups_and_secrets_under_another_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(policy_file(tmp_path), monkeypatch, capsys)
    assert cli.add("zhangsan", "--groups", "staff,hr") == 0
    assert cli("check") == 0
    policy_file(tmp_path, groups=["staff"])
    assert cli("check") == 1
    assert "accounts.zhangsan.groups[1]: group 'hr' is not declared" in cli.out
    policy_file(tmp_path)
    (tmp_path / "secrets" / "gateway.key").write_text(bytes(range(32)).hex() + "\n", encoding="ascii")
    assert cli("check") == 1
    assert "accounts.zhangsan.totp_secret: does not decrypt under gateway.key_file" in cli.out


@pytest.mark.redis
def test_delete_ends_the_sessions_in_redis_and_keeps_the_lock(redis_cli: tuple[Cli, str]) -> None:
    # Art. 30: the lock of a deleted name stays until it expires (a name that comes back is not unlocked).
    cli, url = redis_cli
    assert cli.add("zhangsan") == 0
    limits = SessionLimits()
    now = datetime.now(TZ)
    login = Login(max_failures=3, failure_window=timedelta(minutes=15), lockout=timedelta(minutes=30),
                  ip_max_failures=10)

    async def open_and_lock(store: RedisStore) -> None:
        await store.create_session(Session(id="s0" * 20, account="zhangsan", device=None, client="10.1.2.3",
                                           created=now, last_seen=now), limits)
        for _ in range(3):
            await store.record_failure("zhangsan", "10.1.2.3", now, login)

    _on_store(url, open_and_lock)
    assert cli("account", "delete", "zhangsan") == 0
    assert "1 session(s) ended" in cli.out
    assert audit_events(cli.policy)[-1]["sessions_ended"] == 1

    async def state(store: RedisStore) -> tuple[bool, datetime | None]:
        lookup = await store.touch_session("s0" * 20, datetime.now(TZ), limits)
        return lookup.session is None, await store.account_locked_until("zhangsan", datetime.now(TZ))

    ended, locked_until = _on_store(url, state)
    assert ended
    assert locked_until is not None
    assert locked_until > datetime.now(TZ) + timedelta(minutes=25)


def test_add_fills_an_accounts_file_made_empty_beforehand(cli: Cli, policy: Path) -> None:
    # `touch accounts.yaml && chmod 600` by a provisioning tool: the first account goes in (the gateway itself
    # refuses an empty file, a copy cut short, and keeps the last good one).
    path = accounts_file(policy)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    assert cli.add("zhangsan") == 0
    assert account(policy, "zhangsan").name == "zhangsan"
