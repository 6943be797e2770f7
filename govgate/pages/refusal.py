"""Refusal pages: 403 with a reason category, and 400/404/405/429/502/503. HTML (Chinese first) or JSON on request.

They name the reason category and the request id, and nothing an attacker could use: no rule names,
no network names, no account state beyond the category.
"""

from __future__ import annotations

import json
from datetime import datetime

from govgate.pages.layout import PAGE_HEADERS, Page, esc, html_page

# reason → (Chinese, English, article)
REASONS: dict[str, tuple[str, str, str]] = {
    "network": ("您所在的网络不允许使用此功能。", "This function is not available from your network.",
                "第十九条 Art. 19"),
    "overseas": ("境外访问须事先获得授权，且只在授权时段内有效。",
                 "Access from outside the country needs a prior grant and is valid only within its time window.",
                 "第十九条 Art. 19"),
    "device": ("此设备未获授权用于该账号。", "This device is not authorised for this account.", "第三十条 Art. 30"),
    "group": ("您的账号无权使用此功能。", "Your account is not permitted to use this function.", "第三十条 Art. 30"),
    "account": ("账号已停用或已过期。", "The account is disabled or has expired.", "第三十条 Art. 30"),
    "locked": ("登录失败次数过多，账号已暂时锁定。", "Too many failed logins: the account is temporarily locked.",
               "第三十条 Art. 30"),
    "denied": ("访问被拒绝。", "Access denied.", ""),
}


def wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    accept = accept.lower()
    return "application/json" in accept and "text/html" not in accept


def _json_page(status: int, payload: dict[str, object]) -> Page:
    return Page(status=status, body=json.dumps(payload, ensure_ascii=False).encode(),
                content_type="application/json; charset=utf-8", headers=PAGE_HEADERS)


def forbidden(reason: str, request_id: str, *, as_json: bool) -> Page:
    zh, en, article = REASONS.get(reason, REASONS["denied"])
    if as_json:
        return _json_page(403, {"error": "forbidden", "reason": reason, "request_id": request_id})
    art = f"<p class=\"meta\">{esc(article)}</p>" if article else ""
    return html_page(
        "访问被拒绝 Access denied",
        f"<h1>访问被拒绝</h1><p>{esc(zh)}</p>{art}"
        f"<p class=\"meta\">原因 reason: <strong>{esc(reason)}</strong><br>请求编号 request id: "
        f"<code>{esc(request_id)}</code></p><p>如需帮助，请将请求编号提供给系统管理员。</p>",
        f"<h2>Access denied</h2><p>{esc(en)}</p><p>If you need help, give the request id to your administrator.</p>",
        status=403, headers=PAGE_HEADERS,
    )


def bad_request(request_id: str, *, as_json: bool, what: str = "") -> Page:
    if as_json:
        return _json_page(400, {"error": "bad_request", "request_id": request_id})
    return html_page(
        "请求无效 Bad request",
        f"<h1>请求无效</h1><p>请求格式不正确{esc('：' + what) if what else ''}。</p>"
        f"<p class=\"meta\">请求编号 request id: <code>{esc(request_id)}</code></p>",
        "<h2>Bad request</h2><p>The request is malformed.</p>",
        status=400, headers=PAGE_HEADERS,
    )


def not_found(request_id: str) -> Page:
    """404: a path under the gate's prefix that is none of its pages."""
    return html_page("未找到 Not found", "<h1>未找到</h1><p>页面不存在。</p>",
                     f"<h2>Not found</h2><p>request id: <code>{esc(request_id)}</code></p>", status=404,
                     headers=PAGE_HEADERS)


def method_not_allowed() -> Page:
    """405: a method one of the gate's pages does not take."""
    return html_page("方法不允许 Method not allowed", "<h1>方法不允许</h1>", "<h2>Method not allowed</h2>",
                     status=405, headers=PAGE_HEADERS)


def not_rewritten() -> Page:
    """502 instead of a portal page whose off-site links could not be rewritten safely (Art. 15)."""
    return html_page(
        "页面无法显示 Page unavailable",
        "<h1>页面无法显示</h1><p>网关无法安全地处理此页面中的外部链接，因此未予显示。请稍后重试或联系网站管理员。</p>",
        "<h2>Page unavailable</h2><p>The gateway could not safely process the external links on this page, "
        "so it is not shown. Try again later or contact the site administrator.</p>",
        status=502, headers=PAGE_HEADERS,
    )


def unavailable(request_id: str, what: str, *, as_json: bool) -> Page:
    """503: a dependency the gate needs to decide safely (state store, audit log) is down: fail closed."""
    if as_json:
        return _json_page(503, {"error": "unavailable", "what": what, "request_id": request_id})
    return html_page(
        "暂时无法访问 Temporarily unavailable",
        "<h1>暂时无法访问</h1><p>安全网关暂时无法完成身份与访问检查，为保证安全，办公功能暂停服务。"
        "请稍后重试；公开页面不受影响。</p>"
        f"<p class=\"meta\">请求编号 request id: <code>{esc(request_id)}</code></p>",
        "<h2>Temporarily unavailable</h2><p>The gateway cannot complete its identity and access checks right now, "
        "so staff functions are paused for safety. Please try again shortly; public pages are not affected.</p>",
        status=503, headers=(*PAGE_HEADERS, ("Retry-After", "5")),
    )


def too_many(request_id: str, until: datetime, now: datetime, *, as_json: bool) -> Page:
    """429 while an account or address is locked (Art. 30); says when, not why."""
    when = until.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    retry = max(1, int((until - now).total_seconds()))
    if as_json:
        return Page(status=429, body=json.dumps({"error": "locked", "until": until.isoformat(),
                                                 "request_id": request_id}).encode(),
                    content_type="application/json; charset=utf-8",
                    headers=(*PAGE_HEADERS, ("Retry-After", str(retry))))
    return html_page(
        "暂时锁定 Temporarily locked",
        f"<h1>暂时锁定</h1><p>登录失败次数过多，已暂时锁定，将于 <strong>{esc(when)}</strong> 解除。</p>"
        f"<p class=\"meta\">请求编号 request id: <code>{esc(request_id)}</code></p>",
        f"<h2>Temporarily locked</h2><p>Too many failed attempts. The lock ends at <strong>{esc(when)}</strong>.</p>",
        status=429, headers=(*PAGE_HEADERS, ("Retry-After", str(retry))),
    )


# Errors that mitmproxy itself answers below the addon hooks (see govgate/addons/proxy_errors.py): status → texts.
_PROXY_ERRORS: dict[int, tuple[str, str, str, str]] = {
    400: ("请求无效", "请求格式不正确，网关无法处理。", "Bad request", "The request is malformed."),
    413: ("请求过大", "请求内容超出网关允许的大小。", "Request too large",
          "The request is larger than the gateway accepts."),
    431: ("请求头过大", "请求头超出网关允许的大小。", "Request headers too large",
          "The request's headers are larger than the gateway accepts."),
    502: ("门户暂时无法访问", "网关暂时无法连接到后端门户系统，请稍后重试。", "Portal unreachable",
          "The gateway cannot reach the portal behind it right now. Please try again shortly."),
    504: ("门户响应超时", "后端门户系统未能及时响应，请稍后重试。", "Portal timeout",
          "The portal behind the gateway did not answer in time. Please try again shortly."),
}


def proxy_error(status: int, request_id: str | None = None, *, as_json: bool = False) -> Page:
    """The page for an error below the addon hooks (portal unreachable or too slow, unparsable request...).

    Generic on purpose: mitmproxy's own page names the upstream address and the error text; those go
    to the operator's log only, under the request id shown here (when the request got that far).
    """
    zh_title, zh, en_title, en = _PROXY_ERRORS.get(
        status, ("无法完成请求", "网关无法完成此请求，请稍后重试。", "Request failed",
                 "The gateway could not complete this request. Please try again shortly."))
    if as_json:
        return _json_page(status, {"error": en_title.lower().replace(" ", "_"), "request_id": request_id})
    rid = f"<br>请求编号 request id: <code>{esc(request_id)}</code>" if request_id else ""
    return html_page(
        f"{zh_title} {en_title}",
        f"<h1>{esc(zh_title)}</h1><p>{esc(zh)}</p><p class=\"meta\">HTTP {status}{rid}</p>",
        f"<h2>{esc(en_title)}</h2><p>{esc(en)}</p>",
        status=status, headers=PAGE_HEADERS,
    )
