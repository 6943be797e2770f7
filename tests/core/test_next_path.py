"""`next` only ever leads to a path on this site (``docs/pages.md``): an open-redirect corpus."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govgate.core.next_path import safe_next

PREFIX = "/__govgate"

OPEN_REDIRECTS = [
    "//evil.com", "///evil.com", "////evil.com", "https://evil.com", "http:evil.com", "https:/evil.com",
    "/\\evil.com", "\\\\evil.com", "/\\/evil.com", "/\t/evil.com", "/\n/evil.com", "/\r/evil.com",
    " //evil.com", "\x00//evil.com", "/%09/evil.com", "javascript:alert(1)", "data:text/html,x",
    "//evil.com@portal", "/@evil.com", "evil.com", "/.//evil.com", "/ /evil.com", "//%65vil.com",
    "%2F%2Fevil.com", "/%5Cevil.com", "\u3002evil.com", "/\u2215evil.com", "//evil。com",
    "/__govgate/logout", "/__govgate", "/__govgate/login?next=//evil.com",
]


@pytest.mark.parametrize("raw", OPEN_REDIRECTS)
def test_next_never_leaves_the_site(raw: str) -> None:
    result = safe_next(raw, PREFIX)
    assert result.startswith("/")
    assert not result.startswith("//")
    assert "\\" not in result
    import ada_url

    assert ada_url.URL(result, "https://portal.example.gov.cn/").host == "portal.example.gov.cn"


@pytest.mark.parametrize(("raw", "expected"), [
    ("/oa/", "/oa/"), ("/oa/inbox?x=1&y=2", "/oa/inbox?x=1&y=2"), ("/oa/../news/", "/news/"),
    ("/oa/%E5%8A%9E", "/oa/%E5%8A%9E"), (None, "/"), ("", "/"),
])
def test_local_paths_are_kept(raw: str | None, expected: str) -> None:
    assert safe_next(raw, PREFIX) == expected


@given(st.text(max_size=80))
def test_any_input_yields_a_same_origin_path(raw: str) -> None:
    import ada_url

    result = safe_next(raw, PREFIX)
    assert result.startswith("/")
    assert not result.startswith("//")
    assert ada_url.URL(result, "https://portal.example.gov.cn/").host == "portal.example.gov.cn"
