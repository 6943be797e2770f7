"""The WHATWG URL test data as browser differential cases (web-platform-tests ``url/resources/urltestdata.json``).

The file is not vendored: Debian's ``librust-url-dev`` (installed by ``scripts/setup --test``) ships it as
``/usr/share/cargo/registry/url-<version>/tests/urltestdata.json``; the newest version there is used.

Selection rule (each entry that is an object; the strings are comments):

* the input or the base holds U+0000 or a lone surrogate: skipped, no HTML attribute value can be exactly
  that (a NUL, written or as ``&#0;``, becomes U+FFFD; a surrogate cannot be encoded);
* the base is an http(s) URL: served under ``<base href="BASE">``, as the data has it (its host is
  external, so nearly every link is rewritten and its leave URL must name exactly what Chromium resolved),
  and once more under the same base with the host moved to ``www.gov.cn`` (internal: the rewriter's
  same-host shortcuts then decide, and must never keep a link that Chromium takes off the site);
* any other base (``about:blank`` in older data, ``null`` in newer, ``file:``, ``sc:``...): only when
  the input, as the URL parser sees it (C0 controls and spaces stripped, tab/LF/CR removed), starts with
  an http(s)/ws(s)/ftp scheme, i.e. it is an absolute link whatever the base; served without ``<base>``,
  so that the page's own ``http://127.0.0.1`` URL is the base (a same-scheme input without "//", such as
  ``http:foo``, is then relative to the page: still a valid differential case). The rest (relative to a
  non-http base, non-special or file: URLs) is not about where an http page's link leads, and is skipped.

Failures (``"failure": true``) are kept: Chromium must not reach an external host through a link that the
rewriter could not parse.
"""

from __future__ import annotations

import glob
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path

import ada_url

WPT_GLOB = "/usr/share/cargo/registry/url-*/tests/urltestdata.json"
INTERNAL_HOST = "www.gov.cn"  # internal by outbound_policy() (government suffix gov.cn)

# Known disagreements between Chromium and the spec (and so ada-url, which the rewriter uses), by
# (input, base as served, None: the page's own URL). Only cases where the rewritten page still sends the
# user through the leave page when Chromium would go to an external host (or where Chromium goes nowhere
# external) may be listed: for these the test checks only that (see ``test_browser_differential``).
KNOWN_CHROMIUM_DEVIATIONS: dict[tuple[str, str | None], str] = {
    ("http://!\"$&'()*+,-.;=_`{}~/", None): "Chromium writes '*' in a host as %2A (spec keeps it); still warned",
}

_SPECIAL = re.compile(r"(?i)(?:https?|wss?|ftp):")
_C0_SPACE = "".join(map(chr, range(0x21)))


@dataclass(frozen=True)
class WptCase:
    input: str
    base: str | None  # the <base href> it is served under; None: the page's own URL
    href: str | None  # the data's expected href (None: failure); meaningful only when ``base`` is the data's
    variant: str  # "data" (the data's base), "internal" (its host moved to INTERNAL_HOST), "page" (no <base>)
    lenient: str = ""  # reason from KNOWN_CHROMIUM_DEVIATIONS, "" if none


def data_file() -> Path | None:
    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"url-([0-9.]+)/", path)
        return tuple(int(p) for p in m.group(1).split(".") if p) if m else ()

    found = sorted(glob.glob(WPT_GLOB), key=version)
    return Path(found[-1]) if found else None


def html_attr(value: str) -> str | None:
    """``value`` written for a double-quoted attribute so that the DOM value is exactly ``value``, or None.

    ``& < > "`` are escaped; C0 controls other than tab and LF, and DEL, become numeric references
    (``&#13;`` keeps a CR that the input stream would turn into LF; control references are parse
    errors but keep their code point, only 0x80-0x9F references are remapped, so C1 controls are
    written as they are). U+0000 (always U+FFFD) and lone surrogates cannot be written: None.
    """
    out = []
    for ch in value:
        o = ord(ch)
        if o == 0 or 0xD800 <= o <= 0xDFFF:
            return None
        if (o < 0x20 and ch not in "\t\n") or o == 0x7F:
            out.append(f"&#{o};")
        else:
            out.append(escape(ch, quote=True) if ch in '&<>"' else ch)
    return "".join(out)


def _internal_base(base: str) -> str | None:
    try:
        url = ada_url.URL(base)
        url.hostname = INTERNAL_HOST
    except ValueError:
        return None
    return url.href


@cache
def load() -> tuple[tuple[WptCase, ...], tuple[tuple[str, int], ...]]:
    """(cases, (skip reason, count)...): empty when the data file is not installed."""
    path = data_file()
    if path is None:
        return (), ()
    entries = [e for e in json.loads(path.read_text(encoding="utf-8")) if isinstance(e, dict)]
    cases: list[WptCase] = []
    skipped: Counter[str] = Counter()
    for entry in entries:
        text, base = entry["input"], entry.get("base")
        href = None if entry.get("failure") else entry.get("href")
        if html_attr(text) is None or (base is not None and html_attr(base) is None):
            skipped["U+0000 or a lone surrogate: no HTML attribute value is exactly that"] += 1
            continue
        if base is not None and base.lower().startswith(("http:", "https:")):
            served: list[tuple[str | None, str]] = [(base, "data")]
            internal = _internal_base(base)
            if internal is not None:
                served.append((internal, "internal"))
        else:
            parsed = re.sub("[\t\n\r]", "", text.strip(_C0_SPACE))
            if not _SPECIAL.match(parsed):
                skipped["non-http base and no http(s)/ws(s)/ftp scheme in the input"] += 1
                continue
            served = [(None, "page")]
        for served_base, variant in served:
            reason = KNOWN_CHROMIUM_DEVIATIONS.get((text, served_base), "")
            cases.append(WptCase(text, served_base, href if variant == "data" else None, variant, reason))
    return tuple(cases), tuple(sorted(skipped.items()))


def wpt_page(base: str | None, cases: list[WptCase]) -> bytes:
    """A UTF-8 page with ``<base href="base">`` (if any) and one ``<a href>`` per case, in order."""
    head = f'<base href="{html_attr(base)}">' if base is not None else ""
    links = "".join(f'<a href="{html_attr(c.input)}">{i}</a>\n' for i, c in enumerate(cases))
    return f'<!doctype html><meta charset="utf-8">{head}<title>wpt urls</title><body>\n{links}</body>'.encode()
