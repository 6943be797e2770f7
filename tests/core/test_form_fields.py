"""Reading a posted form so that the warning page can pass it on unchanged (``govgate.core.form_fields``)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govgate.core.form_fields import (
    MAX_BODY,
    MAX_FIELDS,
    MULTIPART,
    URLENCODED,
    NotCarried,
    PostedForm,
    read_posted_form,
)

FORM = "application/x-www-form-urlencoded"


def test_urlencoded_fields_come_back_in_order_with_repeats() -> None:
    body = b"q=%E4%B8%AD%E6%96%87+search&lang=zh&q=two&empty=&flag"
    assert read_posted_form(body, FORM, "utf-8") == PostedForm(URLENCODED, (
        ("q", "中文 search"), ("lang", "zh"), ("q", "two"), ("empty", ""), ("flag", "")))


def test_a_gbk_page_posts_gbk_and_is_read_as_gbk() -> None:
    body = urlencode({"意见": "办事服务 & 咨询"}, encoding="gbk").encode("ascii")
    assert read_posted_form(body, FORM + "; charset=gbk", "gb18030").fields == (("意见", "办事服务 & 咨询"),)
    assert read_posted_form(body, FORM, "utf-8") is NotCarried.ENCODING  # GBK bytes are not UTF-8


_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")  # what a browser can send


@given(st.lists(st.tuples(st.text(_TEXT, min_size=1, max_size=20), st.text(_TEXT, max_size=40)), max_size=10))
def test_any_urlencoded_form_a_browser_sends_is_read_back_exactly(fields: list[tuple[str, str]]) -> None:
    body = urlencode(fields, encoding="utf-8").encode("ascii")
    assert read_posted_form(body, FORM, "utf-8") == PostedForm(URLENCODED, tuple(fields))


def multipart(*parts: tuple[bytes, bytes], boundary: str = "----WebKitFormBoundaryAbC123") -> tuple[bytes, str]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
                    for head, content in parts) + b"--" + boundary.encode() + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def test_multipart_text_fields_are_read_with_their_line_breaks() -> None:
    body, ctype = multipart((b'Content-Disposition: form-data; name="name"', "张三".encode()),
                            (b'Content-Disposition: form-data; name="text"', b"line 1\r\nline 2"),
                            (b'Content-Disposition: form-data; name="a%22b"', b""))
    assert read_posted_form(body, ctype, "utf-8") == PostedForm(MULTIPART, (
        ("name", "张三"), ("text", "line 1\r\nline 2"), ('a"b', "")))


def test_a_quoted_boundary_is_understood() -> None:
    body, _ = multipart((b'Content-Disposition: form-data; name="x"', b"1"), boundary="b o")
    assert read_posted_form(body, 'multipart/form-data; boundary="b o"', "utf-8") == PostedForm(
        MULTIPART, (("x", "1"),))


def test_a_file_is_not_carried() -> None:
    body, ctype = multipart((b'Content-Disposition: form-data; name="x"', b"1"),
                            (b'Content-Disposition: form-data; name="f"; filename="a.txt"\r\nContent-Type: text/plain',
                             b"secret"))
    assert read_posted_form(body, ctype, "utf-8") is NotCarried.FILE


@pytest.mark.parametrize(("body", "ctype"), [
    (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n", "multipart/form-data; boundary=b"),  # no end
    (b"junk--b\r\n\r\n", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--", "multipart/form-data; boundary=b"),  # no name
    (b"--b\r\nX: y\r\n1\r\n--b--", "multipart/form-data; boundary=b"),  # no blank line
    (b"--b--", "multipart/form-data"),  # no boundary
])
def test_malformed_multipart_is_not_carried(body: bytes, ctype: str) -> None:
    assert read_posted_form(body, ctype, "utf-8") is NotCarried.MALFORMED


def test_text_plain_and_other_bodies_are_not_carried() -> None:
    assert read_posted_form(b"a=b\r\nc=d\r\n", "text/plain", "utf-8") is NotCarried.KIND
    assert read_posted_form(b'{"a": 1}', "application/json", "utf-8") is NotCarried.KIND
    assert read_posted_form(b"a=b", "", "utf-8") is NotCarried.KIND


def test_limits_and_nul() -> None:
    assert read_posted_form(b"a=" + b"x" * MAX_BODY, FORM, "utf-8") is NotCarried.TOO_LARGE
    assert read_posted_form(b"&".join([b"a=1"] * (MAX_FIELDS + 1)), FORM, "utf-8") is NotCarried.TOO_MANY
    assert read_posted_form(b"&".join([b"a=1"] * MAX_FIELDS), FORM, "utf-8") != NotCarried.TOO_MANY
    # HTML turns U+0000 into U+FFFD: a NUL could not be passed on as it came.
    assert read_posted_form(b"a=%00", FORM, "utf-8") is NotCarried.ENCODING
