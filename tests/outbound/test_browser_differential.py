"""Differential test against headless Chromium: where every link really goes, before and after rewriting.

Each corpus page (``browser_corpus``) is served from 127.0.0.1 twice at the same URL: as written,
then as ``rewrite_html`` left it. Chromium reports where each ``a``/``area`` (``href``), ``form``
(``action``), ``button``/``input`` (``formAction``) and ``meta refresh`` leads. For every one: if the
original destination is external by the policy, the rewritten one must be the signed leave URL of
exactly that destination (WHATWG serialisation, as the browser resolved it, query encoding included) —
for a form's target the signed form target, as the gateway writes it (``leave-form``, the destination
in its path); otherwise it must be unchanged. A link the scanner missed, or resolved differently, fails the test.

The WHATWG URL test data (``wpt_urls``: web-platform-tests' urltestdata.json, from Debian's
librust-url-dev) is served the same way, one page per ``<base href>``. Cases listed in
``wpt_urls.KNOWN_CHROMIUM_DEVIATIONS`` are checked only for the security property: a destination that
Chromium takes to an external host must still go through the leave page.
"""

from __future__ import annotations

import base64
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import ada_url
import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_form_url, leave_url, verify_leave, verify_leave_form
from govgate.core.link_rewrite import RewriteRefused, refresh_url, rewrite_html, rewrite_xhtml
from govgate.core.outbound import HostClassifier

from .browser_corpus import (
    CHARSET_PAGES,
    MARKUP_CASES,
    READ_BOTH_WAYS,
    REFUSED_MARKUP,
    URL_BATCH_ENCODINGS,
    URL_CASES,
    XHTML_CASES,
    charset_page,
    xhtml_page,
)
from .conftest import PREFIX, outbound_policy
from .wpt_urls import KNOWN_CHROMIUM_DEVIATIONS, WPT_GLOB, WptCase, wpt_page
from .wpt_urls import load as load_wpt

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEYS = GatewayKeys.from_bytes(b"d" * 32)

COLLECT_JS = """() => {
  const abs = (v) => { try { return new URL(v, document.baseURI).href } catch (e) { return v } };
  const links = [];
  const roots = [document];  // declarative shadow roots hold live links too
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) { roots.push(el.shadowRoot); walk(el.shadowRoot); }
  };
  walk(document);
  const XLINK = 'http://www.w3.org/1999/xlink';
  for (const el of roots.flatMap(root => Array.from(root.querySelectorAll('*')))) {  // by interface: XHTML too
    let v = null;
    if (el instanceof HTMLAnchorElement || el instanceof HTMLAreaElement) { if (el.hasAttribute('href')) v = el.href; }
    else if (el instanceof SVGAElement) {  // href, else xlink:href whatever its prefix
      if (el.hasAttribute('href') || el.hasAttributeNS(XLINK, 'href')) v = abs(el.href.baseVal);
    }
    else if (el instanceof HTMLFormElement) { if (el.hasAttribute('action')) v = el.action; }
    else if (el instanceof HTMLButtonElement || el instanceof HTMLInputElement) {
      if (el.hasAttribute('formaction')) v = el.formAction;
    }
    if (v !== null) links.push(v);
  }
  for (const frame of document.querySelectorAll('iframe[srcdoc]')) {  // links of srcdoc documents count too
    const doc = frame.contentDocument;
    if (!doc) continue;
    for (const el of doc.querySelectorAll('a[href], area[href], form[action]'))
      links.push(el instanceof HTMLFormElement ? el.action : el.href);
  }
  const metas = Array.from(document.querySelectorAll('meta[http-equiv]'))
    .filter(m => m.httpEquiv.trim().toLowerCase() === 'refresh').map(m => m.content);
  // The whole DOM with the navigation attributes taken out: must be identical before and after.
  const clone = document.documentElement.cloneNode(true);
  for (const el of clone.querySelectorAll('noscript')) el.remove();  // text with scripting on: rewritten too
  for (const el of [clone, ...clone.querySelectorAll('*')]) {
    for (const a of Array.from(el.attributes)) {
      if (['href', 'action', 'formaction', 'srcdoc'].includes(a.localName)) el.removeAttributeNode(a);
    }
    if (el.localName === 'meta' && (el.getAttribute('http-equiv') || '').trim().toLowerCase() === 'refresh')
      el.removeAttribute('content');
  }
  const templates = Array.from(clone.querySelectorAll('template'), t => t.innerHTML);
  return {links, metas, base: document.baseURI, charset: document.characterSet, dom: clone.outerHTML, templates};
}"""
RESOLVE_JS = "(u) => { try { return new URL(u, document.baseURI).href } catch (e) { return null } }"


@dataclass
class Served:
    path: str
    original: bytes
    content_type: str
    rewritten: bytes = b""
    label: str = ""
    inputs: tuple[str, ...] = ()  # a page of URL cases: each link's value, in order (for messages)
    wpt: tuple[WptCase, ...] = ()  # a WHATWG URL test data page: its links, in order


class Site:
    """A tiny HTTP server on 127.0.0.1 that serves each page as written or as rewritten."""

    def __init__(self) -> None:
        self.pages: dict[str, Served] = {}
        self.rewritten = False
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = site.pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                body = page.rewritten if site.rewritten else page.original
                self.send_response(200)
                self.send_header("Content-Type", page.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def build_pages(site: Site) -> list[Served]:
    pages: list[Served] = []
    batch = 40
    for label, codec in URL_BATCH_ENCODINGS:
        for n in range(0, len(URL_CASES), batch):
            links = "".join(f'<a href="{v}">{i}</a>\n' for i, v in enumerate(URL_CASES[n:n + batch]))
            body = f'<!doctype html><meta charset="{label}"><title>urls</title><body>\n{links}</body>'
            pages.append(Served(f"/urls/{label}/{n}/sub/page.html?x=1", body.encode(codec, "xmlcharrefreplace"),
                                "text/html", label=f"{label} url batch {n}", inputs=tuple(URL_CASES[n:n + batch])))
    for i, (label, markup) in enumerate(MARKUP_CASES):
        body = (f'<!doctype html><meta charset="utf-8"><body><p>case</p>{markup}'
                '<a href="http://evil.example/marker">m</a><a href="/marker">m</a>').encode()
        pages.append(Served(f"/markup/{i}/page.html", body, "text/html", label=label))
    for name, encoding, ctype, prefix in CHARSET_PAGES:
        pages.append(Served(f"/charset/{name}/page.html", charset_page(encoding, prefix), ctype, label=name))
    for i, (label, markup) in enumerate(XHTML_CASES):
        pages.append(Served(f"/xhtml/{i}/page.xhtml", xhtml_page(markup), "application/xhtml+xml", label=label))
    by_base: dict[str | None, list[WptCase]] = {}
    for case in load_wpt()[0]:
        by_base.setdefault(case.base, []).append(case)
    for i, (base, cases) in enumerate(by_base.items()):
        pages.append(Served(f"/wpt/{i}/dir/page.html", wpt_page(base, cases), "text/html",
                            label=f"wpt base {base!r}", inputs=tuple(c.input for c in cases), wpt=tuple(cases)))
    classifier = HostClassifier.from_policy(outbound_policy())
    refused: list[Served] = []
    for page in pages:
        rewrite = rewrite_xhtml if page.content_type == "application/xhtml+xml" else rewrite_html
        expected = REFUSED_MARKUP.get(page.label) if page.path.startswith("/markup/") else None
        try:
            result = rewrite(page.original, content_type=page.content_type, document_url=site.origin + page.path,
                             classifier=classifier, make_leave_url=lambda u: site.origin + leave_url(PREFIX, u, KEYS),
                             make_form_url=lambda u, c: site.origin + leave_form_url(PREFIX, u, c, KEYS))
        except RewriteRefused as exc:
            reason: str | None = exc.reason.value
        else:
            reason = None
        assert reason == expected, f"{page.label}: refused for {reason!r}, expected {expected!r}"
        if reason is not None:
            refused.append(page)
            continue
        page.rewritten = result.body
        site.pages[page.path] = page
    assert len(refused) == len(REFUSED_MARKUP), [p.label for p in refused]
    return [page for page in pages if page not in refused]


# A leave URL as the rewriter writes it into raw text (``&`` as ``&amp;``, which raw text keeps as it is).
_LEAVE_IN_TEXT = re.compile(
    r"http://127\.0\.0\.1:[0-9]+" + re.escape(PREFIX) + r"/leave\?url=([^&\s\"'>]*)&amp;sig=[\w-]{43}")


# The same for a form's target (``leave_form_url``: the destination base64url-encoded in the path).
_LEAVE_FORM_IN_TEXT = re.compile(
    r"http://127\.0\.0\.1:[0-9]+" + re.escape(PREFIX) + r"/leave-form/[\w-]+/([\w-]+)/[\w-]+")


def _unrewritten(html: str) -> str:
    """``html`` with every leave URL the rewriter wrote put back to its destination."""
    html = _LEAVE_IN_TEXT.sub(lambda m: unquote(m[1]), html)
    return _LEAVE_FORM_IN_TEXT.sub(
        lambda m: base64.urlsafe_b64decode(m[1] + "=" * (-len(m[1]) % 4)).decode("utf-8"), html)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as s:
        yield s


def test_corpus_has_at_least_200_cases() -> None:
    # Hand-written: enough on its own, whether or not the WHATWG URL test data is installed.
    assert len(URL_CASES) + len(MARKUP_CASES) + 6 * len(CHARSET_PAGES) >= 200


def test_whatwg_url_test_data_is_used() -> None:
    cases, skipped = load_wpt()
    if not cases:
        pytest.skip(f"WHATWG URL test data not installed ({WPT_GLOB}; scripts/setup --test installs librust-url-dev)")
    entries = {(c.input, c.href) for c in cases}
    assert len(entries) >= 400, skipped  # 462 of the 687 entries of url 2.3.1's copy
    assert {c.variant for c in cases} == {"data", "internal", "page"}
    used = {(c.input, c.base) for c in cases}
    stale = set(KNOWN_CHROMIUM_DEVIATIONS) - used
    assert not stale, f"known deviations that are no case of the data: {stale}"


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
def test_rewritten_links_lead_where_the_browser_would_have_gone_or_to_the_leave_page(site: Site) -> None:
    from playwright.sync_api import sync_playwright

    pages = build_pages(site)
    classifier = HostClassifier.from_policy(outbound_policy()).with_internal("127.0.0.1")

    def external(href: str | None) -> bool:
        # Only http(s) destinations are ever signed; any other scheme is left as written.
        if href is None or not href.lower().startswith(("http:", "https:")):
            return False
        try:
            host = ada_url.URL(href).hostname
        except ValueError:
            # E.g. "http://a%20b/", Chromium's reading of "http://a b/" (a failure by the spec): Chromium
            # fails such a name without sending a DNS query, so the link reaches no host.
            return False
        return bool(host) and classifier.is_external(host)

    def leave_destination(href: str) -> str | None:
        """The destination the warning page would name for ``href``: a link's or, as the gateway writes a form's
        target, a form's."""
        parts = urlsplit(href)
        if f"{parts.scheme}://{parts.netloc}" == site.origin and parts.path.startswith(f"{PREFIX}/leave-form/"):
            signed = verify_leave_form(parts.path.removeprefix(f"{PREFIX}/leave-form/"), KEYS)
            return None if signed is None or parts.query or parts.fragment else signed[0]
        if f"{parts.scheme}://{parts.netloc}" != site.origin or parts.path != f"{PREFIX}/leave":
            return None
        q = parse_qs(parts.query)
        if len(q.get("url", [])) != 1 or len(q.get("sig", [])) != 1:
            return None
        return q["url"][0] if verify_leave(q["url"][0], q["sig"][0], KEYS) else None

    failures: list[str] = []
    checked = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site.origin)
                      else route.abort())
        tab = context.new_page()
        seen: dict[bool, dict[str, dict[str, Any]]] = {False: {}, True: {}}
        metas: dict[bool, dict[str, list[str | None]]] = {False: {}, True: {}}
        for rewritten in (False, True):
            site.rewritten = rewritten
            for page in pages:
                tab.goto(site.origin + page.path, wait_until="load")
                info = tab.evaluate(COLLECT_JS)
                seen[rewritten][page.path] = info
                resolved: list[str | None] = []
                for content in info["metas"]:
                    parsed = refresh_url(content)
                    resolved.append(tab.evaluate(RESOLVE_JS, parsed[1]) if parsed else None)
                metas[rewritten][page.path] = resolved
        browser.close()

    for page in pages:
        before, after = seen[False][page.path], seen[True][page.path]
        if before["charset"].lower() != after["charset"].lower():
            failures.append(f"{page.label}: charset {before['charset']} became {after['charset']}")
        after_dom = after["dom"]
        after_templates = after["templates"]
        if page.label in READ_BOTH_WAYS:
            # Raw text, a comment or a template's contents that another browser reads as markup: its links are
            # rewritten, the text changes by those only.
            after_dom = _unrewritten(after_dom)
            after_templates = [_unrewritten(t) for t in after_templates]
            if after_dom == after["dom"]:
                failures.append(f"{page.label}: the link that raw text holds for another parser was not rewritten")
        if before["dom"] != after_dom or before["templates"] != after_templates:
            failures.append(f"{page.label}: something other than a navigation URL changed")
        if page.wpt and page.wpt[0].base is not None and before["base"] != ada_url.URL(page.wpt[0].base).href:
            failures.append(f"{page.label}: Chromium did not take the base, its base URL is {before['base']!r}")
        pairs = list(zip(before["links"], after["links"], strict=False)) + list(
            zip(metas[False][page.path], metas[True][page.path], strict=False))
        if len(before["links"]) != len(after["links"]) or len(before["metas"]) != len(after["metas"]):
            failures.append(f"{page.label}: {len(before['links'])} links became {len(after['links'])}")
            continue
        for n, (was, now) in enumerate(pairs):
            checked += 1
            case = page.wpt[n] if n < len(page.wpt) else None
            where = f"{page.label}, input {page.inputs[n]!r}" if n < len(page.inputs) else page.label
            if case is not None and case.lenient:
                # A known Chromium deviation from the spec: the leave page must still come first.
                if external(was) and leave_destination(now or "") is None:
                    failures.append(f"{where} ({case.lenient}): external {was!r} became {now!r}")
                continue
            if external(was):
                if was is None or leave_destination(now or "") != was:
                    failures.append(f"{where}: external {was!r} became {now!r}")
            elif was != now:
                failures.append(f"{where}: internal {was!r} was changed to {now!r}")
    assert checked >= 200 + len(load_wpt()[0])
    assert not failures, "\n".join(failures)
