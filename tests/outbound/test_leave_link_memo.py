"""``leave_url`` keeps the signed paths it made (``_signed``'s memo): the memo must never give one
destination, prefix or key another's path."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import (
    MEMO_URL_LENGTH,
    LeaveLinks,
    _signed,
    encode_url_param,
    leave_url,
    sign_leave,
    verify_leave,
)

KEYS = (GatewayKeys.from_bytes(b"a" * 32), GatewayKeys.from_bytes(b"b" * 32))


def made_afresh(prefix: str, url: str, keys: GatewayKeys) -> str:
    return f"{prefix}/leave?url={encode_url_param(url)}&sig={sign_leave(url, keys)}"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["/__govgate", "/gw"]),
                          st.sampled_from(["http://", "https://", "HTTP://"]).flatmap(
                              lambda s: st.text(max_size=40).map(lambda t: s + "x.example/" + t)),
                          st.sampled_from(KEYS)), min_size=1, max_size=8))
def test_memoised_paths_are_the_paths_made_afresh(calls: list[tuple[str, str, GatewayKeys]]) -> None:
    for prefix, url, keys in calls * 2:  # each a second time: from the memo
        path = leave_url(prefix, url, keys)
        assert path == made_afresh(prefix, url, keys)
        query = parse_qs(path.split("?", 1)[1], keep_blank_values=True)
        assert query["url"] == [url]
        assert verify_leave(url, query["sig"][0], keys)
        assert not verify_leave(url, query["sig"][0], KEYS[1] if keys is KEYS[0] else KEYS[0])


ASCII_URLS = st.sampled_from(["http://", "https://"]).flatmap(
    lambda s: st.text(alphabet=st.characters(max_codepoint=127), max_size=60).map(lambda t: s + "x.example/" + t))


@settings(max_examples=400, deadline=None)
@given(ASCII_URLS, st.sampled_from(KEYS))
def test_ascii_destinations_signed_inline_are_the_general_path(url: str, keys: GatewayKeys) -> None:
    """``_signed`` escapes and signs an ASCII destination inline: the same path as the general one."""
    _signed.cache_clear()
    assert leave_url("/__govgate", url, keys) == made_afresh("/__govgate", url, keys)


@settings(max_examples=300, deadline=None)
@given(ASCII_URLS | st.sampled_from(["https://例子.example/?q=值&r=1", "http://x.example/a&amp;b"]))
def test_a_leave_links_attribute_value_reads_back_as_its_url(url: str) -> None:
    """``LeaveLinks.attr`` is the leave URL with every "&" as "&amp;" (read back as the URL in any quoting), ASCII."""
    links = LeaveLinks("https://portal.example.gov.cn", "/__govgate", KEYS[0])
    full = links(url)
    assert full == "https://portal.example.gov.cn" + leave_url("/__govgate", url, KEYS[0])
    value = links.attr(url)
    assert value.isascii()
    assert value.decode("ascii").replace("&amp;", "&") == full
    assert b"&" not in value.replace(b"&amp;", b"")


def test_a_leave_links_maker_signs_only_web_destinations() -> None:
    links = LeaveLinks("https://portal.example.gov.cn", "/__govgate", KEYS[0])
    for url in ("javascript:alert(1)", "ftp://x.example/", "data:text/html,x"):
        with pytest.raises(ValueError, match="only http"):
            links(url)
        with pytest.raises(ValueError, match="only http"):
            links.attr(url)


def test_the_same_destination_under_another_key_is_signed_again() -> None:
    url = "http://www.example.com/memo"
    first, second = leave_url("/p", url, KEYS[0]), leave_url("/p", url, KEYS[1])
    assert first != second
    assert first == made_afresh("/p", url, KEYS[0])
    assert second == made_afresh("/p", url, KEYS[1])


def test_long_destinations_are_not_kept() -> None:
    _signed.cache_clear()
    url = "https://www.example.com/" + "x" * MEMO_URL_LENGTH
    assert leave_url("/p", url, KEYS[0]) == made_afresh("/p", url, KEYS[0])
    assert _signed.cache_info().currsize == 0
    leave_url("/p", "https://www.example.com/short", KEYS[0])
    assert _signed.cache_info().currsize == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(KEYS))
def test_the_signature_is_the_gateway_keys_hmac_sha256(url: str, keys: GatewayKeys) -> None:
    # sign_leave uses cryptography's HMAC for speed; it must be the very MAC GatewayKeys makes and checks.
    import base64

    from govgate.core.keys import Purpose

    tag = keys.mac(Purpose.LEAVE_LINK, url.encode("utf-8", "surrogatepass"))
    assert sign_leave(url, keys) == base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")


def test_equal_keys_hash_alike_and_other_keys_are_other_memo_entries() -> None:
    same = GatewayKeys.from_bytes(b"a" * 32)
    assert same == KEYS[0]
    assert hash(same) == hash(KEYS[0])
    assert same != KEYS[1]
    assert leave_url("/p", "http://x.example/", same) != leave_url("/p", "http://x.example/", KEYS[1])
