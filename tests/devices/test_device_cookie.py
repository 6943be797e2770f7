"""The enrolled-browser cookie (``govgate.core.device_cookie``): a random token signed with the gateway key."""

from __future__ import annotations

import secrets

from hypothesis import given
from hypothesis import strategies as st

from govgate.core import device_cookie
from govgate.core.keys import GatewayKeys

KEYS = GatewayKeys(b"\x01" * 32)
OTHER_KEYS = GatewayKeys(b"\x02" * 32)


def test_a_new_token_carries_256_random_bits_in_base64url() -> None:
    tokens = {device_cookie.new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 43 and "." not in t for t in tokens)


def test_a_signed_cookie_gives_back_its_token() -> None:
    token = device_cookie.new_token()
    value = device_cookie.cookie_value(KEYS, token)
    assert value.startswith(token + ".")
    assert device_cookie.token_of(KEYS, value) == device_cookie.PresentedToken(token, signed=True)


def test_a_cookie_signed_with_another_key_or_altered_is_refused() -> None:
    token = device_cookie.new_token()
    value = device_cookie.cookie_value(KEYS, token)
    assert device_cookie.token_of(OTHER_KEYS, value) is None
    other_token = device_cookie.new_token()
    assert device_cookie.token_of(KEYS, other_token + value[len(token):]) is None  # another token, old signature
    assert device_cookie.token_of(KEYS, value[:-1]) is None
    assert device_cookie.token_of(KEYS, token + ".") is None
    assert device_cookie.token_of(KEYS, "." + value.split(".")[1]) is None
    assert device_cookie.token_of(KEYS, value + ".x") is None


def test_a_hand_written_token_is_presented_as_it_is() -> None:
    assert device_cookie.token_of(KEYS, "lisiEnrolmentToken0000001") == device_cookie.PresentedToken(
        "lisiEnrolmentToken0000001", signed=False)


def test_nothing_overlong_or_empty_is_read() -> None:
    assert device_cookie.token_of(KEYS, "") is None
    assert device_cookie.token_of(KEYS, "a" * 201) is None


@given(st.text(max_size=120))
def test_no_made_up_signed_cookie_passes(value: str) -> None:
    if "." in value:
        assert device_cookie.token_of(KEYS, value) is None
    signature = secrets.token_urlsafe(32)
    assert device_cookie.token_of(KEYS, f"{device_cookie.new_token()}.{signature}") is None
