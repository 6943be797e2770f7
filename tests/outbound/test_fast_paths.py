"""The one-pass escaping of ASCII leave-link destinations gives what the per-character escaping gives.

``govgate.core.leave_link.encode_url_param`` escapes an ASCII URL with ``str.translate`` (``docs/outbound-links.md``,
"Speed"); any other text takes the general path. Both must give the same text, which ``parse_qs`` reads back.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.leave_link import _UNSAFE, encode_url_param


def per_character(url: str) -> str:
    """The general path: "%" first, then every other unsafe character by ``quote``."""
    found = set(_UNSAFE.findall(url))
    if "%" in found:
        url = url.replace("%", "%25")
        found.discard("%")
    for ch in found:
        url = url.replace(ch, quote(ch, safe=""))
    return url


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
       | st.sampled_from(["https://x.example/a b?q=%41&r=+#f", "http://e.example/%%25'\"<>`{}|^\\", ""]))
def test_ascii_escaping_in_one_pass_is_the_per_character_escaping(url: str) -> None:
    encoded = encode_url_param(url)
    assert encoded == per_character(url)
    if url:
        assert parse_qs(f"url={encoded}", keep_blank_values=True)["url"] == [url]


def test_text_that_is_not_ascii_keeps_the_general_path() -> None:
    url = "https://例子.example/路径?q=值 1"
    assert encode_url_param(url) == per_character(url)
