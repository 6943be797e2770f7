"""The scanner/rewriter: what is rewritten, what is left byte for byte, how URLs resolve."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import encode_url_param, leave_form_url, leave_url, verify_leave
from govgate.core.link_rewrite import LinkKind, RefusalReason, RewriteRefused, RewriteResult, refresh_url, rewrite_html
from govgate.core.outbound import HostClassifier

from .conftest import DOC_URL, PREFIX

ORIGIN = "https://portal.example.gov.cn"


@pytest.fixture
def rw(classifier: HostClassifier, keys: GatewayKeys):  # type: ignore[no-untyped-def]
    def run(body: bytes, content_type: str | None = "text/html", url: str = DOC_URL) -> RewriteResult:
        return rewrite_html(body, content_type=content_type, document_url=url, classifier=classifier,
                            make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys), collect=True)
    return run


def leave(u: str, keys: GatewayKeys) -> bytes:
    return (ORIGIN + leave_url(PREFIX, u, keys)).replace("&", "&amp;").encode()


def test_external_link_is_replaced_by_a_signed_leave_url(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<p><a class=x href="http://evil.example/path?a=1&amp;b=2">go</a></p>')
    assert r.body == b'<p><a class=x href="' + leave("http://evil.example/path?a=1&b=2", keys) + b'">go</a></p>'
    assert r.rewritten == 1
    assert verify_leave("http://evil.example/path?a=1&b=2", leave_url(PREFIX, "http://evil.example/path?a=1&b=2",
                                                                          keys).rsplit("sig=", 1)[1], keys)


@pytest.mark.parametrize("body", [
    b'<a href="/oa/">', b"<a href='news/1.html'>", b"<a href=?q=1>", b"<a href=#top>", b'<a href="">',
    b'<a href="https://www.gov.cn/">', b'<a href="HTTP://WWW.GOV.CN./x">', b'<a href="http://sub.example-partner.cn">',
    b'<a href="mailto:a@evil.example">', b'<a href="tel:+861234">', b'<a href="javascript:location=\'http://e.com\'">',
    b'<a href="data:text/html,<a href=http://e.com>">', b'<a href="http://exa mple.com/">',
    b'<a href="//portal.example.gov.cn:8443/x">', b'<a>no href</a>', b'<form method=post>',
    b'<a href="http://[::1">', b'<meta http-equiv=refresh content="5">',
])
def test_internal_and_non_navigating_links_are_untouched(rw, body: bytes) -> None:  # type: ignore[no-untyped-def]
    r = rw(body)
    assert r.body == body
    assert r.rewritten == 0


@pytest.mark.parametrize(("body", "expected_href"), [
    (b'<a href="&#104;ttp://evil.example/">', "http://evil.example/"),
    (b'<a href="&#x68;ttps&colon;//evil.example/">', "https://evil.example/"),
    (b"<a href=' \t\nhttp://evil.example/ \x01'>", "http://evil.example/"),
    (b'<a href="ht\ttp://evil.\nexample/">', "http://evil.example/"),
    (b'<a href="http:\\\\evil.example\\a">', "http://evil.example/a"),
    (b'<a href="//evil.example">', "https://evil.example/"),
    (b'<a href="\\\\evil.example">', "https://evil.example/"),
    (b'<a href="/\\evil.example">', "https://evil.example/"),
    (b'<a href="http:evil.example">', "http://evil.example/"),
    (b'<a href="http://www.gov.cn@evil.example/">', "http://www.gov.cn@evil.example/"),
    (b'<a href="http://evil.example\\@www.gov.cn/">', "http://evil.example/@www.gov.cn/"),
    (b'<a href="http://0x7f.1/">', "http://127.0.0.1/"),
    (b'<a href="http://%65vil.example/">', "http://evil.example/"),
    (b'<a href="http://EVIL.example:80/">', "http://evil.example/"),
    (b'<a href="http://evilgov.cn/">', "http://evilgov.cn/"),
    (b'<a href="http://gov.cn.evil.com/">', "http://gov.cn.evil.com/"),
    (b"<a href=http://evil.example/>x", "http://evil.example/"),
    (b'<a/href="http://evil.example/">', "http://evil.example/"),
    (b'<A HREF="http://evil.example/">', "http://evil.example/"),
    (b"<a href='HTTPS://EVIL.example:443/'>", "https://evil.example/"),
    (b'<area href="http://evil.example/">', "http://evil.example/"),
    (b'<a href="http://\xe4\xbe\x8b\xe5\xad\x90.com/">', "http://xn--fsqu00a.com/"),
])
def test_links_resolve_as_a_browser_does(rw, keys: GatewayKeys, body: bytes, expected_href: str) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<meta charset="utf-8">' + body)
    assert r.rewritten == 1, r.found
    assert leave(expected_href, keys) in r.body


def test_legacy_entity_without_semicolon_is_not_decoded_before_equals_or_alnum(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<a href="http://evil.example/?a=1&copy=2&notit;&amp">')
    assert r.found[0].value == "http://evil.example/?a=1&copy=2&notit;&"
    assert r.rewritten == 1


def test_first_of_duplicate_attributes_wins(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    body = b'<a href="/local" HREF="http://evil.example/">'
    assert rw(body).body == body
    r = rw(b'<a href="http://evil.example/" href="/local">')
    assert r.body == b'<a href="' + leave("http://evil.example/", keys) + b'" href="/local">'


@pytest.mark.parametrize("body", [
    b"<script>document.write('<a href=\"http://evil.example/\">')</script>",
    b"<script type=text/template><a href=http://evil.example/></SCRIPT >",
    b"<style>a[href='<a href=http://evil.example/>']{}</style>",
    b"<!-- <a href=http://evil.example/> -->",
    b"<!-- -- <a href=http://evil.example/> --!>",
    b"<textarea><a href=http://evil.example/></textarea>",
    b"<title><a href=http://evil.example/></title>",
    b"<xmp><a href=http://evil.example/></xmp>",
    b"<iframe><a href=http://evil.example/></iframe>",
    b"<noembed><a href=http://evil.example/></noembed>",
    b"<noframes><a href=http://evil.example/></noframes>",
    b"<plaintext><a href=http://evil.example/>",
    b"<?php <a href=http://evil.example/> ?>",
    b"<!DOCTYPE html><!x <a href=http://evil.example/ >",
    b'<div title="<a href=http://evil.example/>"></div>',
    b"<div title='><a href=http://evil.example/>'></div>",
    b"<svg><![CDATA[<a href=http://evil.example/>]]></svg>",
    b"<script><!--<script></script><a href=http://evil.example/></script>--></script>",
    b'<a href="http://evil.example/"',  # EOF in tag: never emitted
])
def test_text_that_only_looks_like_markup_is_never_rewritten(rw, body: bytes) -> None:  # type: ignore[no-untyped-def]
    assert rw(body).body == body


@pytest.mark.parametrize("body", [
    b"<!--><a href=http://evil.example/>",
    b"<!---><a href=http://evil.example/>",
    b"<script><!--></script><a href=http://evil.example/>",
    b"<script><!--<script>--></script><a href=http://evil.example/>",
    b"<style></style ><a href=http://evil.example/>",
    b"<textarea></textarea/><a href=http://evil.example/>",
    b"<svg><style></svg><a href=http://evil.example/>",
    b"<svg><style><p><a href=http://evil.example/>",
    b"<math><mi><a href=http://evil.example/></mi></math>",
    b"<svg/><title></title><a href=http://evil.example/>",
    b"</div title='>'><a href=http://evil.example/>",
    b"<![CDATA[ x ><a href=http://evil.example/>",
    b"<div a=b/><a href=http://evil.example/>",
    b'<img alt="x"src=y><a href=http://evil.example/>',
])
def test_markup_after_tricky_constructs_is_still_found(rw, body: bytes) -> None:  # type: ignore[no-untyped-def]
    assert rw(body).rewritten == 1


def test_noscript_content_is_rewritten_for_browsers_with_scripting_off(rw) -> None:  # type: ignore[no-untyped-def]
    r = rw(b"<noscript><a href=http://evil.example/></noscript>")
    assert r.rewritten == 1
    # With scripting on the link after the first </noscript> is real; with scripting off that </noscript> is inside a
    # comment, which ends elsewhere: the two readings part there, and whatever follows could differ. Refused.
    with pytest.raises(RewriteRefused) as info:
        rw(b"<noscript><!-- </noscript><a href=http://evil.example/> --></noscript>")
    assert info.value.reason is RefusalReason.NOSCRIPT


def test_base_href_applies_to_links_before_and_after_it(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<a href="x">1</a><base href="http://evil.example/dir/"><a href="../y">2</a><base href="/ignored/">')
    assert leave("http://evil.example/dir/x", keys) in r.body
    assert leave("http://evil.example/y", keys) in r.body
    assert r.base_url == "http://evil.example/dir/"


def test_base_inside_a_comment_or_a_template_after_the_base_is_ignored(rw) -> None:  # type: ignore[no-untyped-def]
    body = (b'<base href="/b/"><template><base href="http://evil.example/"></template>'
            b'<!-- <base href="http://e.com/"> --><a href=x>')
    assert rw(body).body == body


def test_empty_form_action_submits_to_the_document_not_the_base(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    body = b'<base href="https://www.gov.cn/"><form action=""><button formaction="">'
    assert rw(body).body == body


def test_form_action_and_formaction_are_rewritten(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<form action="http://evil.example/f"><input type=submit formaction=\'//evil.example/g\'>'
           b'<button formaction=http://evil.example/h>')
    assert r.rewritten == 3
    assert [f.kind for f in r.found] == [LinkKind.ACTION, LinkKind.FORMACTION, LinkKind.FORMACTION]
    assert b"formaction='" + leave("https://evil.example/g", keys) + b"'" in r.body


def test_unquoted_value_is_written_unquoted_with_amp_escaped(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b"<a href=http://evil.example/ class=x>")
    assert r.body == b"<a href=" + leave("http://evil.example/", keys) + b" class=x>"
    assert b"&amp;sig=" in r.body


@pytest.mark.parametrize(("content", "expected"), [
    ("5; url=http://e.com/", ("5", "http://e.com/")),
    ("0;URL='http://e.com/'x", ("0", "http://e.com/")),
    ("1, http://e.com/", ("1", "http://e.com/")),
    ("1 u=http://e.com/", ("1", "u=http://e.com/")),
    ("1;url = \"x\"", ("1", "x")),
    ("5", None), ("x;url=y", None), ("5x;url=y", None), (".5;url=y", (".5", "y")),
])
def test_meta_refresh_content_is_parsed_as_the_standard_says(content: str,
                                                              expected: tuple[str, str] | None) -> None:
    assert refresh_url(content) == expected


def test_meta_refresh_to_an_external_site_is_rewritten(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<meta http-equiv="Refresh" content="3; url=http://evil.example/">')
    assert r.body == b'<meta http-equiv="Refresh" content="3;url=' + leave("http://evil.example/", keys) + b'">'
    body = b'<meta name=refresh content="3; url=http://evil.example/">'
    assert rw(body).body == body


@pytest.mark.parametrize("label", ["gb2312", "GBK", "x-gbk", "gb18030"])
def test_gbk_page_query_is_percent_encoded_in_gbk(rw, keys: GatewayKeys, label: str) -> None:  # type: ignore[no-untyped-def]
    body = f'<meta charset="{label}"><p>政务</p><a href="http://evil.example/s?q=中文">搜索</a>'.encode("gbk")
    r = rw(body, content_type="text/html")
    assert r.found[0].href == "http://evil.example/s?q=%D6%D0%CE%C4"
    assert r.body == body.replace("http://evil.example/s?q=中文".encode("gbk"),
                                  leave("http://evil.example/s?q=%D6%D0%CE%C4", keys))


def test_http_charset_beats_meta_and_bom_beats_both(rw) -> None:  # type: ignore[no-untyped-def]
    body = '<meta charset="utf-8"><a href="http://例子.政务/">'.encode("gbk")
    assert rw(body, content_type="text/html; charset=GBK").encoding == "GBK"
    assert rw(b"\xef\xbb\xbf" + body, content_type="text/html; charset=GBK").encoding == "UTF-8"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_pages_are_rewritten_in_place(rw, keys: GatewayKeys, codec: str) -> None:  # type: ignore[no-untyped-def]
    bom = "\ufeff".encode(codec)
    text = '<p>中文 𝄞</p><a href="http://例子.政务/">ok</a><a href="http://evil.example/?q=中">x</a>'
    r = rw(bom + text.encode(codec), content_type="text/html")
    href = "http://evil.example/?q=%E4%B8%AD"  # UTF-16 documents use UTF-8 for URLs
    expected = bom + text.replace("http://evil.example/?q=中", leave(href, keys).decode()).encode(codec)
    assert r.body == expected


def test_big5_and_shift_jis_pages_are_scanned_as_bytes(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    for label, codec in (("big5", "big5"), ("shift_jis", "cp932")):
        body = f'<meta charset={label}><p>表示</p><a href="http://evil.example/">ソ表</a>'.encode(codec)
        r = rw(body)
        assert r.rewritten == 1
        assert r.body == body.replace(b"http://evil.example/", leave("http://evil.example/", keys))


def test_leave_url_carries_the_percent_encoded_destination(keys: GatewayKeys) -> None:
    url = "https://evil.example/a%20b?x=1&y=+2&z='\"#f"
    made = leave_url(PREFIX, url, keys)
    assert made.startswith(f"{PREFIX}/leave?url={encode_url_param(url)}&sig=")
    assert parse_qs(made.split("?", 1)[1])["url"] == [url]
    assert not any(c in made.split("&sig=")[0] for c in "'\"<> +#")
    assert verify_leave(url, made.rsplit("sig=", 1)[1], keys)
    assert not verify_leave(url + "x", made.rsplit("sig=", 1)[1], keys)


def test_iframe_srcdoc_documents_have_their_links_rewritten(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b'<iframe srcdoc="<p>\xe4\xb8\xad</p><a href=&quot;http://evil.example/&quot;>x</a><a href=/ok>y</a>">'
           b"</iframe>")
    assert r.rewritten == 1
    inner = leave("http://evil.example/", keys).replace(b"&amp;", b"&amp;amp;")
    assert r.body == (b'<iframe srcdoc="&lt;p&gt;\xe4\xb8\xad&lt;/p&gt;&lt;a&#32;href=&quot;' + inner
                      + b'&quot;&gt;x&lt;/a&gt;&lt;a&#32;href=/ok&gt;y&lt;/a&gt;"></iframe>')
    body = b"<iframe srcdoc='<a href=/ok>same site</a>'></iframe>"
    assert rw(body).body == body


def test_iframe_srcdoc_resolves_against_the_parent_base(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    r = rw(b"<base href='http://evil.example/d/'><iframe srcdoc='<a href=x>x</a>'></iframe>")
    assert leave("http://evil.example/d/x", keys).replace(b"&amp;", b"&amp;amp;") in r.body


# A host holding FULLWIDTH PERCENT SIGN U+FF05 (raw, or as %EF%BC%85) is a failure by the WHATWG URL
# standard (ada-url), but Chromium maps it to "%" (UTS 46) and percent-decodes again: these are the
# hrefs Chromium gives (each checked in Chromium 156 by reading ``a.href``). The page is DOC_URL (https).
FULLWIDTH_PERCENT_EXTERNAL = [
    ("http://％４１.com", "http://a.com/"),
    ("http://%ef%bc%85%ef%bc%94%ef%bc%91.com", "http://a.com/"),
    ("http://%EF%BC%85%Ef%bC%94%eF%BC%91.com", "http://a.com/"),
    ("http://ｅｖｉｌ％２ｅexample/", "http://evil.example/"),
    ("http://evil％２Ｅexample/", "http://evil.example/"),
    ("http://evil%ef%bc%85%32%65example/", "http://evil.example/"),
    ("http://evil﹪2eexample/", "http://evil.example/"),  # SMALL PERCENT SIGN U+FE6A: the same
    ("//％65vil.example/x", "https://evil.example/x"),
    ("\\\\％65vil.example/x", "https://evil.example/x"),
    ("https://％65vil.example/", "https://evil.example/"),
    ("http:％65vil.example/x", "http://evil.example/x"),  # another scheme than the page's: an authority
    ("http://www.gov.cn％2eevil.example/", "http://www.gov.cn.evil.example/"),
    ("http://www.gov.cn@％65vil.example:8080/p?q#f", "http://www.gov.cn@evil.example:8080/p?q#f"),
    ("http://％31％32％37.0.0.1/", "http://127.0.0.1/"),
    ("http://％5b::1]:8080/", "http://[::1]:8080/"),  # Chromium splits host and port at the last ":"
    ("http://[::１]/", "http://[::1]/"),  # fullwidth digits in an IPv6 literal: mapped by Chromium too
    ("http://％４１ß.com/", "http://xn--a-7ka.com/"),  # the punycode label decoded again: "xn--%41-7ka"
]


@pytest.mark.parametrize(("value", "expected_href"), FULLWIDTH_PERCENT_EXTERNAL)
def test_fullwidth_percent_hosts_go_where_chromium_goes(rw, keys: GatewayKeys, value: str,  # type: ignore[no-untyped-def]
                                                        expected_href: str) -> None:
    r = rw(b'<meta charset="utf-8"><a href="' + value.encode() + b'">x</a>')
    assert r.found[0].href == expected_href
    assert r.rewritten == 1
    new = r.body.split(b'href="', 1)[1].split(b'"', 1)[0].replace(b"&amp;", b"&").decode()
    assert parse_qs(new.split("?", 1)[1])["url"] == [expected_href]


def test_fullwidth_percent_hosts_are_rewritten_by_the_production_scan(classifier: HostClassifier,
                                                                       keys: GatewayKeys) -> None:
    # collect=False: the scan that jumps over same-host <a href="..."> values in bulk, as served.
    links = "".join(f'<a href="{v}">x</a><form action="{v}"></form>' for v, _ in FULLWIDTH_PERCENT_EXTERNAL)
    r = rewrite_html(f'<meta charset="utf-8"><a href="/ok">ok</a>{links}'.encode(), content_type="text/html",
                     document_url=DOC_URL, classifier=classifier,
                     make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys))
    assert r.rewritten == 2 * len(FULLWIDTH_PERCENT_EXTERNAL)
    hrefs = [href for _, href in FULLWIDTH_PERCENT_EXTERNAL]
    for href in hrefs:
        assert r.body.count(leave(href, keys)) == 2 * hrefs.count(href)


@pytest.mark.parametrize(("value", "href"), [
    ("http://www％2egov.cn/", "http://www.gov.cn/"),  # Chromium goes to www.gov.cn: internal
    ("http://ｗｗｗ％２ｅｇｏｖ．ｃｎ/x", "http://www.gov.cn/x"),
    ("//portal％2eexample.gov.cn/x", "https://portal.example.gov.cn/x"),
    # Chromium fails on these as the spec does: the browser goes nowhere, the link stays as written
    ("http://a／b.example/", None), ("http://www.gov.cn＠evil.example/", None), ("http://evil.example：8080/", None),
    ("http://evil.example？.gov.cn/", None), ("http://evil.example＃.gov.cn/", None), ("http://a℀b.com/", None),
    ("http://％zz.com/", None), ("http://％2541.com/", None), ("http://％ｅ5vil.example/", None),
    ("http://%4１.com/", None), ("http://％65vil.example％3a81/", None), ("http://evil％2fwww.gov.cn/", None),
    ("http://％65vil.example:８０/", None), ("http://％C3％A9.com/", None), ("http://%EF%BC%85%65vil.example/", None),
    ("http://evil%ef%bc%85%ef%bc%85example/", None), ("http://a\u200d％2eb.com/", None),
    ("http://[::1％5d:8080/", None), ("http://evil％20example/", None),
])
def test_fullwidth_percent_hosts_that_stay_or_go_nowhere_are_untouched(rw, value: str,  # type: ignore[no-untyped-def]
                                                                       href: str | None) -> None:
    body = b'<meta charset="utf-8"><a href="' + value.encode() + b'">x</a>'
    r = rw(body)
    assert r.body == body
    assert r.found[0].href == href


@pytest.mark.parametrize(("label", "codec"), [("gbk", "gbk"), ("gb18030", "gb18030"), ("big5", "big5"),
                                              ("shift_jis", "cp932")])
def test_fullwidth_percent_host_on_a_legacy_encoded_page(rw, keys: GatewayKeys, label: str,  # type: ignore[no-untyped-def]
                                                         codec: str) -> None:
    # U+FF05 is a two-byte character in these encodings; the value is decoded before it is resolved.
    value = "http://www.gov.cn％2eevil.example/s?q=％"
    body = f'<meta charset="{label}"><p>中文</p><a href="{value}">x</a><a href="http://www％2egov.cn/">y</a>'
    raw = body.encode(codec)
    assert "％".encode(codec) in raw
    assert "％".encode(codec) != "％".encode()
    r = rw(raw)
    # The query in the page's encoding (an ASCII trail byte, as Big5's "H" in A2 48, stays as it is).
    query = "".join(f"%{b:02X}" if b >= 0x80 else chr(b) for b in "％".encode(codec))
    href = f"http://www.gov.cn.evil.example/s?q={query}"
    assert r.found[0].href == href
    assert r.rewritten == 1
    assert r.body == raw.replace(value.encode(codec), leave(href, keys))


def test_base_href_with_a_fullwidth_percent_host_is_the_base(rw, keys: GatewayKeys) -> None:  # type: ignore[no-untyped-def]
    # Chromium takes http://evil.example/d/ as the base, so "/x" leads there: warned, not left as on-site.
    r = rw('<meta charset="utf-8"><base href="http://％65vil.example/d/"><a href="/x">x</a><a href="y">y</a>'.encode())
    assert r.base_url == "http://evil.example/d/"
    assert leave("http://evil.example/x", keys) in r.body
    assert leave("http://evil.example/d/y", keys) in r.body


# -- a form's target gets the form target, told the page's form encoding ------------------------------------

def _form_rw(classifier: HostClassifier, keys: GatewayKeys, body: bytes, content_type: str = "text/html",
             *, xhtml: bool = False) -> tuple[RewriteResult, list[tuple[str, str]]]:
    from govgate.core.link_rewrite import rewrite_xhtml

    made: list[tuple[str, str]] = []

    def make_form_url(url: str, charset: str) -> str:
        made.append((url, charset))
        return ORIGIN + leave_form_url(PREFIX, url, charset, keys)

    rewrite = rewrite_xhtml if xhtml else rewrite_html
    result = rewrite(body, content_type=content_type, document_url=DOC_URL, classifier=classifier,
                     make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys), make_form_url=make_form_url)
    return result, made


def test_form_targets_get_the_form_target_and_links_the_leave_url(classifier: HostClassifier,
                                                                   keys: GatewayKeys) -> None:
    page = (b'<form action="https://search.example.org/s?x=1" method=get><button formaction="//b.example/p">b</button>'
            b'<input type=submit formaction="http://c.example/">'
            b'</form><a href="https://search.example.org/s?x=1">link</a><form action="/local"></form>')
    result, made = _form_rw(classifier, keys, page)
    # A page without a declared charset is windows-1252 (the HTML default), and submits its forms so.
    assert made == [("https://search.example.org/s?x=1", "windows-1252"), ("https://b.example/p", "windows-1252"),
                    ("http://c.example/", "windows-1252")]
    assert result.body.count(b"/__govgate/leave-form/") == 3
    assert result.body.count(b"/__govgate/leave?url=") == 1
    assert b'<form action="/local">' in result.body


@pytest.mark.parametrize(("body", "content_type", "charset"), [
    (b'<meta charset="gbk"><form action="http://e.example/">', "text/html", "GBK"),
    (b'<form action="http://e.example/">', "text/html; charset=gb2312", "GBK"),
    (b'<form action="http://e.example/">', "text/html; charset=big5", "Big5"),
    (b'<form action="http://e.example/">', "text/html; charset=utf-8", "UTF-8"),
    (b'<form action="http://e.example/">', "text/html", "windows-1252"),  # no charset: the HTML default
    ('<form action="http://e.example/">'.encode("utf-16-le"), "text/html; charset=utf-16le", "UTF-8"),
])
def test_the_form_target_is_told_the_encoding_the_page_submits_in(classifier: HostClassifier, keys: GatewayKeys,
                                                                  body: bytes, content_type: str, charset: str) -> None:
    _, made = _form_rw(classifier, keys, body, content_type)
    assert made == [("http://e.example/", charset)]


def test_a_form_inside_srcdoc_submits_utf8(classifier: HostClassifier, keys: GatewayKeys) -> None:
    body = b'<meta charset="gbk"><iframe srcdoc="&lt;form action=&quot;http://e.example/&quot;&gt;"></iframe>'
    _, made = _form_rw(classifier, keys, body)
    assert made == [("http://e.example/", "UTF-8")]


def test_xhtml_form_targets_get_the_form_target(classifier: HostClassifier, keys: GatewayKeys) -> None:
    body = (b'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
            b'<form action="http://e.example/"/><a href="http://e.example/">x</a></body></html>')
    result, made = _form_rw(classifier, keys, body, "application/xhtml+xml", xhtml=True)
    assert made == [("http://e.example/", "UTF-8")]
    assert b"/leave-form/UTF-8/" in result.body
    assert b"/leave?url=" in result.body
