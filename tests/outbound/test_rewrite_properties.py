"""Hypothesis: idempotence, nothing but the rewritten values change, pages without off-site links pass unchanged."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.core.html_scan import ScanState, scan_html
from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url
from govgate.core.link_rewrite import RewriteResult, rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode

from .conftest import DOC_URL, PREFIX

KEYS = GatewayKeys.from_bytes(b"k" * 32)
CLASSIFIER = HostClassifier(Outbound(("gov.cn",), ("*.partner.cn",), RedirectMode.WARN), ("portal.example.gov.cn",))
ORIGIN = "https://portal.example.gov.cn"

HOSTS = ["evil.example", "www.gov.cn", "portal.example.gov.cn", "a.partner.cn", "evilgov.cn", "0x7f.1", "例子.com"]
url = st.one_of(
    st.builds(lambda s, h, p: f"{s}{h}{p}", st.sampled_from(["http://", "https://", "//", "\\\\", "HTTP:\\/", " http://"]),
              st.sampled_from(HOSTS), st.sampled_from(["", "/", "/a?b=1&amp;c", "#x", ":80/p"])),
    st.sampled_from(["/x", "y.html", "?q", "#top", "", "mailto:a@evil.example", "javascript:void(0)", "&#104;ttp://e.com"]),
)
quote = st.sampled_from(['"', "'", ""])
noise = st.sampled_from([
    "<p>text</p>", "<script>var s='<a href=\"http://evil.example/\">';</script>", "<!-- <a href=//evil.example> -->",
    "<style>a{}</style>", "<textarea><a href=//e.com></textarea>", "<template><a href=/t></template>",
    "<div title='<a href=//e.com>'>", "中文", "&amp;", "<br/>", "<svg><a href=/s></a></svg>", "\n",
])


@st.composite
def pages(draw: st.DrawFn) -> bytes:
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 4))
        q = draw(quote)
        u = draw(url)
        if q == "" and (u == "" or any(c in u for c in " >\"'")):
            q = '"'
        if kind == 0:
            parts.append(f"<a class=x href={q}{u}{q}>link</a>")
        elif kind == 1:
            parts.append(f"<form action={q}{u}{q}><button formaction={q}{u}{q}>b</button></form>")
        elif kind == 2:
            parts.append(f'<meta http-equiv=refresh content="1;url={u.replace(chr(34), "")}">')
        elif kind == 3 and draw(st.booleans()):
            inner = f"<a href='{u}'>in frame</a>".replace("&", "&amp;").replace('"', "&quot;")
            parts.append(f'<iframe srcdoc="{inner}"></iframe>')
        else:
            parts.append(draw(noise))
    return "".join(parts).encode("utf-8")


def run(body: bytes) -> RewriteResult:
    return rewrite_html(body, content_type="text/html; charset=utf-8", document_url=DOC_URL, classifier=CLASSIFIER,
                        make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, KEYS), collect=True)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(pages())
def test_rewriting_is_idempotent(body: bytes) -> None:
    once = run(body)
    twice = run(once.body)
    assert twice.body == once.body
    assert twice.rewritten == 0


@SETTINGS
@given(pages())
def test_only_rewritten_values_change(body: bytes) -> None:
    result = run(body)
    # Cut every examined value out of input and output: what remains must be identical.
    def strip(b: bytes) -> bytes:
        state = ScanState()
        scan_html(b, 0, len(b), state)
        out, last = [], 0
        for _kind, start, end, _flag in state.targets:
            out.append(b[last:start])
            last = end
        out.append(b[last:])
        return b"\x00".join(out)

    assert strip(result.body) == strip(body)


@SETTINGS
@given(st.lists(st.one_of(noise, st.sampled_from(["<a href=/x>", "<a href='https://www.gov.cn/'>",
                                                    '<form action="?a=1&amp;b">', "<a href=#f>"])), max_size=12))
def test_page_without_off_site_links_comes_out_byte_for_byte(parts: list[str]) -> None:
    body = "".join(parts).encode("utf-8")
    result = run(body)
    assert result.body == body
    assert result.rewritten == 0
