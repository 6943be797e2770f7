"""Argon2id hashing, constant work for unknown accounts, and the weak-password rules (Art. 30)."""

from __future__ import annotations

import statistics
import time

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from govgate.core import passwords
from govgate.core.passwords import (
    PARAMETERS,
    dummy_hash,
    hash_password,
    parameters_of,
    password_problems,
    verify_password,
)

GOOD = "Correct-horse-battery-9"


def needs_rehash(encoded: str) -> bool:
    """True if ``encoded`` was made with other parameters than today's (what `account passwd` renews)."""
    params = parameters_of(encoded)
    return params is None or (params.memory_kib, params.iterations, params.lanes) != (
        PARAMETERS.memory_kib,
        PARAMETERS.iterations,
        PARAMETERS.lanes,
    )


def test_a_hashed_password_verifies_and_a_wrong_one_does_not() -> None:
    encoded = hash_password(GOOD)
    assert verify_password(GOOD, encoded)
    assert not verify_password(GOOD + "x", encoded)
    assert not verify_password(GOOD.lower(), encoded)
    assert not verify_password("", encoded)


def test_hashes_are_phc_argon2id_strings_with_the_stated_parameters_and_a_fresh_salt() -> None:
    a, b = hash_password(GOOD), hash_password(GOOD)
    assert a.startswith(f"$argon2id$v=19$m={PARAMETERS.memory_kib},t={PARAMETERS.iterations},p={PARAMETERS.lanes}$")
    assert a != b  # random salt
    assert GOOD not in a
    assert not needs_rehash(a)


def test_a_hash_made_with_other_parameters_still_verifies_but_needs_rehash() -> None:
    old = Argon2id(salt=b"0123456789abcdef", length=32, iterations=1, lanes=1, memory_cost=8192).derive_phc_encoded(
        GOOD.encode()
    )
    assert verify_password(GOOD, old)
    assert needs_rehash(old)


@pytest.mark.parametrize("encoded", ["", "junk", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                                     "$2b$12$abcdefghijklmnopqrstuu", "$argon2id$v=19$m=19456,t=2,p=1$$"])
def test_a_malformed_hash_never_verifies(encoded: str) -> None:
    assert not verify_password(GOOD, encoded)


def test_a_password_longer_than_the_limit_is_refused_without_error() -> None:
    encoded = hash_password(GOOD)
    assert not verify_password(GOOD + "x" * 10_000, encoded)


def test_the_dummy_hash_uses_exactly_the_parameters_of_real_hashes() -> None:
    # Art. 30: an unknown account costs the same Argon2id work as a wrong password.
    assert parameters_of(dummy_hash()) == parameters_of(hash_password(GOOD)) == PARAMETERS
    assert not verify_password(GOOD, dummy_hash())


def test_an_unknown_account_takes_about_as_long_as_a_wrong_password() -> None:
    real = hash_password(GOOD)

    def median(encoded: str) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            verify_password("Wrong-password-123", encoded)
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    # Equal work by construction: the dummy hash has the very parameters of a real one.
    assert parameters_of(dummy_hash()) == parameters_of(real)
    dummy_time, real_time = median(dummy_hash()), median(real)
    # Loose on purpose (a shared 2-core machine, other test workers running); a missing dummy verification would
    # be ~1000x faster. The time itself is measured by scripts/bench_login.py.
    assert 0.1 < dummy_time / real_time < 10.0


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short-1a", "at least 12 characters"),
        ("zhangsan-Office-2026", "account name"),
        ("ZHANGSAN-office-2026", "account name"),
        ("nasgnahz-Office-2026", "backwards"),
        ("abcdefghijklmnopq", "only lower-case letters"),
        ("123456789012345", "only digits"),
        ("Password2024!", "commonly used"),
        ("P@ssw0rd123456", "commonly used"),
        ("Woaini1314520", "commonly used"),
        ("!!Qwertyuiop!!", "commonly used"),
        ("Aaaaaaaa-2026x", "four or more times"),
        ("ababababAB12", "too few different characters"),
        (" leading-Space-9", "white space"),
        ("Tab\tinside-Pass9", "control characters"),
        ("x" * 300 + "A1", "at most"),
    ],
)
def test_weak_passwords_are_refused_with_a_clear_reason(password: str, reason: str) -> None:
    problems = password_problems(password, "zhangsan")
    assert any(reason in p for p in problems), problems


@pytest.mark.parametrize(
    "password",
    ["Correct-horse-battery-9", "correct horse battery staple", "Tr0ub4dor&3xyz", "我的密码是Secure-Gate-88"],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    assert password_problems(password, "zhangsan") == []


def test_short_account_names_do_not_forbid_ordinary_letters() -> None:
    assert password_problems("Li-family-garden-7", "li") == []


def test_the_module_states_its_parameters_where_docs_can_quote_them() -> None:
    assert passwords.MIN_LENGTH == 12
    assert (PARAMETERS.memory_kib, PARAMETERS.iterations, PARAMETERS.lanes) == (19456, 2, 1)


def test_a_password_with_a_lone_surrogate_is_refused_without_error() -> None:
    assert not verify_password("Correct-horse\udcff-battery-9", hash_password(GOOD))
    assert not verify_password("\udcff", dummy_hash())


@pytest.mark.parametrize("params", ["m=4000000,t=2,p=1", "m=19456,t=9999,p=1", "m=19456,t=2,p=999", "m=1,t=2,p=1"])
def test_a_tampered_hash_with_absurd_parameters_is_never_verified(params: str) -> None:
    from govgate.core.passwords import parameters_of

    good = hash_password("Correct-horse-battery-9")
    tampered = good.replace("m=19456,t=2,p=1", params)
    assert tampered != good
    assert parameters_of(tampered) is None  # refused before any Argon2 work with those parameters
    assert verify_password("Correct-horse-battery-9", tampered) is False
