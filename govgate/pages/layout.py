"""The shared page frame: one stylesheet inline (allowed by hash in the CSP), no scripts, no external assets."""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass

_CSS = """
:root{color-scheme:light;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--accent:#b5121b;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:16px/1.6 system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;color:var(--ink);background:var(--bg)}
header{background:var(--accent);color:#fff;padding:.75rem 1.25rem;font-weight:600;letter-spacing:.05em}
main{max-width:40rem;margin:2rem auto;background:#fff;border:1px solid var(--line);border-radius:8px;padding:1.5rem 2rem}
h1{font-size:1.4rem;margin:.2rem 0 .8rem}
h2{font-size:1.05rem;margin:1.5rem 0 .5rem;color:var(--muted);font-weight:600}
.en{color:var(--muted);border-top:1px solid var(--line);margin-top:1.5rem;padding-top:.5rem}
.host{font-size:1.6rem;font-weight:700;word-break:break-all;background:#fff4e5;border:2px solid #f0a020;border-radius:6px;padding:.5rem .75rem;margin:.75rem 0}
.url{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all;color:var(--muted)}
.meta{font-family:ui-monospace,monospace;font-size:.85rem;color:var(--muted)}
.error{color:var(--accent);font-weight:600}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.5rem;font-size:1rem;border:1px solid var(--line);border-radius:4px}
button,.button{display:inline-block;margin-top:1rem;padding:.5rem 1.25rem;font-size:1rem;border-radius:4px;border:1px solid var(--accent);background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}
.button.secondary{background:#fff;color:var(--ink);border-color:var(--line)}
.actions{display:flex;gap:1rem;flex-wrap:wrap;align-items:baseline}
"""

_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

def content_security_policy(form_action: str = "'self'") -> str:
    """The pages' CSP: nothing but the inline stylesheet; forms post to ``form_action``."""
    return (
        "default-src 'none'; "
        f"style-src 'sha256-{_CSS_HASH}'; "
        "img-src 'self' data:; "
        f"form-action {form_action}; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )


CSP = content_security_policy()


def page_headers(form_action: str = "'self'") -> tuple[tuple[str, str], ...]:
    return (
        ("Content-Security-Policy", content_security_policy(form_action)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    )


PAGE_HEADERS: tuple[tuple[str, str], ...] = page_headers()


@dataclass(frozen=True, slots=True)
class Page:
    """A response the gate answers itself."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()  # extra headers (Location, Set-Cookie, ...)


def esc(text: str) -> str:
    """Escape text for HTML element content and quoted attribute values."""
    return html.escape(text, quote=True)


def html_page(title: str, zh_html: str, en_html: str, *, status: int = 200,
              headers: tuple[tuple[str, str], ...] = ()) -> Page:
    """Frame already-escaped Chinese and English fragments into a full page."""
    body = (
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        "<body><header>GovGate 政务应用安全网关</header><main>"
        f"<section lang=\"zh-CN\">{zh_html}</section>"
        f"<section class=\"en\" lang=\"en\">{en_html}</section>"
        "</main></body></html>\n"
    )
    return Page(status=status, body=body.encode("utf-8"), headers=headers)
