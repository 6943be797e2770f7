"""The Art. 15 warning pages shown before leaving for a non-government site, and their 400 page.

Owns the HTML only: the gateway's router calls ``leave_page`` for ``GET {prefix}/leave`` (a link) and
``leave_form_page`` for ``{prefix}/leave-form/…`` (a form's target), and writes the audit event from the
returned ``LeaveView``. A missing or wrong ``sig`` gets a 400 page that does not contain the destination
at all, so the gateway can never be used as an open redirect.

A form submitted by GET arrives with its fields as the query: the page shows the destination with them,
the full URL the browser would have gone to, as the link to continue to. A form submitted by POST arrives
with its fields in the body: the page writes them into a form of its own, hidden, that posts them to the
destination (same encoding type, same character encoding) when the user chooses to continue; no
JavaScript, and nothing of it reaches the portal. What cannot be passed on faithfully (a file, too much)
is not passed on, and the page says so (``govgate.core.form_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ada_url

from govgate.core.charset import codec_of
from govgate.core.form_fields import MAX_BODY, MAX_FIELDS, NotCarried, PostedForm, read_posted_form
from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_params, verify_leave, verify_leave_form
from govgate.core.policy.model import Policy
from govgate.pages.layout import PAGE_HEADERS, Page, esc, html_page, page_headers


@dataclass(frozen=True, slots=True)
class LeaveView:
    page: Page
    valid: bool  # the sig matched: the page names the destination
    destination_host: str | None  # ASCII (punycode) host, for the audit record; None when invalid
    reason: str | None = None  # why invalid: "missing", "bad_signature", "bad_url"
    form: str | None = None  # a form's target: "get" or "post" (how it was submitted)
    fields: int | None = None  # POST: how many fields the continue form passes on
    not_carried: str | None = None  # POST: why the fields are not passed on (``NotCarried``)


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


@dataclass(frozen=True, slots=True)
class _Destination:
    url: str  # WHATWG serialisation
    ascii_host: str
    unicode_host: str
    punycode: str | None

    @property
    def host_html(self) -> str:
        shown = esc(self.unicode_host)
        if self.punycode is not None:
            shown += f" <span class=\"meta\">({esc(self.punycode)})</span>"
        return shown

    @property
    def host_text_en(self) -> str:
        return f"<strong>{esc(self.unicode_host)}</strong>" + (f" ({esc(self.punycode)})" if self.punycode else "")


def _destination(url: str) -> _Destination | None:
    """The destination as the page shows it; None unless it is an http(s) URL with a host."""
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        return None
    ascii_host = parsed.hostname
    # Only an http(s) destination is ever rendered as the way to continue, whatever was signed.
    if parsed.protocol not in ("http:", "https:") or not ascii_host:
        return None
    unicode_host, punycode = _host_display(ascii_host)
    return _Destination(str(parsed.href), ascii_host, unicode_host, punycode)


def _back_link(back: str | None) -> str:
    return f"<a class=\"button secondary\" href=\"{esc(safe_back(back))}\">返回 Back</a>"


_REGULATION_ZH = "<p class=\"meta\">依据《互联网政务应用安全管理规定》第十五条提示</p>"
_REGULATION_EN = ("<p class=\"meta\">Warning required by Article 15 of the Regulations on the Security Management of "
                  "Internet Government Applications.</p>")


def leave_page(policy: Policy, keys: GatewayKeys, query: Mapping[str, str] | str, *,
               back: str | None = None) -> LeaveView:
    """The warning page for ``GET {prefix}/leave?url=…&sig=…``; 400 unless ``sig`` is ours for ``url``.

    ``back`` is a same-site path for the "back" link (the page the link was on, from the Referer:
    ``govgate.core.next_path.back_path``); default "/".
    """
    del policy  # the page needs nothing from the policy today; kept for the router's stable call
    params = leave_params(query)
    if params is None:
        return invalid_leave_page("missing")
    url, sig = params
    # Art. 15 (第十五条): only links the gateway itself rewrote are honoured (no open redirect).
    if not verify_leave(url, sig, keys):
        return invalid_leave_page("bad_signature")
    dest = _destination(url)
    if dest is None:
        return invalid_leave_page("bad_url")
    continue_link = (f"<a class=\"button\" href=\"{esc(url)}\" rel=\"noopener noreferrer\" "
                     f"referrerpolicy=\"no-referrer\">继续访问 Continue</a>")
    zh = (
        "<h1>您即将离开本网站</h1>"
        "<p>您点击的链接将前往以下非政府网站。该网站不受本单位管理，其内容与安全由其运营者负责。</p>"
        f"<p class=\"host\">{dest.host_html}</p>"
        f"<p class=\"url\">{esc(url)}</p>"
        "<p>请确认网址无误后再继续。请勿在外部网站输入您的工作账号、密码或验证码。</p>"
        f"<div class=\"actions\">{continue_link}{_back_link(back)}</div>"
        f"{_REGULATION_ZH}"
    )
    en = (
        "<h2>You are about to leave this site</h2>"
        f"<p>The link you clicked goes to a non-government site, {dest.host_text_en}. That site is not run by "
        "this organisation, which is not responsible for its content or security. "
        "Check the address before you continue, and never enter your work account, password or codes there.</p>"
        f"{_REGULATION_EN}"
    )
    page = html_page("即将离开本网站 Leaving this site", zh, en, status=200, headers=PAGE_HEADERS)
    return LeaveView(page=page, valid=True, destination_host=dest.ascii_host)


# -- a form's target ----------------------------------------------------------------------------------

_NOT_CARRIED: dict[NotCarried, tuple[str, str]] = {
    NotCarried.TOO_LARGE: (f"表单内容超过 {MAX_BODY // 1024} KiB，网关无法代为转交。",
                           f"The form holds more than {MAX_BODY // 1024} KiB, more than the gateway passes on."),
    NotCarried.TOO_MANY: (f"表单字段超过 {MAX_FIELDS} 项，网关无法代为转交。",
                          f"The form has more than {MAX_FIELDS} fields, more than the gateway passes on."),
    NotCarried.FILE: ("表单包含文件，网关无法代为转交文件。",
                      "The form includes a file, which the gateway cannot pass on."),
    NotCarried.KIND: ("该表单的提交方式网关无法原样转交。", "The gateway cannot pass on a form sent this way."),
    NotCarried.ENCODING: ("表单内容无法按原样转交（字符编码不符）。",
                          "The form's text cannot be passed on unchanged (its character encoding does not fit)."),
    NotCarried.MALFORMED: ("表单内容格式不正确。", "The form's content is malformed."),
}


def _hidden(name: str, value: str) -> str:
    # Line breaks as character references: raw ones in the page would be normalised by the HTML parser.
    def attr(text: str) -> str:
        return esc(text).replace("\r", "&#13;").replace("\n", "&#10;")

    return f"<input type=\"hidden\" name=\"{attr(name)}\" value=\"{attr(value)}\">"


def leave_form_page(keys: GatewayKeys, rest: str, *, method: str, query: str | None, body: bytes = b"",
                    content_type: str = "", content_encoding: str = "", back: str | None = None) -> LeaveView:
    """The warning page for a form whose target was rewritten to ``{prefix}/leave-form/{rest}``.

    ``method`` is how the form was submitted; ``query`` the request's query (a GET form's fields), None when
    the target has none; ``body`` and its ``content_type`` / ``content_encoding`` a POST form's fields.
    400 unless the target's ``sig`` is ours.
    """
    signed = verify_leave_form(rest, keys)
    if signed is None:
        return invalid_leave_page("bad_signature")
    url, charset = signed
    dest = _destination(url)
    if dest is None:
        return invalid_leave_page("bad_url")
    if method == "POST":
        return _posted_form_page(dest, charset, body, content_type, content_encoding, back)
    return _submitted_by_get_page(dest, query, back)


def _submitted_by_get_page(dest: _Destination, query: str | None, back: str | None) -> LeaveView:
    url = dest.url
    if query is not None:
        # A GET form sends its fields as the query of its target, replacing the query the target had.
        full = ada_url.URL(url)
        full.search = query
        if full.hostname != dest.ascii_host or full.protocol not in ("http:", "https:"):
            return invalid_leave_page("bad_url")  # cannot happen: only the query was set
        url = str(full.href)
    continue_link = (f"<a class=\"button\" href=\"{esc(url)}\" rel=\"noopener noreferrer\" "
                     f"referrerpolicy=\"no-referrer\">继续访问 Continue</a>")
    zh = (
        "<h1>您即将离开本网站</h1>"
        "<p>您填写的表单将发送到以下非政府网站。该网站不受本单位管理，其内容与安全由其运营者负责。</p>"
        f"<p class=\"host\">{dest.host_html}</p>"
        f"<p class=\"url\">{esc(url)}</p>"
        "<p>网址中包含您在表单中填写的内容。请确认无误后再继续；请勿向外部网站提交您的工作账号、密码或验证码。</p>"
        f"<div class=\"actions\">{continue_link}{_back_link(back)}</div>"
        f"{_REGULATION_ZH}"
    )
    en = (
        "<h2>You are about to leave this site</h2>"
        f"<p>The form you filled in is sent to a non-government site, {dest.host_text_en}. That site is not run "
        "by this organisation, which is not responsible for its content or security. The address above includes "
        "what you entered in the form. Check it before you continue, and never send your work account, password "
        "or codes there.</p>"
        f"{_REGULATION_EN}"
    )
    page = html_page("即将离开本网站 Leaving this site", zh, en, status=200, headers=PAGE_HEADERS)
    return LeaveView(page=page, valid=True, destination_host=dest.ascii_host, form="get")


def _posted_form_page(dest: _Destination, charset: str, body: bytes, content_type: str, content_encoding: str,
                      back: str | None) -> LeaveView:
    codec = codec_of(charset)
    if content_encoding.strip().lower() not in ("", "identity"):
        posted: PostedForm | NotCarried = NotCarried.KIND  # never inflate a body: it is the user's, passed on as is
    elif codec is None:
        posted = NotCarried.ENCODING
    else:
        posted = read_posted_form(body, content_type, codec)
    head_zh = (
        "<h1>您即将离开本网站</h1>"
        "<p>您填写的表单将提交到以下非政府网站。该网站不受本单位管理，其内容与安全由其运营者负责。</p>"
        f"<p class=\"host\">{dest.host_html}</p>"
        f"<p class=\"url\">{esc(dest.url)}</p>"
    )
    head_en = (
        "<h2>You are about to leave this site</h2>"
        f"<p>The form you filled in is to be sent to a non-government site, {dest.host_text_en}. That site is not "
        "run by this organisation, which is not responsible for its content or security.</p>"
    )
    title = "即将离开本网站 Leaving this site"
    if isinstance(posted, NotCarried):
        why_zh, why_en = _NOT_CARRIED[posted]
        zh = (head_zh + f"<p class=\"error\">{esc(why_zh)}</p>"
              "<p>网关不会代为提交。如需提交，请直接访问该网站。</p>"
              f"<div class=\"actions\">{_back_link(back)}</div>{_REGULATION_ZH}")
        en = (head_en + f"<p class=\"error\">{esc(why_en)}</p><p>The gateway does not send it. To send the form, "
              f"go to that site yourself.</p>{_REGULATION_EN}")
        page = html_page(title, zh, en, status=200, headers=PAGE_HEADERS)
        return LeaveView(page=page, valid=True, destination_host=dest.ascii_host, form="post",
                         not_carried=posted.value)
    hidden = "".join(_hidden(name, value) for name, value in posted.fields)
    names = sorted({name for name, _ in posted.fields})
    listed = "、".join(esc(n) for n in names) if names else "（无）"
    continue_form = (
        f"<form method=\"post\" action=\"{esc(dest.url)}\" enctype=\"{esc(posted.enctype)}\" "
        f"accept-charset=\"{esc(charset)}\">{hidden}"
        "<button type=\"submit\">继续提交 Continue</button></form>"
    )
    zh = (head_zh + f"<p>将提交 {len(posted.fields)} 项内容：<span class=\"meta\">{listed}</span></p>"
          "<p>请确认网址无误后再继续；请勿向外部网站提交您的工作账号、密码或验证码。</p>"
          f"<div class=\"actions\">{continue_form}{_back_link(back)}</div>{_REGULATION_ZH}")
    en = (head_en + f"<p>It sends {len(posted.fields)} field(s): "
          f"<span class=\"meta\">{', '.join(esc(n) for n in names) or '(none)'}</span>. Check the address before "
          "you continue, and never send your work account, password or codes there.</p>"
          f"{_REGULATION_EN}")
    # The continue form posts to the destination, which may answer with a redirect anywhere: a CSP narrower
    # than web addresses would stop the browser there. The only form on the page is this one, written by the gate.
    page = html_page(title, zh, en, status=200, headers=page_headers("'self' http: https:"))
    return LeaveView(page=page, valid=True, destination_host=dest.ascii_host, form="post",
                     fields=len(posted.fields))
