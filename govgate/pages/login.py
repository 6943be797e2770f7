"""The login, MFA and sign-out forms (Art. 30): fields ``username``, ``password``, ``csrf``, ``next``; ``code``,
``csrf``; ``csrf``. Each posts to the page it came from, under the gate's prefix.

No JavaScript, no external assets. Unknown account and wrong password get the same message.
"""

from __future__ import annotations

from govgate.pages.layout import PAGE_HEADERS, Page, esc, html_page

LOGIN_FAILED = ("用户名或密码错误。", "Wrong user name or password.")
MFA_FAILED = ("动态口令错误或已使用。", "The one-time code is wrong or was already used.")
MFA_EXPIRED = ("登录已超时，请重新登录。", "The login took too long; please sign in again.")
CSRF_FAILED = ("表单已过期，请重试。", "The form expired; please try again.")


def _message(msg: tuple[str, str] | None) -> tuple[str, str]:
    if msg is None:
        return "", ""
    return f"<p class=\"error\" role=\"alert\">{esc(msg[0])}</p>", f"<p class=\"error\">{esc(msg[1])}</p>"


def login_form(prefix: str, csrf: str, next_path: str, *, message: tuple[str, str] | None = None,
               username: str = "", status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Page:
    zh_msg, en_msg = _message(message)
    form = (
        f"<form method=\"post\" action=\"{esc(prefix)}/login\">"
        f"<input type=\"hidden\" name=\"csrf\" value=\"{esc(csrf)}\">"
        f"<input type=\"hidden\" name=\"next\" value=\"{esc(next_path)}\">"
        "<label for=\"username\">用户名 User name</label>"
        f"<input type=\"text\" id=\"username\" name=\"username\" value=\"{esc(username)}\" "
        "autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required autofocus>"
        "<label for=\"password\">密码 Password</label>"
        "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>"
        "<button type=\"submit\">登录 Sign in</button></form>"
    )
    return html_page(
        "登录 Sign in",
        f"<h1>工作人员登录</h1>{zh_msg}<p>请使用账号密码登录，随后输入动态口令（第三十条 多因素认证）。</p>{form}",
        f"<h2>Staff sign-in</h2>{en_msg}<p>Sign in with your password, then enter the one-time code from your "
        "authenticator app (multi-factor authentication, Art. 30).</p>",
        status=status, headers=(*PAGE_HEADERS, *headers),
    )


def mfa_form(prefix: str, csrf: str, *, message: tuple[str, str] | None = None, status: int = 200,
             headers: tuple[tuple[str, str], ...] = ()) -> Page:
    zh_msg, en_msg = _message(message)
    form = (
        f"<form method=\"post\" action=\"{esc(prefix)}/mfa\">"
        f"<input type=\"hidden\" name=\"csrf\" value=\"{esc(csrf)}\">"
        "<label for=\"code\">动态口令 One-time code</label>"
        "<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{6}\" maxlength=\"6\" "
        "autocomplete=\"one-time-code\" required autofocus>"
        "<button type=\"submit\">验证 Verify</button></form>"
    )
    return html_page(
        "动态口令 One-time code",
        f"<h1>输入动态口令</h1>{zh_msg}<p>请输入身份验证器应用中显示的6位动态口令。</p>{form}",
        f"<h2>Enter your one-time code</h2>{en_msg}<p>Enter the 6-digit code shown in your authenticator app.</p>",
        status=status, headers=(*PAGE_HEADERS, *headers),
    )


def logout_form(prefix: str, csrf: str, *, headers: tuple[tuple[str, str], ...] = ()) -> Page:
    form = (f"<form method=\"post\" action=\"{esc(prefix)}/logout\"><input type=\"hidden\" name=\"csrf\" "
            f"value=\"{esc(csrf)}\"><button type=\"submit\">退出登录 Sign out</button></form>")
    return html_page("退出 Sign out", f"<h1>退出登录</h1>{form}", "<h2>Sign out</h2>",
                     headers=(*PAGE_HEADERS, *headers))


def logged_out(prefix: str, headers: tuple[tuple[str, str], ...] = ()) -> Page:
    return html_page(
        "已退出 Signed out",
        f"<h1>您已安全退出</h1><p><a href=\"{esc(prefix)}/login\">重新登录</a></p>",
        f"<h2>You are signed out</h2><p><a href=\"{esc(prefix)}/login\">Sign in again</a></p>",
        headers=(*PAGE_HEADERS, *headers),
    )
