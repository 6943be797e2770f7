"""`govgate account add | set | list | unlock | disable | enable | passwd | reset-totp | logout | delete`.

Art. 30 (第三十条): staff accounts with strong authentication (password + TOTP), login-failure locks,
and the means to end sessions. Art. 25 (第二十五条): accounts of staff who leave are disabled promptly.
Art. 20 (第二十条): every admin action is an audit record (``admin.account.<action>``).

This is the only writer of ``policy.accounts_file`` (see ``govgate.accounts_file`` for the locking and
atomic replace). Locks and sessions live in the state store: with ``state.redis`` the CLI reaches them
directly; without it they live in the running gateway's memory: ``list`` asks the gateway for them over its
local admin channel (``govgate.admin_channel``, read-only), and ``unlock``, ``logout`` and ``delete`` leave
their mark in the accounts file (``unlocked_at``, ``logged_out_at``, the account gone) for the gateway to
apply when it reloads the file.

Never printed or logged: passwords, password hashes, the gateway key. The TOTP secret is shown once,
inside the ``otpauth://`` URI and its QR code, by ``add`` and ``reset-totp``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime

import qrcode

from govgate.accounts_file import accounts_problems, accounts_to_change, load_accounts, update_accounts
from govgate.admin_channel import ask, locks_question, parse_locks, socket_path
from govgate.cli.check import EXTRA_CHECKS
from govgate.core import totp
from govgate.core.accounts import Account, Accounts, account_name_problem, parse_groups
from govgate.core.audit_event import AuditEvent
from govgate.core.passwords import hash_password, password_problems, verify_password
from govgate.core.policy.model import Policy
from govgate.core.wall_time import wall_time
from govgate.errors import AccountError, GovGateError, StoreUnavailable
from govgate.files import load_key_file
from govgate.store.base import Store

ARTICLE = "Art. 30"

# `govgate check` lists the accounts file's problems with the policy's (cli/main imports every command
# module before running one, so this registration is in place whichever command runs).
if accounts_problems not in EXTRA_CHECKS:
    EXTRA_CHECKS.append(accounts_problems)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    account = sub.add_parser("account", parents=[common], help="manage staff accounts (Art. 30)")
    commands = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", parents=[common], help="create an account; prints its TOTP URI and QR code")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--groups", default="", help="comma-separated groups, e.g. staff,finance")
    add.add_argument("--expires", metavar="DATE", help="last day the account works (YYYY-MM-DD); default: never")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    add.set_defaults(func=run_add)

    change = commands.add_parser("set", parents=[common], help="change an account's groups or expiry")
    change.add_argument("name", metavar="NAME")
    change.add_argument("--groups", help="the account's groups from now on, comma-separated (\"\": none)")
    change.add_argument("--expires", metavar="DATE|never",
                        help="last day the account works (YYYY-MM-DD), or never")
    change.set_defaults(func=run_set)

    lst = commands.add_parser("list", parents=[common], help="accounts with status, groups, expiry and lock")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=run_list)

    for name, func, text in (
        ("unlock", run_unlock, "end a login-failure lock now"),
        ("disable", run_disable, "disable an account (its sessions stop working)"),
        ("enable", run_enable, "enable a disabled account"),
        ("reset-totp", run_reset_totp, "give an account a new TOTP secret; prints the URI and QR code"),
        ("logout", run_logout, "end all sessions of an account"),
        ("delete", run_delete, "delete an account; its sessions end"),
    ):
        p = commands.add_parser(name, parents=[common], help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(func=func)

    passwd = commands.add_parser("passwd", parents=[common], help="set a new password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    passwd.set_defaults(func=run_passwd)


# -- shared steps ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Admin:
    policy: Policy
    now: datetime  # aware, in gateway.timezone

    @property
    def today(self) -> date:
        return self.now.date()


def _admin(args: argparse.Namespace) -> _Admin:
    from govgate.files import load_policy

    policy = load_policy(args.policy, check_files=False)
    return _Admin(policy, wall_time(datetime.now(policy.gateway.timezone), policy.gateway.timezone))


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _record(admin: _Admin, action: str, name: str, **extra: str | int | bool | None) -> int:
    """Art. 20: write the audit record of a completed admin action; exit 1 if it cannot be written. Called before
    anything about the action is printed, so a closed output pipe can never lose it."""
    from govgate.audit.admin import record_admin_event

    event = AuditEvent(
        event=f"admin.account.{action}", time=admin.now, account=name, decision="ok", article=ARTICLE,
        extra={"operator": _operator(), **extra},
    )
    try:
        record_admin_event(admin.policy, event)
    except GovGateError as exc:
        print(f"govgate: the {action} of account {name!r} was done, but its audit record could not be written: "
              f"{exc}", file=sys.stderr)
        return 1
    return 0


def _existing(accounts: Accounts, name: str) -> Account:
    account = accounts.get(name)
    if account is None:
        raise AccountError(f"no account named {name!r}")
    return account


def _change(admin: _Admin, name: str, edit: Callable[[Account], Account]) -> tuple[Account, Account]:
    """Apply ``edit`` to account ``name`` under the file lock; returns (before, after)."""
    seen: list[Account] = []

    def change(accounts: Accounts) -> Accounts:
        before = _existing(accounts, name)
        seen.append(before)
        return accounts.with_account(edit(before))

    after = _existing(update_accounts(admin.policy.accounts_file, change), name)
    return seen[0], after


def _have_terminal() -> bool:
    """Whether getpass can prompt: it reads the controlling terminal (/dev/tty), whatever stdin is."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return sys.stdin.isatty()


def _read_password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise AccountError("no password on standard input")
        return password
    if not _have_terminal():
        raise AccountError("no terminal to ask for the password on: give it on standard input with --password-stdin")
    try:
        first = getpass.getpass(f"New password for {name}: ")
        second = getpass.getpass("Repeat the password: ")
    except EOFError:
        raise AccountError("no password given") from None
    if first != second:
        raise AccountError("the two passwords differ")
    return first


def _checked_password(name: str, from_stdin: bool) -> str:
    password = _read_password(name, from_stdin)
    problems = password_problems(password, name)
    if problems:
        raise AccountError("password refused: " + "; ".join(problems))
    return password


def _show_totp(name: str, secret: str) -> None:
    uri = totp.provisioning_uri(secret, name)
    print("Add it to an authenticator app (scan the QR code, or enter the URI's secret by hand):")
    print(uri)
    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    qr.make(fit=True)
    text = io.StringIO()
    qr.print_ascii(out=text, tty=False)
    try:
        sys.stdout.write(text.getvalue())
    except UnicodeEncodeError:
        print("(this terminal cannot show the QR code; use the URI above)")
    sys.stdout.flush()


def _with_store[T](admin: _Admin, action: Callable[[Store], Awaitable[T]]) -> T | None:
    """Run ``action`` against the shared Redis store; None when no Redis is configured."""
    url = admin.policy.state.redis_url
    if url is None:
        return None
    from govgate.store.redis import RedisStore

    async def go() -> T:
        store = RedisStore.from_url(url, admin.policy.state.timeout)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _store_step[T](
    admin: _Admin, name: str, what: str, action: Callable[[Store], Awaitable[T]]
) -> tuple[T | None, str]:
    """Run a shared-store step after the accounts file was changed. Never raises: the file's mark is already in
    force, the running gateway applies it on reload, and the audit record must be written either way."""
    try:
        result = _with_store(admin, action)
    except StoreUnavailable as exc:
        print(f"govgate: account {name}: the shared state store could not be reached ({exc}); the {what} is "
              "recorded in the accounts file and the gateway applies it when it reloads the file", file=sys.stderr)
        return None, "unavailable"
    return result, "none" if result is None else "ok"


def _finish(record_code: int, store_result: str) -> int:
    """Exit 1 if the audit record failed, or if the shared store could not be reached (the change is recorded
    in the file, but not yet applied: say so in the exit code too)."""
    return 1 if record_code or store_result == "unavailable" else 0


def _log_out_everywhere(admin: _Admin, name: str) -> tuple[int | None, str]:
    async def end_sessions(store: Store) -> int:
        return await store.delete_account_sessions(name)

    return _store_step(admin, name, "logout", end_sessions)


def _checked_groups(admin: _Admin, text: str) -> tuple[str, ...]:
    """``--groups`` as a tuple; refuses bad names, and groups the policy does not declare (when it declares some)."""
    try:
        groups = parse_groups(text)
    except ValueError as exc:
        raise AccountError(f"--groups: {exc}") from None
    declared = admin.policy.groups
    if declared is not None:
        unknown = [g for g in groups if g not in declared]
        if unknown:
            raise AccountError(f"--groups: {', '.join(unknown)} not declared in the policy's groups "
                               f"({', '.join(declared) or 'none'})")
    return groups


def _parse_expiry(text: str | None, today: date) -> date | None:
    if text is None or text.strip().lower() in ("", "never"):
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise AccountError(f"--expires: expected a date as YYYY-MM-DD, got {text!r}") from None
    # Art. 25: an expiry is the last day of work; one already past would create a dead account.
    if day < today:
        raise AccountError(f"--expires: {day.isoformat()} is in the past (today is {today.isoformat()})")
    return day


# -- commands -------------------------------------------------------------------------------------


def run_add(args: argparse.Namespace) -> int:
    name: str = args.name
    problem = account_name_problem(name)
    if problem is not None:
        raise AccountError(problem)
    admin = _admin(args)
    accounts = accounts_to_change(admin.policy.accounts_file)
    _refuse_taken(accounts, name)
    groups = _checked_groups(admin, args.groups)
    expires = _parse_expiry(args.expires, admin.today)
    password = _checked_password(name, args.password_stdin)
    keys = load_key_file(admin.policy.gateway.key_file)
    secret = totp.new_totp_secret()
    account = Account(
        name=name, password_hash=hash_password(password), totp_secret=totp.encrypt_secret(keys, name, secret),
        groups=groups, expires=expires, disabled=False, created=admin.now, totp_version=1,
        password_changed=admin.now,
    )

    def add(current: Accounts) -> Accounts:
        _refuse_taken(current, name)  # again, under the lock: another run may have added it meanwhile
        return current.with_account(account)

    update_accounts(admin.policy.accounts_file, add)
    # Art. 20: the record first, then the output — a reader that goes away early (`| head -1`) ends the printing,
    # never the record.
    code = _record(admin, "add", name, groups=",".join(groups), expires=expires.isoformat() if expires else None)
    print(f"account {name} created (groups: {', '.join(groups) or '-'}; "
          f"expires: {expires.isoformat() if expires else 'never'})")
    _show_totp(name, secret)
    return code


def _refuse_taken(accounts: Accounts, name: str) -> None:
    if name in accounts:
        raise AccountError(f"an account named {name!r} already exists")
    similar = accounts.similar_name(name)
    if similar is not None:
        raise AccountError(f"account {similar!r} already exists; names differing only in letter case are refused")


def run_list(args: argparse.Namespace) -> int:
    admin = _admin(args)
    accounts = load_accounts(admin.policy.accounts_file)
    locks: dict[str, datetime | None] | None = None
    note = None
    if len(accounts) == 0:
        locks = {}
    elif admin.policy.state.redis_url is None:
        # The locks are in the running gateway's memory: ask it over its local admin channel.
        path = socket_path(admin.policy.gateway.key_file)
        locks = parse_locks(ask(path, locks_question(list(accounts.names()))))
        if locks is None:
            note = (f"locks: no state.redis configured, so locks live in the running gateway's memory, and no "
                    f"gateway answers at {path} (none runs with this policy, or this user may not reach it): "
                    "locks are not known (shown as -). If no gateway is running, nothing is locked.")
        else:
            note = "locks: as the running gateway holds them in its memory"
    else:
        async def read_locks(store: Store) -> dict[str, datetime | None]:
            return {a.name: await store.account_locked_until(a.name, admin.now) for a in accounts}

        try:
            locks = _with_store(admin, read_locks)
        except StoreUnavailable as exc:
            note = f"locks: the state store cannot be reached ({exc}); shown as ?"
    tz = admin.policy.gateway.timezone
    rows: list[_Row] = []
    for account in accounts:
        if locks is None:
            locked: str | None = "?" if admin.policy.state.redis_url is not None else None
        else:
            until = locks.get(account.name)
            locked = until.astimezone(tz).isoformat(timespec="minutes") if until is not None else None
        rows.append(_Row(
            name=account.name,
            status=account.status(admin.today).value,
            groups=account.groups,
            expires=account.expires.isoformat() if account.expires else None,
            locked_until=locked,
            totp_version=account.totp_version,
            created=account.created.astimezone(tz).isoformat(timespec="seconds"),
        ))
    if args.json:
        print(json.dumps([{**asdict(r), "groups": list(r.groups)} for r in rows], ensure_ascii=False, indent=2))
    else:
        _print_table(rows)
    if note is not None:
        print(note, file=sys.stderr)
    return 0


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    status: str  # active | disabled | expired
    groups: tuple[str, ...]
    expires: str | None
    locked_until: str | None  # ISO time; None: not locked or not known ("-"); "?": store unreachable
    totp_version: int
    created: str


def _print_table(rows: list[_Row]) -> None:
    header = ("NAME", "STATUS", "GROUPS", "EXPIRES", "LOCKED UNTIL")
    table = [header] + [
        (r.name, r.status, ",".join(r.groups) or "-", r.expires or "never", r.locked_until or "-") for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(no accounts)")


def run_unlock(args: argparse.Namespace) -> int:
    admin = _admin(args)
    name: str = args.name
    _change(admin, name, lambda a: replace(a, unlocked_at=admin.now))

    async def unlock(store: Store) -> bool:
        await store.unlock(name)
        return True

    _, store_result = _store_step(admin, name, "unlock", unlock)
    code = _finish(_record(admin, "unlock", name, store=store_result), store_result)
    if store_result == "ok":
        print(f"account {name} unlocked (failure count cleared in the shared state store)")
    elif store_result == "none":
        print(f"account {name}: unlocked; no state.redis is configured, so the running gateway applies the unlock "
              "(recorded in the accounts file as unlocked_at) when it reloads the file, within a second or two.")
    return code


def run_disable(args: argparse.Namespace) -> int:
    admin = _admin(args)
    before, _ = _change(admin, args.name, lambda a: a if a.disabled else replace(a, disabled=True,
                                                                                    logged_out_at=admin.now))
    if before.disabled:
        print(f"account {args.name} was already disabled")
        return 0
    # Art. 25/30: disabling also ends every open session, so a later `enable` brings none of them back.
    ended, store_result = _log_out_everywhere(admin, args.name)
    code = _finish(_record(admin, "disable", args.name, sessions_ended=ended, store=store_result), store_result)
    print(f"account {args.name} disabled; its sessions are ended" + (f" ({ended})" if ended is not None else ""))
    return code


def run_enable(args: argparse.Namespace) -> int:
    admin = _admin(args)
    before, after = _change(admin, args.name, lambda a: replace(a, disabled=False))
    if not before.disabled:
        print(f"account {args.name} was not disabled")
        return 0
    note = " (but it has expired: its expiry date has passed)" if after.is_expired(admin.today) else ""
    code = _record(admin, "enable", args.name)
    print(f"account {args.name} enabled{note}")
    return code


def run_passwd(args: argparse.Namespace) -> int:
    admin = _admin(args)
    name: str = args.name
    current = _existing(load_accounts(admin.policy.accounts_file), name)
    password = _checked_password(name, args.password_stdin)
    if verify_password(password, current.password_hash):
        raise AccountError("password refused: it is the account's current password")
    encoded = hash_password(password)
    # A new password also ends open sessions and half-done logins (Art. 30): whoever knew the old one is out.
    _change(admin, name, lambda a: replace(a, password_hash=encoded, password_changed=admin.now,
                                           logged_out_at=admin.now))
    ended, store_result = _log_out_everywhere(admin, name)
    code = _finish(_record(admin, "passwd", name, sessions_ended=ended, store=store_result), store_result)
    print(f"password of account {name} changed; its sessions are ended" + (f" ({ended})" if ended is not None else ""))
    return code


def run_reset_totp(args: argparse.Namespace) -> int:
    admin = _admin(args)
    name: str = args.name
    _existing(load_accounts(admin.policy.accounts_file), name)
    keys = load_key_file(admin.policy.gateway.key_file)
    secret = totp.new_totp_secret()
    blob = totp.encrypt_secret(keys, name, secret)
    _, after = _change(admin, name, lambda a: replace(a, totp_secret=blob, totp_version=a.totp_version + 1,
                                                      logged_out_at=admin.now))
    ended, store_result = _log_out_everywhere(admin, name)
    code = _finish(_record(admin, "reset-totp", name, totp_version=after.totp_version, sessions_ended=ended,
                           store=store_result), store_result)
    print(f"account {name} has a new TOTP secret (version {after.totp_version}); the old codes no longer work and "
          f"its sessions are ended" + (f" ({ended})" if ended is not None else ""))
    _show_totp(name, secret)
    return code


def run_logout(args: argparse.Namespace) -> int:
    admin = _admin(args)
    name: str = args.name
    _change(admin, name, lambda a: replace(a, logged_out_at=admin.now))
    ended, store_result = _log_out_everywhere(admin, name)
    code = _finish(_record(admin, "logout", name, sessions_ended=ended, store=store_result), store_result)
    if ended is not None:
        print(f"account {name}: {ended} session(s) ended")
    elif store_result == "none":
        print(f"account {name}: logged out; no state.redis is configured, so the running gateway ends the sessions "
              "(recorded in the accounts file as logged_out_at) when it reloads the file, within a second or two.")
    return code


def run_set(args: argparse.Namespace) -> int:
    """Change groups and/or expiry. Sessions stay open: the gate reads an account's groups and expiry from the
    file on every request, so a narrower change applies to them at once (Art. 25)."""
    name: str = args.name
    if args.groups is None and args.expires is None:
        print("govgate account set: say what to change: --groups a,b and/or --expires DATE|never", file=sys.stderr)
        return 2
    admin = _admin(args)
    groups = _checked_groups(admin, args.groups) if args.groups is not None else None
    expires = _parse_expiry(args.expires, admin.today) if args.expires is not None else None

    def edit(account: Account) -> Account:
        return replace(account, groups=account.groups if groups is None else groups,
                       expires=account.expires if args.expires is None else expires)

    before, after = _change(admin, name, edit)
    if before == after:
        print(f"account {name}: unchanged (groups: {', '.join(after.groups) or '-'}; "
              f"expires: {_day(after.expires)})")
        return 0
    changed = {}
    if before.groups != after.groups:
        changed["groups"] = ",".join(after.groups)
        changed["groups_before"] = ",".join(before.groups)
    if before.expires != after.expires:
        changed["expires"] = _day(after.expires)
        changed["expires_before"] = _day(before.expires)
    # Art. 20: the record first, then the output.
    code = _record(admin, "set", name, **changed)
    parts = []
    if "groups" in changed:
        parts.append(f"groups {', '.join(after.groups) or '-'} (were {', '.join(before.groups) or '-'})")
    if "expires" in changed:
        parts.append(f"expires {_day(after.expires)} (was {_day(before.expires)})")
    print(f"account {name}: " + "; ".join(parts))
    return code


def _day(day: date | None) -> str:
    return day.isoformat() if day is not None else "never"


def run_delete(args: argparse.Namespace) -> int:
    """Art. 25 (第二十五条): the account of someone who left is cancelled. Removed from the file, its sessions
    end: the gate refuses a session whose account the file no longer holds at its next request, the running
    gateway deletes them (and the account's failure counts) from its store when it reloads the file, and with
    ``state.redis`` the CLI deletes them from Redis at once."""
    admin = _admin(args)
    name: str = args.name

    def delete(accounts: Accounts) -> Accounts:
        _existing(accounts, name)
        return accounts.without(name)

    update_accounts(admin.policy.accounts_file, delete)

    async def end_everything(store: Store) -> int:
        # Its sessions end; a lock or failure count stays until it expires, as when the gateway sees the name gone
        # from the file (a name that leaves and comes back must not come back unlocked: Art. 30).
        return await store.delete_account_sessions(name)

    ended, store_result = _store_step(admin, name, "deletion", end_everything)
    code = _finish(_record(admin, "delete", name, sessions_ended=ended, store=store_result), store_result)
    if ended is not None:
        print(f"account {name} deleted; {ended} session(s) ended")
    elif store_result == "none":
        print(f"account {name} deleted. The running gateway refuses its sessions from their next request, and ends "
              "them in its memory (no state.redis is configured) when it reloads the file, within a second or two.")
    return code
