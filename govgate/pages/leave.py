"""The Art. 15 warning page shown before leaving for a non-government site, and its 400 page.

Owns the HTML only: the gateway's router calls ``leave_page`` for ``GET {prefix}/leave`` and writes
the audit event from the returned ``LeaveView``. A missing or wrong ``sig`` gets a 400 page that
does not contain the destination at all, so the gateway can never be used as an open redirect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ada_url

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_params, verify_leave
from govgate.core.policy.model import Policy
from govgate.pages.layout import PAGE_HEADERS, Page, esc, html_page


@dataclass(frozen=True, slots=True)
class LeaveView:
    page: Page
    valid: bool  # the sig matched: the page names the destination
    destination_host: str | None  # ASCII (punycode) host, for the audit record; None when invalid
    reason: str | None = None  # why invalid: "missing", "bad_signature", "bad_url"


def _host_display(ascii_host: str) -> tuple[str, str | None]:
    """(Unicode form, punycode form when it differs) of a URL's host."""
    try:
        converted: str | bytes = ada_url.idna_to_unicode(ascii_host)
    except (ValueError, UnicodeError):
        return ascii_host, None
    unicode_host = converted.decode("utf-8", "replace") if isinstance(converted, bytes) else converted
    if not unicode_host or unicode_host == ascii_host:
        return ascii_host, None
    return unicode_host, ascii_host


def safe_back(path: str | None) -> str:
    """A same-site path for the "back" link: anything else becomes "/"."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path or not path.isprintable():
        return "/"
    return path


def invalid_leave_page(reason: str) -> LeaveView:
    """400: the link was not made by this gateway (or was altered). Says nothing about where it pointed."""
    page = html_page(
        "链接无效 Invalid link",
        "<h1>链接无效</h1><p>此外部链接提示地址不完整或已被改动，无法确认其目的地，因此不会为您跳转。</p>"
        "<p>请返回原页面重新点击链接；如问题持续，请联系网站管理员。</p>"
        "<div class=\"actions\"><a class=\"button secondary\" href=\"/\">返回首页</a></div>",
        "<h2>Invalid link</h2><p>This leave-site link is incomplete or has been altered, so its destination "
        "cannot be confirmed and you will not be redirected. Go back and click the link again; if the problem "
        "persists, contact the site administrator.</p>",
        status=400, headers=PAGE_HEADERS,
    )
    return LeaveView(page=page, valid=False, destination_host=None, reason=reason)


def leave_page(policy: Policy, keys: GatewayKeys, query: Mapping[str, str] | str, *,
               back: str | None = None) -> LeaveView:
    """The warning page for ``GET {prefix}/leave?url=…&sig=…``; 400 unless ``sig`` is ours for ``url``.

    ``back`` is an optional same-site path for the "back" link (e.g. from the Referer); default "/".
    """
    del policy  # the page needs nothing from the policy today; kept for the router's stable call
    params = leave_params(query)
    if params is None:
        return invalid_leave_page("missing")
    url, sig = params
    # Art. 15 (第十五条): only links the gateway itself rewrote are honoured (no open redirect).
    if not verify_leave(url, sig, keys):
        return invalid_leave_page("bad_signature")
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        return invalid_leave_page("bad_url")
    ascii_host = parsed.hostname
    # Only an http(s) destination is ever rendered as the continue link, whatever was signed.
    if parsed.protocol not in ("http:", "https:") or not ascii_host:
        return invalid_leave_page("bad_url")
    unicode_host, punycode = _host_display(ascii_host)
    host_html = esc(unicode_host)
    if punycode is not None:
        host_html += f" <span class=\"meta\">({esc(punycode)})</span>"
    back_href = esc(safe_back(back))
    continue_link = (f"<a class=\"button\" href=\"{esc(url)}\" rel=\"noopener noreferrer\" "
                     f"referrerpolicy=\"no-referrer\">继续访问 Continue</a>")
    back_link = f"<a class=\"button secondary\" href=\"{back_href}\">返回 Back</a>"
    zh = (
        "<h1>您即将离开本网站</h1>"
        "<p>您点击的链接将前往以下非政府网站。该网站不受本单位管理，其内容与安全由其运营者负责。</p>"
        f"<p class=\"host\">{host_html}</p>"
        f"<p class=\"url\">{esc(url)}</p>"
        "<p>请确认网址无误后再继续。请勿在外部网站输入您的工作账号、密码或验证码。</p>"
        f"<div class=\"actions\">{continue_link}{back_link}</div>"
        "<p class=\"meta\">依据《互联网政务应用安全管理规定》第十五条提示</p>"
    )
    en = (
        "<h2>You are about to leave this site</h2>"
        f"<p>The link you clicked goes to a non-government site, <strong>{esc(unicode_host)}</strong>"
        + (f" ({esc(punycode)})" if punycode else "")
        + ". That site is not run by this organisation, which is not responsible for its content or security. "
        "Check the address before you continue, and never enter your work account, password or codes there.</p>"
        "<p class=\"meta\">Warning required by Article 15 of the Regulations on the Security Management of "
        "Internet Government Applications.</p>"
    )
    page = html_page("即将离开本网站 Leaving this site", zh, en, status=200, headers=PAGE_HEADERS)
    return LeaveView(page=page, valid=True, destination_host=ascii_host)
