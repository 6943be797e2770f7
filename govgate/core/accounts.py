"""Staff accounts: the typed model of the accounts file, and its pure parsing and serialising.

Art. 30 (第三十条): staff log in with strong authentication (password + TOTP); accounts expire and can be
disabled. Art. 25 (第二十五条): accounts of staff who leave or change post are cancelled promptly.

The file (``policy.accounts_file``) is written only by ``govgate account …`` and holds hashes and
encrypted secrets only: an Argon2id PHC string per account (``govgate.core.passwords``) and the TOTP
secret sealed with AES-GCM under the gateway key (``govgate.core.totp``). File I/O (locking, atomic
replace) lives in ``govgate.accounts_file``; this module never touches the disk or the clock.

    version: 1
    accounts:
      zhangsan:
        password: $argon2id$v=19$m=19456,t=2,p=1$…
        totp_secret: v1:…
        totp_version: 1                           # +1 at each `reset-totp`
        groups: [staff]
        expires: 2027-06-30                       # last day the account works; absent: never
        disabled: false
        created: '2026-11-25T10:30:00+08:00'
        password_changed: '2026-11-25T10:30:00+08:00'
        unlocked_at: '…'                          # last `account unlock` (the gateway clears its lock)
        logged_out_at: '…'                        # last `account logout`: sessions opened before end

The text is read by the policy's YAML reader (``govgate.core.yaml_tree``: plain tags only, duplicate
keys refused, aliases bounded). Problems are reported like the policy loader's:
``accounts.yaml:7: accounts.zhangsan.groups[0]: …``, every one of them, in a ``PolicyError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import yaml

from govgate.core.passwords import is_password_hash
from govgate.core.totp import is_secret_blob
from govgate.core.yaml_tree import YamlSyntaxError, YMap, YNode, YScalar, YSeq, plain_value, read_yaml_tree
from govgate.errors import PolicyError, PolicyProblem

FILE_VERSION = 1

# ASCII only: names travel in the X-GovGate-User header and in audit records.
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

HEADER = (
    "# GovGate accounts file: written by `govgate account ...` only; do not edit by hand.\n"
    "# Password hashes are Argon2id; TOTP secrets are encrypted under the gateway key (key_file).\n"
)


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    password_hash: str = field(repr=False)  # Argon2id PHC string
    totp_secret: str = field(repr=False)  # AES-GCM blob from ``totp.encrypt_secret``; never the secret
    groups: tuple[str, ...]
    expires: date | None  # last day the account works (inclusive); None: never expires
    disabled: bool
    created: datetime  # aware
    totp_version: int = 1
    password_changed: datetime | None = None
    unlocked_at: datetime | None = None  # last admin unlock: locks that began before it are void
    logged_out_at: datetime | None = None  # last admin logout: sessions opened at or before it are ended

    def is_expired(self, today: date) -> bool:
        """Art. 25/30: an account stops working the day after its ``expires`` date."""
        return self.expires is not None and today > self.expires

    def status(self, today: date) -> AccountStatus:
        if self.disabled:
            return AccountStatus.DISABLED
        if self.is_expired(today):
            return AccountStatus.EXPIRED
        return AccountStatus.ACTIVE

    def session_revoked(self, session_created: datetime) -> bool:
        """True if ``govgate account logout`` ran after a session opened at ``session_created``, or if the
        session is older than the account itself: one left from a deleted account of the same name
        (``govgate account delete``, then ``add``) never passes for the new account's."""
        if session_created < self.created:
            return True
        return self.logged_out_at is not None and session_created <= self.logged_out_at


@dataclass(frozen=True, slots=True)
class Accounts:
    """All accounts, in file order. Frozen: a reload builds a new one."""

    items: tuple[Account, ...] = ()
    _by_name: MappingProxyType[str, Account] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({a.name: a for a in self.items}))

    def get(self, name: str) -> Account | None:
        """The account called exactly ``name`` (case-sensitive), or None."""
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Account]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.items)

    def similar_name(self, name: str) -> str | None:
        """An existing name equal to ``name`` but for letter case (two such accounts would confuse people)."""
        folded = name.casefold()
        for existing in self._by_name:
            if existing.casefold() == folded:
                return existing
        return None

    def with_account(self, account: Account) -> Accounts:
        """A copy with ``account`` added, or replacing the account of the same name in place."""
        if account.name in self._by_name:
            return Accounts(tuple(account if a.name == account.name else a for a in self.items))
        return Accounts((*self.items, account))

    def without(self, name: str) -> Accounts:
        return Accounts(tuple(a for a in self.items if a.name != name))


@dataclass(frozen=True, slots=True)
class AdminMarks:
    """What a reload of the accounts file asks the running gateway to do in its state store."""

    unlock: tuple[str, ...]  # `account unlock` ran: ``Store.unlock(name)``
    logout: tuple[str, ...]  # `account logout` ran, or the account was deleted: ``Store.delete_account_sessions``


def admin_marks(old: Accounts, new: Accounts) -> AdminMarks:
    """The accounts whose ``unlocked_at`` / ``logged_out_at`` changed between two loads of the file, and those
    the file no longer holds (``govgate account delete``): their sessions end; a lock or failure count of theirs
    stays until it expires.

    Without Redis, locks and sessions live in the gateway's memory, out of the CLI's reach; the CLI
    leaves these marks in the file and the gateway applies them on reload (Art. 30: an administrator
    can end a lock or a session at once; Art. 25: a deleted account keeps nothing open).
    """
    unlock: list[str] = []
    logout: list[str] = []
    for account in new:
        before = old.get(account.name)
        if account.unlocked_at is not None and (before is None or before.unlocked_at != account.unlocked_at):
            unlock.append(account.name)
        if account.logged_out_at is not None and (before is None or before.logged_out_at != account.logged_out_at):
            logout.append(account.name)
    deleted = tuple(account.name for account in old if account.name not in new)
    # A deleted account's lock and failure counts stay until they expire: a name that leaves the file and comes
    # back (a cut write, a restore) must not come back unlocked (Art. 30). Its sessions end (Art. 25).
    return AdminMarks(tuple(unlock), (*logout, *deleted))


def account_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an account name, or None if it can."""
    if not ACCOUNT_NAME.fullmatch(name):
        return (
            f"invalid account name {name!r}: use 1-64 ASCII letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return None


def parse_groups(text: str) -> tuple[str, ...]:
    """``"staff, finance"`` → ``("staff", "finance")``. ``ValueError`` names the bad group."""
    groups: list[str] = []
    for part in text.split(","):
        group = part.strip()
        if not group:
            continue
        if not GROUP_NAME.fullmatch(group):
            raise ValueError(
                f"invalid group name {group!r}: use ASCII letters, digits and . _ -, starting with a letter or digit"
            )
        if group not in groups:
            groups.append(group)
    return tuple(groups)


# -- serialising -----------------------------------------------------------------------------------


def _account_document(account: Account) -> dict[str, object]:
    doc: dict[str, object] = {
        "password": account.password_hash,
        "totp_secret": account.totp_secret,
        "totp_version": account.totp_version,
        "groups": list(account.groups),
        "expires": account.expires,
        "disabled": account.disabled,
        "created": account.created.isoformat(),
    }
    for key, value in (
        ("password_changed", account.password_changed),
        ("unlocked_at", account.unlocked_at),
        ("logged_out_at", account.logged_out_at),
    ):
        if value is not None:
            doc[key] = value.isoformat()
    return doc


def dump_accounts(accounts: Accounts) -> str:
    """The file's text for ``accounts``; ``parse_accounts`` reads it back to an equal value."""
    document = {"version": FILE_VERSION, "accounts": {a.name: _account_document(a) for a in accounts}}
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1000)
    return HEADER + body


# -- parsing ---------------------------------------------------------------------------------------

_ACCOUNT_KEYS = frozenset(
    {"password", "totp_secret", "totp_version", "groups", "expires", "disabled", "created",
     "password_changed", "unlocked_at", "logged_out_at"}
)
_REQUIRED_KEYS = ("password", "totp_secret", "created")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[PolicyProblem] = []

    def problem(self, node: YNode, key_path: str, message: str) -> None:
        self.problems.append(PolicyProblem(self.source, node.line, key_path, message))

    def mapping(self, node: YNode, key_path: str) -> list[tuple[str, YScalar, YNode]] | None:
        """The (key, key node, value node) pairs of a mapping (the tree has reported duplicate keys)."""
        if not isinstance(node, YMap):
            self.problem(node, key_path, "expected a mapping")
            return None
        return [(key.text, key, value) for key, value in node.items]

    def parse(self, text: str) -> Accounts:
        try:
            root, problems = read_yaml_tree(text, self.source, document="an accounts file")
        except YamlSyntaxError as exc:
            self.problems.append(PolicyProblem(self.source, exc.line, "", f"not valid YAML: {exc.reason}"))
            return Accounts()
        self.problems.extend(problems)
        if root is None:  # no document: empty, or comments only (or beyond the tree's limits, reported above)
            if not problems:
                # A file cut short (a copy or an editor's write interrupted) must not read as "no accounts": every
                # account would count as deleted. The gateway keeps the last good file (a missing file is no
                # accounts: the state before the first `govgate account add`).
                self.problems.append(PolicyProblem(self.source, 0, "version",
                                                   "the accounts file is empty (expected version: 1 and accounts:)"))
            return Accounts()
        return self._parse_root(root)

    def _parse_root(self, root: YNode) -> Accounts:
        pairs = self.mapping(root, "")
        if pairs is None:
            return Accounts()
        accounts: list[Account] = []
        version_seen = False
        for key, key_node, value_node in pairs:
            if key == "version":
                version_seen = True
                version = plain_value(value_node)
                if version != FILE_VERSION or isinstance(version, bool):
                    self.problem(value_node, "version", f"unsupported accounts file version {version!r} (expected 1)")
            elif key == "accounts":
                if _is_null(value_node):
                    continue
                accounts.extend(self._parse_accounts(value_node))
            else:
                self.problem(key_node, key, "unknown key (expected version, accounts)")
        if not version_seen and pairs:
            self.problem(root, "version", "missing (expected version: 1)")
        return Accounts(tuple(accounts))

    def _parse_accounts(self, node: YNode) -> list[Account]:
        pairs = self.mapping(node, "accounts")
        if pairs is None:
            return []
        accounts: list[Account] = []
        folded: dict[str, str] = {}
        for name, key_node, value_node in pairs:
            path = _join("accounts", name)
            problem = account_name_problem(name)
            if problem is not None:
                self.problem(key_node, path, problem)
                continue
            other = folded.get(name.casefold())
            if other is not None:
                self.problem(key_node, path, f"differs only in letter case from account {other!r}")
                continue
            folded[name.casefold()] = name
            account = self._parse_account(name, value_node, path)
            if account is not None:
                accounts.append(account)
        return accounts

    def _parse_account(self, name: str, node: YNode, path: str) -> Account | None:
        pairs = self.mapping(node, path)
        if pairs is None:
            return None
        before = len(self.problems)
        fields: dict[str, Any] = {}
        nodes: dict[str, YNode] = {}
        for key, key_node, value_node in pairs:
            if key not in _ACCOUNT_KEYS:
                expected = ", ".join(sorted(_ACCOUNT_KEYS))
                self.problem(key_node, _join(path, key), f"unknown key (expected one of {expected})")
                continue
            nodes[key] = value_node
            fields[key] = self._field(key, value_node, _join(path, key))
        for key in _REQUIRED_KEYS:
            if key not in nodes:
                self.problem(node, _join(path, key), "missing")
        if len(self.problems) > before:
            return None
        return Account(
            name=name,
            password_hash=fields["password"],
            totp_secret=fields["totp_secret"],
            groups=fields.get("groups", ()),
            expires=fields.get("expires"),
            disabled=fields.get("disabled", False),
            created=fields["created"],
            totp_version=fields.get("totp_version", 1),
            password_changed=fields.get("password_changed"),
            unlocked_at=fields.get("unlocked_at"),
            logged_out_at=fields.get("logged_out_at"),
        )

    def _field(self, key: str, node: YNode, path: str) -> Any:
        if key == "groups":
            return self._groups(node, path)
        value = plain_value(node)
        if key == "password":
            if not isinstance(value, str) or not is_password_hash(value):
                self.problem(node, path, "expected an Argon2id hash ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")
            return value
        if key == "totp_secret":
            if not isinstance(value, str) or not is_secret_blob(value):
                self.problem(node, path, "expected an encrypted TOTP secret (v1:…)")
            return value
        if key == "totp_version":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.problem(node, path, "expected a whole number of at least 1")
            return value
        if key == "disabled":
            if not isinstance(value, bool):
                self.problem(node, path, "expected true or false")
            return value
        if key == "expires":
            if value is None:
                return None
            day = _as_date(value)
            if day is None:
                self.problem(node, path, "expected a date (YYYY-MM-DD) or null")
            return day
        # created, password_changed, unlocked_at, logged_out_at: aware ISO 8601 times.
        if value is None and key != "created":
            return None
        moment = _as_aware_time(value)
        if moment is None:
            self.problem(node, path, "expected an ISO 8601 time with a UTC offset")
        return moment

    def _groups(self, node: YNode, path: str) -> tuple[str, ...]:
        if _is_null(node):
            return ()
        if not isinstance(node, YSeq):
            self.problem(node, path, "expected a list of group names")
            return ()
        groups: list[str] = []
        for index, item in enumerate(node.items):
            value = plain_value(item)
            item_path = f"{path}[{index}]"
            if not isinstance(value, str) or not GROUP_NAME.fullmatch(value):
                self.problem(item, item_path, f"invalid group name {value!r}")
            elif value in groups:
                self.problem(item, item_path, f"duplicate group {value!r}")
            else:
                groups.append(value)
        return tuple(groups)


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def _as_date(value: object) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return None


def _as_aware_time(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_accounts(text: str, source: str) -> Accounts:
    """Parse the accounts file's text; ``source`` names the file in problems.

    Raises ``PolicyError`` listing every problem (``file:line: key.path: message``).
    """
    parser = _Parser(source)
    accounts = parser.parse(text)
    if parser.problems:
        raise PolicyError(parser.problems)
    return accounts

