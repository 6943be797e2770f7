"""The audit evidence report as one self-contained HTML page, and as a text summary (Art. 15, 19, 20, 25, 29, 30).

One file an auditor can open anywhere, print, or attach to a 等保 level-3 review: inline CSS, charts as
inline SVG, no scripts, no fonts, images or anything else fetched (the page's own CSP says so). Each
article's section is in Chinese first, English below; tables carry both in their headings. Lists are
capped (``MAX_LISTED`` rows) with the total given; `govgate audit show` lists every record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from govgate import __version__
from govgate.core.audit_report import MAX_LISTED, Listing, Report
from govgate.pages.layout import esc

CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--accent:#b5121b;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:var(--bg);
font:14px/1.55 system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif}
header{background:var(--accent);color:#fff;padding:.8rem 1.5rem;font-weight:600;letter-spacing:.04em}
main{max-width:64rem;margin:1.5rem auto;padding:0 1rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1.2rem 1.6rem;margin:0 0 1.2rem}
h1{font-size:1.5rem;margin:.2rem 0 .4rem}
h2{font-size:1.25rem;margin:.1rem 0 .6rem;border-bottom:2px solid var(--accent);padding-bottom:.3rem}
h3{font-size:1.02rem;margin:1.1rem 0 .4rem}
.en{color:var(--muted);border-top:1px dashed var(--line);margin-top:.8rem;padding-top:.5rem}
.en h3,.en h2{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:.4rem 0 .8rem;font-size:.86rem}
th,td{border:1px solid var(--line);padding:.25rem .45rem;text-align:left;vertical-align:top;word-break:break-word}
th{background:var(--bg);font-weight:600}
th small{display:block;font-weight:400;color:var(--muted)}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:4px;padding:.1rem .55rem;font-weight:700;color:#fff}
.ok{background:var(--ok)}.bad{background:var(--bad)}.warn{background:var(--warn)}
.kv td:first-child{width:30%;background:var(--bg);font-weight:600}
.meta{color:var(--muted);font-size:.85rem}
.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.82rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:.3rem 0;flex:1 1 28rem}
figcaption{font-size:.82rem;color:var(--muted)}
svg text{font-family:inherit}
nav ol{columns:2;margin:.3rem 0}
@page{size:A4;margin:14mm}
@media print{body{background:#fff;font-size:11px}header{color:#000;background:#fff;border-bottom:3px solid var(--accent)}
main{max-width:none;margin:0;padding:0}section{border:none;border-radius:0;padding:0;margin:0 0 8mm;break-inside:auto}
section.article{break-before:page}nav{display:none}table{break-inside:auto}tr{break-inside:avoid}
.badge{border:1px solid #000;color:#000;background:#fff!important}}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

ARTICLES = (
    ("art15", "第十五条 链接离站提示", "Art. 15 — warning before leaving for non-government sites"),
    ("art19", "第十九条 访问地址、设备与境外访问", "Art. 19 — where staff functions are reached from, and overseas access"),
    ("art20", "第二十条 日志留存与完整性", "Art. 20 — logs kept, backed up and intact"),
    ("art30", "第二十五条、第三十条 账号、鉴别与会话", "Art. 25 & 30 — accounts, authentication and sessions"),
    ("art29", "第二十九条 安全连接", "Art. 29 — secure connections"),
)


def _fmt_time(text: str | datetime | None) -> str:
    """ISO 8601 to the second, with its offset (the gateway's timezone as recorded)."""
    if text is None or text == "":
        return "-"
    try:
        when = text if isinstance(text, datetime) else datetime.fromisoformat(text)
    except ValueError:
        return str(text)
    return when.isoformat(sep=" ", timespec="seconds")


def _n(value: int) -> str:
    return f"{value:,}"


def _th(zh: str, en: str, *, num: bool = False) -> str:
    return f"<th{' class=\"n\"' if num else ''}>{esc(zh)}<small>{esc(en)}</small></th>"


def _table(headers: Sequence[tuple[str, str, bool]], rows: Iterable[Sequence[str]], *, raw: bool = False,
           empty: tuple[str, str] = ("无", "none")) -> str:
    """Columns (Chinese, English, numeric?); a column headed 时间 (time) is kept on one line."""
    head = "".join(_th(zh, en, num=num) for zh, en, num in headers)
    body = []
    for row in rows:
        cells = []
        for (zh, _, num), cell in zip(headers, row, strict=True):
            kind = " class=\"n\"" if num else " class=\"t\"" if zh in _TIME_HEADINGS else ""
            cells.append(f"<td{kind}>{cell if raw else esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f"<tr><td colspan=\"{len(headers)}\" class=\"meta\">{esc(empty[0])} {esc(empty[1])}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_TIME_HEADINGS = frozenset({"时间", "首次", "末次", "生效时间", "至"})


def _kv(rows: Iterable[tuple[str, str, str]]) -> str:
    """Key–value table: (Chinese label, English label, value HTML)."""
    return "<table class=\"kv\"><tbody>" + "".join(
        f"<tr><td>{esc(zh)}<br><span class=\"meta\">{esc(en)}</span></td><td>{value}</td></tr>" for zh, en, value in rows
    ) + "</tbody></table>"


def _listing(listing: Listing, what: tuple[str, str]) -> str:
    rows = [(_fmt_time(r.time), r.event, r.account or "-", r.client or "-", r.country or "-", r.detail)
            for r in listing.rows]
    more = ""
    if listing.total > len(listing.rows):
        more = (f"<p class=\"meta\">仅列出前 {MAX_LISTED} 条，共 {_n(listing.total)} 条；"
                f"Only the first {MAX_LISTED} of {_n(listing.total)} are listed; "
                "<span class=\"mono\">govgate audit show</span> lists them all.</p>")
    return _table((("时间", "Time", False), ("事件", "Event", False), ("账号", "Account", False),
                   ("客户端", "Client", False), ("国家", "Country", False), (what[0], what[1], False)),
                  rows) + more


# -- charts (inline SVG) ----------------------------------------------------------------------------


def _days(report: Report) -> list[date]:
    ev = report.evidence
    seen = sorted(d for d in ev.days if d != date.min)
    if report.since is not None and report.until is not None:
        first, last = report.since.date(), report.until.date()
    elif seen:
        first, last = seen[0], seen[-1]
    else:
        return []
    if (last - first).days > 400:
        first = last - timedelta(days=400)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_bars(days: Sequence[date], series: Sequence[tuple[str, str, Mapping[date, int]]], label: str) -> str:
    """Stacked bars per day: ``series`` is (legend, colour, counts by day)."""
    width, height, left, bottom, top = 720, 220, 48, 36, 28
    if not days:
        return ""
    totals = [sum(counts.get(d, 0) for _, _, counts in series) for d in days]
    peak = max([*totals, 1])
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / len(days)
    bar = max(1.0, step * 0.8)
    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" "
             f"aria-label=\"{esc(label)}\" width=\"100%\"><title>{esc(label)}</title>",
             f"<line x1=\"{left}\" y1=\"{top + plot_h}\" x2=\"{width - 10}\" y2=\"{top + plot_h}\" stroke=\"#8c959f\"/>"]
    for frac in (0.5, 1.0):
        y = top + plot_h - plot_h * frac
        parts.append(f"<line x1=\"{left}\" y1=\"{y:.1f}\" x2=\"{width - 10}\" y2=\"{y:.1f}\" stroke=\"#eaeef2\"/>"
                     f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" font-size=\"11\" text-anchor=\"end\" "
                     f"fill=\"#59636e\">{_n(round(peak * frac))}</text>")
    for i, day in enumerate(days):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for name, colour, counts in series:
            value = counts.get(day, 0)
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(f"<rect x=\"{x:.1f}\" y=\"{y:.1f}\" width=\"{bar:.1f}\" height=\"{h:.1f}\" fill=\"{colour}\">"
                         f"<title>{day.isoformat()} {esc(name)}: {_n(value)}</title></rect>")
    every = max(1, len(days) // 8)
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            x = left + i * step + step / 2
            parts.append(f"<text x=\"{x:.1f}\" y=\"{height - bottom + 16}\" font-size=\"11\" text-anchor=\"middle\" "
                         f"fill=\"#59636e\">{day.strftime('%m-%d')}</text>")
    x = left
    for name, colour, _ in series:
        parts.append(f"<rect x=\"{x}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{colour}\"/>"
                     f"<text x=\"{x + 16}\" y=\"16\" font-size=\"12\" fill=\"#1f2328\">{esc(name)}</text>")
        x += 26 + 7 * len(name) + sum(6 for c in name if ord(c) > 0x2E80)
    parts.append("</svg>")
    return "".join(parts)


def hbars(items: Sequence[tuple[str, int]], label: str, colour: str = "#b5121b") -> str:
    """Horizontal bars for a few labelled counts."""
    if not items:
        return ""
    width, row, left = 720, 22, 230
    height = row * len(items) + 10
    peak = max(v for _, v in items) or 1
    parts = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" "
             f"aria-label=\"{esc(label)}\" width=\"100%\"><title>{esc(label)}</title>"]
    for i, (name, value) in enumerate(items):
        y = 5 + i * row
        w = (width - left - 80) * value / peak
        shown = name if len(name) <= 34 else name[:33] + "…"
        parts.append(f"<text x=\"{left - 8}\" y=\"{y + 14}\" font-size=\"12\" text-anchor=\"end\" fill=\"#1f2328\">"
                     f"{esc(shown)}</text><rect x=\"{left}\" y=\"{y + 3}\" width=\"{max(w, 1):.1f}\" height=\"14\" "
                     f"fill=\"{colour}\"><title>{esc(name)}: {_n(value)}</title></rect>"
                     f"<text x=\"{left + w + 6:.1f}\" y=\"{y + 14}\" font-size=\"12\" fill=\"#59636e\">{_n(value)}"
                     "</text>")
    parts.append("</svg>")
    return "".join(parts)


def _figure(svg: str, zh: str, en: str) -> str:
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{esc(zh)} · {esc(en)}</figcaption></figure>"


# -- sections ---------------------------------------------------------------------------------------


def _period(report: Report) -> tuple[str, str]:
    since = _fmt_time(report.since) if report.since else "日志开始"
    until = _fmt_time(report.until) if report.until else "日志结束"
    since_en = _fmt_time(report.since) if report.since else "the start of the log"
    until_en = _fmt_time(report.until) if report.until else "the end of the log"
    return f"{since} 至 {until}", f"{since_en} to {until_en}"


def _verify_badge(report: Report) -> tuple[str, str]:
    if report.verified:
        return ("<span class=\"badge ok\">完整 校验通过</span>", "<span class=\"badge ok\">intact: verified</span>")
    return ("<span class=\"badge bad\">校验未通过</span>", "<span class=\"badge bad\">does NOT verify</span>")


def _cover(report: Report) -> str:
    ev = report.evidence
    zh_period, en_period = _period(report)
    zh_badge, en_badge = _verify_badge(report)
    return (
        "<section class=\"cover\">"
        "<h1>审计证据报告 <small class=\"meta\">Audit evidence report</small></h1>"
        "<p>依据《互联网政务应用安全管理规定》第十五、十九、二十、二十五、二十九、三十条，"
        "本报告完全由网关审计日志生成。</p>"
        + _kv([
            ("统计期间", "Period", esc(f"{zh_period} / {en_period}")),
            ("日志完整性", "Log integrity", f"{zh_badge} {en_badge}"),
            ("期间记录数", "Records in the period", _n(ev.records)),
            ("日志目录", "Audit directory", f"<span class=\"mono\">{esc(str(report.directory))}</span>"),
            ("校验密钥", "Checked with", esc(report.checked_with)),
            ("生成时间", "Generated", esc(_fmt_time(report.generated)) + f" · GovGate {esc(__version__)}"),
        ])
        + "<div class=\"en\" lang=\"en\"><p>Generated entirely from the gateway's audit log, per article of the "
        "Regulations on the Security Management of Internet Government Applications (2024).</p></div>"
        "<nav><ol>" + "".join(f"<li><a href=\"#{aid}\">{esc(zh)}</a> <span class=\"meta\">{esc(en)}</span></li>"
                              for aid, zh, en in ARTICLES) + "</ol></nav></section>"
    )


def _section(aid: str, zh_intro: str, en_intro: str, body: str) -> str:
    _, zh, en = next(a for a in ARTICLES if a[0] == aid)
    return (f"<section class=\"article\" id=\"{aid}\"><h2>{esc(zh)}</h2><div lang=\"zh-CN\"><p>{zh_intro}</p></div>"
            f"{body}<div class=\"en\" lang=\"en\"><h3>{esc(en)}</h3><p>{en_intro}</p></div></section>")


def _art15(report: Report) -> str:
    ev = report.evidence
    refused = sum(ev.leave_refused.values())
    top = ev.destinations.most_common(15)
    body = (
        "<div class=\"charts\">" + _figure(hbars(top, "Top destinations"), "离站提示目的地前 15 位",
                                           "Top 15 destinations warned about") + "</div>"
        + _table((("目的地主机", "Destination host", False), ("提示页次数", "Warnings shown", True)),
                 [(host, _n(n)) for host, n in top])
        + _table((("无效链接原因", "Invalid link, why", False), ("次数", "Count", True)),
                 [(why, _n(n)) for why, n in sorted(ev.leave_refused.items())])
        + (_table((("未能改写的页面", "Pages not rewritten, why", False), ("次数", "Count", True)),
                  [(why, _n(n)) for why, n in sorted(ev.not_rewritten.items())]) if ev.not_rewritten else "")
    )
    zh = (f"期间共显示离站提示页 <b>{_n(ev.leave_shown)}</b> 次，涉及 {_n(len(ev.destinations))} 个非政府网站；"
          f"拒绝无效（签名错误或缺失）的离站链接 {_n(refused)} 次。提示页上的“继续访问”链接直接指向目的地，"
          "网关看不到用户是否点击继续，因此日志不记录“继续访问”次数。")
    en = (f"The leave warning was shown <b>{_n(ev.leave_shown)}</b> times, for {_n(len(ev.destinations))} "
          f"non-government sites; {_n(refused)} invalid (unsigned or altered) leave links were refused. The page's "
          "“continue” link goes straight to the destination, so the gateway does not see whether a user continued: "
          "the log holds no count of continuations.")
    return _section("art15", zh, en, body)


def _art19(report: Report) -> str:
    ev = report.evidence
    days = _days(report)
    refused = {d: ev.access.get((d, "refuse"), 0) for d in days}
    allowed = {d: ev.access.get((d, "allow"), 0) for d in days}
    uses = sorted(ev.grant_uses.values(), key=lambda u: (u.first, u.index or 0))
    grants = [(f"#{g.index}", g.account or "-", ", ".join(g.devices) or "-",
               ", ".join(g.countries) if g.countries else "任意 any",
               f"{_fmt_time(g.start)} – {_fmt_time(g.end)}", g.daily or "-", g.reason, " ".join(g.policies))
              for g in report.grants]
    body = (
        "<div class=\"charts\">"
        + _figure(daily_bars(days, [("允许 allowed", "#1a7f37", allowed), ("拒绝 refused", "#cf222e", refused)],
                             "Access decisions per day"), "每日访问决定", "Access decisions per day")
        + _figure(hbars(ev.refused_by_reason.most_common(), "Refusals by reason", "#cf222e"),
                  "拒绝原因", "Refusals by reason")
        + "</div>"
        + "<h3>境外授权访问 · Accesses admitted by an overseas grant</h3>"
        + _table((("授权", "Grant", False), ("事由", "Reason", False), ("账号", "Account", False),
                  ("国家", "Country", False), ("次数", "Accesses", True), ("首次", "First", False),
                  ("末次", "Last", False)),
                 [(f"#{u.index}", u.reason, u.account or "-", u.country or "-", _n(u.count), _fmt_time(u.first),
                   _fmt_time(u.last)) for u in uses])
        + _listing(ev.granted, ("授权与请求", "Grant and request"))
        + "<h3>期间有效的境外授权 · Overseas grants in force in the period</h3>"
        + _table((("序号", "Index", False), ("账号", "Account", False), ("设备", "Devices", False),
                  ("国家", "Countries", False), ("时间窗", "Window", False), ("每日", "Daily", False),
                  ("事由", "Reason", False), ("策略", "Policy", False)), grants)
        + "<h3>因网络拒绝 · Refused: not from an allowed network or device</h3>"
        + _listing(ev.network_refused, ("请求", "Request"))
        + "<h3>因境外拒绝 · Refused: overseas without a grant</h3>"
        + _listing(ev.overseas_refused, ("请求", "Request"))
        + _table((("国家", "Country", False), ("被拒次数", "Refusals", True)),
                 [(c, _n(n)) for c, n in ev.refused_countries.most_common(20)])
        + (_table((("登录被拒原因", "Login refused, why", False), ("次数", "Count", True)),
                  [(why, _n(n)) for why, n in sorted(ev.login_refused.items())]) if ev.login_refused else "")
    )
    total = ev.network_refused.total + ev.overseas_refused.total
    zh = (f"期间共拒绝 <b>{_n(total)}</b> 次工作人员功能访问：不在允许网络或设备 {_n(ev.network_refused.total)} 次，"
          f"境外且无有效授权 {_n(ev.overseas_refused.total)} 次。经境外授权放行的访问 {_n(ev.granted.total)} 次，"
          f"每次均记录所依据的授权；期间有效的境外授权 {_n(len(report.grants))} 项。")
    en = (f"<b>{_n(total)}</b> requests for staff functions were refused: {_n(ev.network_refused.total)} not from "
          f"an allowed network or device, {_n(ev.overseas_refused.total)} from abroad without an active grant. "
          f"{_n(ev.granted.total)} accesses were admitted by an overseas grant, each recorded with its grant; "
          f"{_n(len(report.grants))} overseas grants were in force in the period.")
    return _section("art19", zh, en, body)


def _art20(report: Report) -> str:
    ev = report.evidence
    v = report.verify
    zh_badge, en_badge = _verify_badge(report)
    problems = "".join(f"<li class=\"mono\">{esc(f.file)}:{f.line}: {esc(f.what)}</li>" for f in report.findings[:20])
    if report.unverified:
        problems += (f"<li>{_n(report.unverified)} 行无签名可证明 · {_n(report.unverified)} line(s) no signature "
                     "vouches for</li>")
    kept = "-"
    if report.oldest_day is not None and report.newest_day is not None:
        span = (report.newest_day - report.oldest_day).days + 1
        kept = f"{report.oldest_day.isoformat()} – {report.newest_day.isoformat()} ({span} 天 days, " \
               f"{report.files} 个文件 files)"
    retention = "-" if report.retention_days is None else (
        f"{report.retention_days} 天 days; " + ("到期清理 prune: on" if report.prune else "不清理 prune: off"))
    body = (
        _kv([
            ("校验结果", "Verification", f"{zh_badge} {en_badge}" + (f"<ul>{problems}</ul>" if problems else "")),
            ("日志首条记录", "First record", esc(_fmt_time(v.first_time))),
            ("日志末条记录", "Last record", esc(_fmt_time(v.last_time))),
            ("记录总数", "Records in the log", f"{_n(v.count)} (seq {v.first_seq}–{v.last_seq})"),
            ("保存的日志", "Log kept", esc(kept)),
            ("保留期限", "Retention (audit.retention_days)", esc(retention)),
            ("策略文本", "Kept policy texts", esc("全部可用 all present" if not report.texts_missing else
                                                ", ".join(report.texts_missing) + " 缺失或被改动 missing or changed")),
        ])
        + "<h3>备份 · Backups made (govgate audit backup)</h3>" + _listing(ev.backups, ("备份", "Backup"))
        + "<h3>网关启动与停止 · Gateway starts and stops</h3>" + _listing(ev.starts, ("启动", "Start"))
        + _listing(ev.stops, ("停止", "Stop"))
        + "<h3>策略加载 · Policies loaded, reloaded and refused</h3>" + _listing(ev.policy_events, ("策略", "Policy"))
        + _table((("生效时间", "In force from", False), ("至", "Until", False), ("SHA-256", "SHA-256", False),
                  ("事件", "Event", False)),
                 [(_fmt_time(p.start), _fmt_time(p.end) if p.end else "-", p.sha256, p.event) for p in report.periods])
        + "<h3>日志自身的告警 · The log's own warnings (damage, losses, repairs, pruning)</h3>"
        + _listing(ev.log_warnings, ("详情", "Detail"))
    )
    zh = (f"日志以哈希链、逐条 MAC 与每日封存及头锚点的 Ed25519 签名防篡改；本次校验"
          f"{'通过' if report.verified else '<b>未通过</b>'}。期间备份 {_n(ev.backups.total)} 次，"
          f"网关启动 {_n(ev.starts.total)} 次、停止 {_n(ev.stops.total)} 次。")
    en = (f"The log is hash-chained, each record MACed, and each daily seal and the head anchor signed (Ed25519); "
          f"this check {'passed' if report.verified else '<b>failed</b>'}. {_n(ev.backups.total)} backups were made "
          f"in the period; the gateway started {_n(ev.starts.total)} and stopped {_n(ev.stops.total)} times.")
    return _section("art20", zh, en, body)


def _art30(report: Report) -> str:
    ev = report.evidence
    days = _days(report)
    success = {d: ev.logins_per_day.get((d, "success"), 0) for d in days}
    failure = {d: ev.logins_per_day.get((d, "failure"), 0) for d in days}
    failures = sum(ev.failures.values())
    body = (
        "<div class=\"charts\">"
        + _figure(daily_bars(days, [("登录成功 logins", "#0969da", success), ("失败 failures", "#cf222e", failure)],
                             "Logins and failures per day"), "每日登录与失败", "Logins and failures per day")
        + "</div>"
        + _kv([
            ("登录成功（口令+动态码）", "Logins (password + TOTP)", _n(ev.logins)),
            ("口令正确、待动态码", "Password steps passed", _n(ev.password_ok)),
            ("失败", "Failures", _n(failures) + " · " + esc(", ".join(f"{k} {v}" for k, v in
                                                                       sorted(ev.failures.items())))),
            ("失败原因", "Failure reasons", esc(", ".join(f"{k} {v}" for k, v in sorted(ev.failure_reasons.items()))
                                                or "-")),
            ("锁定", "Lockouts", _n(ev.lockouts.total)),
            ("锁定期间的尝试", "Attempts while locked", _n(ev.locked_attempts)),
            ("会话超时", "Sessions ended", esc(" · ".join(f"{_TIMEOUT.get(k, k)} {v}" for k, v in
                                                       sorted(ev.timeouts.items())) or "-")),
            ("主动退出", "Logouts", _n(ev.logouts)),
        ])
        + "<h3>锁定 · Lockouts</h3>" + _listing(ev.lockouts, ("详情", "Detail"))
        + "<h3>停用、过期或删除的账号被拒 · Disabled, expired or deleted accounts refused</h3>"
        + _listing(ev.account_refused, ("请求", "Request"))
        + "<h3>账号与设备绑定 · Account–device binding</h3>"
        + _listing(ev.device_refused, ("请求", "Request"))
        + _table((("设备", "Device", False), ("登录次数", "Logins on it", True)),
                 [(d, _n(n)) for d, n in ev.device_logins.most_common(30)])
        + "<h3>账号管理操作 · Account and device administration</h3>" + _listing(ev.admin, ("操作", "Action"))
    )
    zh = (f"期间成功登录 <b>{_n(ev.logins)}</b> 次，失败 {_n(failures)} 次，锁定 {_n(ev.lockouts.total)} 次；"
          f"会话因空闲超时结束 {_n(ev.timeouts.get('idle', 0))} 次、因绝对超时结束 {_n(ev.timeouts.get('absolute', 0))} 次；"
          f"停用或过期账号被拒 {_n(ev.account_refused.total)} 次；账号管理操作 {_n(ev.admin.total)} 项。")
    en = (f"<b>{_n(ev.logins)}</b> logins, {_n(failures)} failures, {_n(ev.lockouts.total)} lockouts; sessions ended "
          f"by the idle timeout {_n(ev.timeouts.get('idle', 0))} times and by the absolute timeout "
          f"{_n(ev.timeouts.get('absolute', 0))} times; disabled or expired accounts were refused "
          f"{_n(ev.account_refused.total)} times; {_n(ev.admin.total)} account administration actions.")
    return _section("art30", zh, en, body)


_TIMEOUT = {"idle": "空闲超时 idle", "absolute": "绝对超时 absolute", "revoked": "管理员注销 revoked"}


def _tls_rows(settings: Mapping[str, object]) -> str:
    def show(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "是 yes" if value else "否 no"
        return str(value)

    insecure = settings.get("insecure") is True
    flag = ("<span class=\"badge bad\">明文 HTTP（insecure: true）不合规 · plain HTTP: not compliant</span>" if insecure
            else "<span class=\"badge ok\">HTTPS</span>")
    rows = [("模式", "Mode", flag)]
    for key, zh, en in (("min_version", "最低 TLS 版本", "Minimum TLS version"),
                        ("ciphers_tls12", "TLS 1.2 套件", "TLS 1.2 cipher suites"),
                        ("client_certificates", "请求客户端证书", "Client certificates requested"),
                        ("client_ca", "客户端证书 CA", "Client certificate CA"),
                        ("certificate", "服务器证书", "Server certificate"), ("listen", "监听", "Listen")):
        if key in settings:
            rows.append((zh, en, f"<span class=\"mono\">{esc(show(settings.get(key)))}</span>"))
    return _kv(rows)


def _art29(report: Report) -> str:
    ev = report.evidence
    blocks = []
    starts = list(ev.tls)
    if report.last_start_tls is not None:
        starts.insert(0, report.last_start_tls)
    for when, settings in starts:
        blocks.append(f"<h3>网关启动于 {esc(_fmt_time(when))} · Gateway started at {esc(_fmt_time(when))}</h3>"
                      + _tls_rows(settings))
    for sha, settings in report.tls_policy:
        blocks.append(f"<h3>策略 {esc(sha)} 的设置 · Settings of policy {esc(sha)}</h3>" + _tls_rows(settings))
    insecure = any(s.get("insecure") is True for _, s in [*starts, *report.tls_policy])
    if not blocks:
        return _section("art29", "期间没有网关启动记录或保存的策略可说明其连接设置。",
                        "No gateway start record or kept policy in the period says how the gateway served.",
                        "<p class=\"meta\">无启动记录 · no start records</p>")
    zh = ("网关终止 TLS，只接受 TLS 1.2 及以上版本与前向保密的 AEAD 套件，HTTP 重定向至 HTTPS，并发送 HSTS；"
          + ("<b>期间存在明文 HTTP 运行（insecure: true），不符合第二十九条。</b>" if insecure else "期间均为 HTTPS。"))
    en = ("The gateway terminates TLS: TLS 1.2 or later with forward-secret AEAD suites only, HTTP redirected to "
          "HTTPS, HSTS sent; " + ("<b>it ran as plain HTTP (insecure: true) in the period: not compliant with "
                                  "Art. 29.</b>" if insecure else "HTTPS throughout the period."))
    return _section("art29", zh, en, "".join(blocks))


def render_html(report: Report) -> str:
    """The whole page: one file, nothing fetched."""
    zh_period, _ = _period(report)
    return (
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>审计证据报告 Audit evidence report · {esc(zh_period)}</title><style>{CSS}</style></head>"
        "<body><header>GovGate 政务应用安全网关 · 审计证据报告 Audit evidence report</header><main>"
        + _cover(report) + _art15(report) + _art19(report) + _art20(report) + _art30(report) + _art29(report)
        + "</main></body></html>\n"
    )


def render_text(report: Report) -> str:
    """The summary printed without ``--out``: the key numbers per article, Chinese first, English below."""
    ev = report.evidence
    zh_period, en_period = _period(report)
    failures = sum(ev.failures.values())
    status = "校验通过 verified" if report.verified else "校验未通过 DOES NOT VERIFY"
    lines = [
        f"审计证据报告 Audit evidence report: {zh_period} / {en_period}",
        f"  日志 log: {report.directory} · {status} · 期间记录 records in period: {_n(ev.records)}",
    ]
    for f in report.findings[:5]:
        lines.append(f"    {report.directory / f.file}:{f.line}: {f.what}")
    retention = "-" if report.retention_days is None else f"{report.retention_days} 天 days"
    lines += [
        "第十五条 Art. 15",
        f"  离站提示 warnings shown: {_n(ev.leave_shown)} · 无效链接 invalid links refused: "
        f"{_n(sum(ev.leave_refused.values()))} · 目的地 destinations: {_n(len(ev.destinations))}",
        "  前五 top: " + (", ".join(f"{h} {n}" for h, n in ev.destinations.most_common(5)) or "-"),
        "第十九条 Art. 19",
        f"  拒绝 refused — 网络 network: {_n(ev.network_refused.total)} · 境外 overseas: "
        f"{_n(ev.overseas_refused.total)} · 境外授权访问 admitted by a grant: {_n(ev.granted.total)} · "
        f"有效授权 grants in force: {_n(len(report.grants))}",
    ]
    for use in sorted(ev.grant_uses.values(), key=lambda u: u.first)[:10]:
        lines.append(f"    #{use.index} {use.reason} · {use.account} from {use.country}: {_n(use.count)} "
                     f"({_fmt_time(use.first)} – {_fmt_time(use.last)})")
    lines += [
        "第二十条 Art. 20",
        f"  {status} · 首条 first: {_fmt_time(report.verify.first_time)} · 末条 last: "
        f"{_fmt_time(report.verify.last_time)} · 记录 records: {_n(report.verify.count)}",
        f"  保留 retention: {retention} · 备份 backups: {_n(ev.backups.total)} · 启动/停止 starts/stops: "
        f"{_n(ev.starts.total)}/{_n(ev.stops.total)} · 策略事件 policy events: {_n(ev.policy_events.total)}",
        "第二十五、三十条 Art. 25 & 30",
        f"  登录 logins: {_n(ev.logins)} · 失败 failures: {_n(failures)} · 锁定 lockouts: {_n(ev.lockouts.total)} · "
        f"超时 timeouts: " + (", ".join(f"{k} {v}" for k, v in sorted(ev.timeouts.items())) or "0"),
        f"  停用/过期账号被拒 disabled/expired refused: {_n(ev.account_refused.total)} · 设备不符 device refused: "
        f"{_n(ev.device_refused.total)} · 管理操作 admin actions: {_n(ev.admin.total)}",
        "第二十九条 Art. 29",
    ]
    starts = list(ev.tls) + ([report.last_start_tls] if report.last_start_tls else [])
    insecure = any(s.get("insecure") is True for _, s in starts) or any(
        s.get("insecure") is True for _, s in report.tls_policy)
    if not starts and not report.tls_policy:
        lines.append("  无启动记录或策略可说明 no start record or kept policy says how the gateway served")
    else:
        lines.append("  " + ("明文 HTTP 运行 plain HTTP (insecure: true): 不合规 not compliant" if insecure else
                             "HTTPS: TLS 1.2+, AEAD/前向保密 forward secrecy, HSTS"))
    lines.append("(govgate audit report --out report.html 生成完整报告 writes the full report)")
    return "\n".join(lines) + "\n"

