"""The accounts file format: round trip, status, and every problem located as file:line: key: message."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.accounts import (
    Account,
    Accounts,
    AccountStatus,
    AdminMarks,
    account_name_problem,
    admin_marks,
    dump_accounts,
    parse_accounts,
    parse_groups,
)
from govgate.errors import PolicyError
from tests.accounts.builders import CREATED, make_account


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as excinfo:
        parse_accounts(text, "accounts.yaml")
    return [str(p) for p in excinfo.value.problems]


def test_accounts_survive_a_round_trip_through_the_file_format() -> None:
    later = CREATED + timedelta(days=3)
    accounts = Accounts((
        make_account("zhangsan"),
        make_account("li.si@example.gov.cn", groups=("staff", "finance"), expires=date(2027, 6, 30), disabled=True),
        replace(make_account("wangwu", groups=()), totp_version=3, password_changed=later, unlocked_at=later,
                logged_out_at=later),
    ))
    text = dump_accounts(accounts)
    assert text.startswith("# GovGate accounts file")
    assert parse_accounts(text, "accounts.yaml") == accounts


def test_a_file_without_accounts_says_so_and_an_empty_or_comment_only_one_is_refused() -> None:
    assert len(parse_accounts("version: 1\naccounts:\n", "a.yaml")) == 0
    # A write cut short (found in review: read as "no accounts", every account counted as deleted and unlocked).
    for text in ("", "# GovGate accounts\n# edit with govgate account\n"):
        with pytest.raises(PolicyError) as refused:
            parse_accounts(text, "a.yaml")
        assert [str(p) for p in refused.value.problems] == [
            "a.yaml: version: the accounts file is empty (expected version: 1 and accounts:)"]


def test_lookup_is_by_exact_name() -> None:
    accounts = Accounts((make_account("zhangsan"),))
    assert accounts.get("zhangsan") is not None
    assert accounts.get("ZhangSan") is None
    assert accounts.similar_name("ZhangSan") == "zhangsan"
    assert "zhangsan" in accounts
    assert accounts.names() == ("zhangsan",)


def test_with_account_replaces_in_place_and_adds_at_the_end() -> None:
    accounts = Accounts((make_account("a1"), make_account("b2")))
    replaced = accounts.with_account(make_account("a1", disabled=True))
    assert replaced.names() == ("a1", "b2")
    a1 = replaced.get("a1")
    assert a1 is not None
    assert a1.disabled
    assert accounts.with_account(make_account("c3")).names() == ("a1", "b2", "c3")
    assert accounts.without("a1").names() == ("b2",)


def test_status_says_disabled_before_expired_and_expiry_is_inclusive() -> None:
    account = make_account("zhangsan", expires=date(2027, 6, 30))
    assert account.status(date(2027, 6, 30)) is AccountStatus.ACTIVE
    assert account.status(date(2027, 7, 1)) is AccountStatus.EXPIRED
    both = make_account("x1", expires=date(2020, 1, 1), disabled=True)
    assert both.status(date(2027, 1, 1)) is AccountStatus.DISABLED


def test_sessions_opened_before_an_admin_logout_are_revoked() -> None:
    t = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    account = Account(name="a1", password_hash="h", totp_secret="s", groups=(), expires=None, disabled=False,
                      created=CREATED, logged_out_at=t)
    assert account.session_revoked(t - timedelta(seconds=1))
    assert not account.session_revoked(t + timedelta(seconds=1))
    assert not make_account("b2").session_revoked(t)


def test_repr_never_shows_the_hash_or_the_encrypted_secret() -> None:
    account = make_account("zhangsan")
    assert account.password_hash not in repr(account)
    assert account.totp_secret not in repr(account)


@pytest.mark.parametrize("name", ["zhangsan", "li.si", "wang_wu-2", "a", "user@example.gov.cn", "A" * 64])
def test_good_account_names_are_accepted(name: str) -> None:
    assert account_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "-lead", ".hidden", "张三", "with space", "a/b", "x" * 65, "a\nb", "a:b"])
def test_bad_account_names_are_refused(name: str) -> None:
    assert account_name_problem(name) is not None


def test_groups_are_parsed_from_a_comma_list() -> None:
    assert parse_groups("staff, finance,,staff") == ("staff", "finance")
    assert parse_groups("") == ()
    with pytest.raises(ValueError, match="invalid group name"):
        parse_groups("staff,bad group")


def test_every_problem_is_reported_with_its_line_and_key_path() -> None:
    good = dump_accounts(Accounts((make_account("zhangsan"),)))
    text = good.replace("groups: [staff]", "groups: [staff, 'bad group']").replace("disabled: false", "disabled: maybe")
    text += "  lisi:\n    password: plain-text\n    colour: blue\n"
    problems = problems_of(text)
    lines = text.splitlines()
    by_key = {p.split(": ")[1]: p for p in problems}
    assert set(by_key) == {"accounts.zhangsan.groups[1]", "accounts.zhangsan.disabled", "accounts.lisi.password",
                           "accounts.lisi.colour", "accounts.lisi.totp_secret", "accounts.lisi.created"}
    bad_group_line = next(i for i, line in enumerate(lines, 1) if "bad group" in line)
    assert by_key["accounts.zhangsan.groups[1]"].startswith(f"accounts.yaml:{bad_group_line}: ")
    assert "expected an Argon2id hash" in by_key["accounts.lisi.password"]
    assert "plain-text" not in "".join(problems)  # a mistaken clear password is not echoed


def test_yaml_syntax_errors_name_their_line() -> None:
    problems = problems_of("version: 1\naccounts:\n  zhangsan: [\n")
    assert len(problems) == 1
    assert problems[0].startswith("accounts.yaml:")
    assert "not valid YAML" in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("version: 2\naccounts: {}\n", "unsupported accounts file version"),
        ("accounts: {}\n", "version: missing"),
        ("version: 1\nusers: {}\n", "users: unknown key"),
        ("version: 1\naccounts:\n  zhangsan: {}\n  zhangsan: {}\n", "duplicate key"),
        ("version: 1\naccounts:\n  'bad name': {}\n", "invalid account name"),
    ],
)
def test_structural_problems_are_named(text: str, expected: str) -> None:
    assert any(expected in p for p in problems_of(text)), problems_of(text)


def test_the_file_is_read_like_the_policy_without_tags_or_alias_bombs() -> None:
    tagged = "version: 1\naccounts:\n  zhangsan: !!python/object/apply:os.system [echo pwned]\n"
    assert any(p.startswith("accounts.yaml:3: accounts.zhangsan: unsupported YAML tag") for p in problems_of(tagged))
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    assert any("expected an accounts file of ordinary size" in p for p in problems_of(bomb))


def test_two_names_differing_only_in_case_are_refused() -> None:
    text = dump_accounts(Accounts((make_account("zhangsan"), make_account("ZhangSan"))))
    assert any("differs only in letter case" in p for p in problems_of(text))


def test_times_must_carry_an_offset_and_expiry_must_be_a_date() -> None:
    text = dump_accounts(Accounts((make_account("zhangsan", expires=date(2027, 1, 1)),)))
    naive = text.replace("+00:00", "")
    assert any("accounts.zhangsan.created: expected an ISO 8601 time" in p for p in problems_of(naive))
    as_time = text.replace("expires: 2027-01-01", "expires: 2027-01-01T10:00:00+08:00")
    assert any("accounts.zhangsan.expires: expected a date" in p for p in problems_of(as_time))
    parsed = parse_accounts(text, "a").get("zhangsan")
    assert parsed is not None
    assert parsed.expires == date(2027, 1, 1)


def test_the_created_time_keeps_its_offset() -> None:
    account = parse_accounts(dump_accounts(Accounts((make_account("zhangsan"),))), "a").get("zhangsan")
    assert account is not None
    assert account.created == CREATED
    assert account.created.utcoffset() == UTC.utcoffset(None)


_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,20}", fullmatch=True)
_groups = st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True), max_size=3, unique=True)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))


@settings(max_examples=30, deadline=None)
@given(
    names=st.lists(_names, min_size=0, max_size=4, unique_by=str.casefold),
    groups=_groups,
    expires=st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    disabled=st.booleans(),
    created=_times,
    logged_out=st.none() | _times,
    version=st.integers(min_value=1, max_value=10_000),
)
def test_any_accounts_value_survives_dump_and_parse(names: list[str], groups: list[str], expires: date | None,
                                                    disabled: bool, created: datetime, logged_out: datetime | None,
                                                    version: int) -> None:
    template = make_account("template")
    accounts = Accounts(tuple(
        replace(template, name=name, groups=tuple(groups), expires=expires, disabled=disabled, created=created,
                logged_out_at=logged_out, totp_version=version)
        for name in names
    ))
    assert parse_accounts(dump_accounts(accounts), "accounts.yaml") == accounts


def test_a_reload_reports_the_accounts_an_admin_unlocked_or_logged_out() -> None:
    t = CREATED + timedelta(hours=1)
    old = Accounts((make_account("a1"), replace(make_account("b2"), unlocked_at=CREATED), make_account("c3")))
    new = Accounts((replace(make_account("a1"), unlocked_at=t), replace(make_account("b2"), unlocked_at=CREATED),
                    replace(make_account("c3"), logged_out_at=t), replace(make_account("d4"), logged_out_at=t)))
    marks = admin_marks(old, new)
    assert marks.unlock == ("a1",)
    assert marks.logout == ("c3", "d4")
    assert admin_marks(new, new) == AdminMarks((), ())


def test_a_reload_ends_the_sessions_of_deleted_accounts_but_keeps_their_locks() -> None:
    # Art. 30: a name that leaves the file and comes back (a cut write, a restore) must not come back unlocked
    # (found in review: a truncated accounts file lifted every lockout).
    old = Accounts((make_account("a1"), make_account("b2"), make_account("c3")))
    new = Accounts((make_account("b2"),))
    marks = admin_marks(old, new)
    assert marks.logout == ("a1", "c3")
    assert marks.unlock == ()


def test_a_session_older_than_the_account_is_revoked() -> None:
    # A session left from a deleted account of the same name never passes for the re-created one.
    account = make_account("zhangsan")
    assert account.session_revoked(CREATED - timedelta(seconds=1))
    assert not account.session_revoked(CREATED)
    assert not account.session_revoked(CREATED + timedelta(days=1))
