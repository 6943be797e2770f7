"""``gateway.redirect_listen``'s answers, as bytes (``redirect_answer``): a 308 to a public host over HTTPS, never
to a Host the client made up, a bare 400 for anything unreadable. (The listener itself:
``tests/e2e/test_tls_profile.py``.)"""

from __future__ import annotations

import pytest

from govgate.addons.https_redirect import redirect_answer

PUBLIC = ("portal.example.gov.cn", "[::1]")


def location(answer: bytes) -> str | None:
    for line in answer.split(b"\r\n"):
        if line.lower().startswith(b"location: "):
            return line[10:].decode()
    return None


def test_a_request_to_a_public_host_is_sent_to_https_on_the_listen_port() -> None:
    answer = redirect_answer(b"GET /oa/x?y=1 HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n", PUBLIC, 443)
    assert answer.startswith(b"HTTP/1.1 308 Permanent Redirect\r\n")
    assert location(answer) == "https://portal.example.gov.cn/oa/x?y=1"
    assert b"Strict-Transport-Security" not in answer  # RFC 6797 §7.2: not over plain HTTP
    other_port = redirect_answer(b"GET / HTTP/1.0\r\nHost: [0:0::1]:80\r\n\r\n", PUBLIC, 8443)
    assert location(other_port) == "https://[::1]:8443/"


def test_a_host_the_client_made_up_is_never_sent_back() -> None:
    answer = redirect_answer(b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", PUBLIC, 443)
    assert location(answer) == "https://portal.example.gov.cn/"


@pytest.mark.parametrize("head", [b"GARBAGE\r\n\r\n", b"GET /../oa HTTP/1.1\r\nHost: x\r\n\r\n",
                                  b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_anything_unreadable_gets_a_bare_400(head: bytes) -> None:
    assert redirect_answer(head, PUBLIC, 443) == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
