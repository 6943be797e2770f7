"""TOTP steps, tolerance, malformed codes, and TOTP secrets encrypted at rest (Art. 30)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core import totp
from govgate.core.keys import GatewayKeys
from govgate.errors import AccountError

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 25, 10, 30, 15, tzinfo=UTC)
KEYS = GatewayKeys.from_bytes(bytes(range(32)))
OTHER_KEYS = GatewayKeys.from_bytes(bytes(range(1, 33)))


def code_at(offset_steps: int, now: datetime = NOW) -> str:
    return pyotp.TOTP(SECRET).at(now + timedelta(seconds=30 * offset_steps))


def test_new_secrets_are_160_bit_base32_and_different_each_time() -> None:
    a, b = totp.new_totp_secret(), totp.new_totp_secret()
    assert a != b
    assert len(a) == 32
    assert totp.is_valid_secret(a)


def test_the_code_of_the_current_step_matches_that_step() -> None:
    assert totp.matching_step(SECRET, code_at(0), NOW) == int(NOW.timestamp()) // 30


@pytest.mark.parametrize("offset", [-1, 1])
def test_codes_one_step_either_side_are_accepted(offset: int) -> None:
    assert totp.matching_step(SECRET, code_at(offset), NOW) == int(NOW.timestamp()) // 30 + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_two_or_more_steps_away_are_refused(offset: int) -> None:
    code = code_at(offset)
    # (If a far code happens to equal a near one the test would be wrong, not the gate.)
    assert code not in {code_at(-1), code_at(0), code_at(1)}
    assert totp.matching_step(SECRET, code, NOW) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "１２３４５６", "12 34 5", "-12345", "123456\n7",
                                  "００００００"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert totp.matching_step(SECRET, code, NOW) is None


def test_a_code_typed_with_a_space_in_the_middle_is_accepted() -> None:
    code = code_at(0)
    assert totp.matching_step(SECRET, f"{code[:3]} {code[3:]}", NOW) is not None


def test_a_malformed_secret_matches_nothing() -> None:
    assert totp.matching_step("not base32!", "123456", NOW) is None


def test_matching_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        totp.matching_step(SECRET, code_at(0), NOW.replace(tzinfo=None))


def test_the_time_zone_of_now_does_not_change_the_step() -> None:
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))
    assert totp.matching_step(SECRET, code_at(0), shanghai) == totp.matching_step(SECRET, code_at(0), NOW)


@settings(max_examples=40, deadline=None)
@given(seconds=st.integers(min_value=0, max_value=4_000_000_000))
def test_the_current_code_always_matches_and_its_step_is_within_one_of_now(seconds: int) -> None:
    now = datetime.fromtimestamp(seconds, UTC)
    step = totp.matching_step(SECRET, pyotp.TOTP(SECRET).at(now), now)
    assert step is not None
    assert abs(step - seconds // 30) <= 1


def test_the_provisioning_uri_is_authenticator_compatible() -> None:
    uri = totp.provisioning_uri(SECRET, "zhangsan")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth"
    assert parsed.netloc == "totp"
    assert unquote(parsed.path) == "/GovGate:zhangsan"
    query = parse_qs(parsed.query)
    assert query["secret"] == [SECRET]
    assert query["issuer"] == ["GovGate"]
    parsed_back = pyotp.parse_uri(uri)
    assert isinstance(parsed_back, pyotp.TOTP)
    assert parsed_back.secret == SECRET
    assert parsed_back.digits == 6
    assert parsed_back.interval == 30


def test_an_encrypted_secret_decrypts_for_its_own_account() -> None:
    blob = totp.encrypt_secret(KEYS, "zhangsan", SECRET)
    assert SECRET not in blob
    assert blob.startswith("v1:")
    assert totp.is_secret_blob(blob)
    assert totp.decrypt_secret(KEYS, "zhangsan", blob) == SECRET
    assert totp.encrypt_secret(KEYS, "zhangsan", SECRET) != blob  # fresh nonce each time


def test_a_secret_copied_to_another_account_does_not_decrypt() -> None:
    blob = totp.encrypt_secret(KEYS, "zhangsan", SECRET)
    with pytest.raises(AccountError, match="does not decrypt") as excinfo:
        totp.decrypt_secret(KEYS, "lisi", blob)
    assert SECRET not in str(excinfo.value)


def test_a_secret_under_another_gateway_key_does_not_decrypt() -> None:
    blob = totp.encrypt_secret(KEYS, "zhangsan", SECRET)
    with pytest.raises(AccountError):
        totp.decrypt_secret(OTHER_KEYS, "zhangsan", blob)


def test_any_edited_character_of_the_blob_is_detected() -> None:
    blob = totp.encrypt_secret(KEYS, "zhangsan", SECRET)
    for i in range(len("v1:"), len(blob)):
        replacement = "A" if blob[i] != "A" else "B"
        tampered = blob[:i] + replacement + blob[i + 1:]
        try:
            result = totp.decrypt_secret(KEYS, "zhangsan", tampered)
        except AccountError:
            continue
        # The last base64 character carries padding bits that may not change the bytes.
        assert result == SECRET
        assert i == len(blob) - 1


@pytest.mark.parametrize("blob", ["", "v1:", "v2:abcd", "v1:!!!!", "v1:" + "A" * 10, SECRET])
def test_malformed_blobs_are_refused(blob: str) -> None:
    assert not totp.is_secret_blob(blob)
    with pytest.raises(AccountError, match="malformed"):
        totp.decrypt_secret(KEYS, "zhangsan", blob)
