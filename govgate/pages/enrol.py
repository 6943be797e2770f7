"""The enrolment page (``{prefix}/enroll``): a staff member names this browser; it becomes a device once an
administrator approves it (``govgate device approve``). Art. 19, Art. 30. Chinese first, English below."""

from __future__ import annotations

from govgate.pages.layout import PAGE_HEADERS, Page, esc, html_page

MAX_LABEL = 64


def enrol_form(prefix: str, csrf: str, account: str, *, message: tuple[str, str] | None = None, status: int = 200,
               headers: tuple[tuple[str, str], ...] = ()) -> Page:
    zh_msg, en_msg = (f"<p class=\"error\" role=\"alert\">{esc(message[0])}</p>",
                      f"<p class=\"error\">{esc(message[1])}</p>") if message else ("", "")
    form = (f"<form method=\"post\" action=\"{esc(prefix)}/enroll\">"
            f"<input type=\"hidden\" name=\"csrf\" value=\"{esc(csrf)}\">"
            "<label for=\"label\">设备名称 Device name</label>"
            f"<input type=\"text\" id=\"label\" name=\"label\" maxlength=\"{MAX_LABEL}\" required "
            "autocomplete=\"off\" placeholder=\"例如：办公室电脑 / e.g. office PC\">"
            "<button type=\"submit\">登记此浏览器 Enrol this browser</button></form>")
    return html_page(
        "登记设备 Enrol this browser",
        f"<h1>登记此浏览器为设备</h1>{zh_msg}<p>账号 <strong>{esc(account)}</strong>：为此浏览器命名。"
        "登记后需管理员批准（第十九条、第三十条），批准后此浏览器即为您的受信设备。</p>" + form,
        f"<h2>Enrol this browser as a device</h2>{en_msg}<p>Account <strong>{esc(account)}</strong>: name this "
        "browser. An administrator approves it; then it is one of your trusted devices (Art. 19, Art. 30).</p>",
        status=status, headers=(*PAGE_HEADERS, *headers))


def enrolled(device_id: str, label: str, state: str, *, headers: tuple[tuple[str, str], ...] = ()) -> Page:
    if state == "active":
        zh, en = "此浏览器已是已批准的设备。", "This browser is an approved device."
    else:
        zh = "已登记，等待管理员批准。请将设备编号告知管理员（govgate device approve）。"
        en = "Enrolled, waiting for an administrator's approval. Give the device id to your administrator."
    detail = (f"<p class=\"meta\">设备编号 device id: <code>{esc(device_id)}</code><br>名称 name: {esc(label)}"
              f"<br>状态 state: {esc(state)}</p>")
    return html_page("设备登记 Device enrolment", f"<h1>设备登记</h1><p>{zh}</p>{detail}",
                     f"<h2>Device enrolment</h2><p>{en}</p>", headers=(*PAGE_HEADERS, *headers))
