#!/usr/bin/env python3
"""Benchmark the Art. 15 link rewriter: throughput on a generated GBK portal page, and (with
``--proxy``) proxy throughput through a mitmproxy running the OutboundLinks addon vs. the same
page passed through unrewritten. Prints figures and ratios; not a test.

    .venv/bin/python scripts/bench_rewrite.py [--proxy] [--seconds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url
from govgate.core.link_rewrite import rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode

TARGET_MB_S = 100.0


PROFILES = {
    # share of (relative, absolute government/allowed, external) links; distinct external destinations (0: all unique)
    "portal": (0.78, 0.14, 0.08, 60),
    "worst": (0.70, 0.15, 0.15, 0),
}


def generate_page(links: int = 3000, seed: int = 7, profile: str = "portal") -> bytes:
    """A portal-like GBK page: head with styles and scripts, navigation, news lists, footer links.

    ``portal``: external links are the usual friendly-links/partner/social destinations, repeated;
    ``worst``: every external URL is different (no cache hits), twice the share.
    """
    rel_share, gov_share, _ext_share, distinct = PROFILES[profile]
    rnd = random.Random(seed)
    words = ["政务", "公开", "通知", "公告", "办事", "服务", "指南", "政策", "解读", "新闻", "发布", "信息", "互动",
             "交流", "数据", "统计", "规划", "计划", "人事", "财政", "预算", "决算", "建议", "提案", "办理"]
    ext = ["www.baidu.com", "weibo.com", "www.qq.com", "news.sina.com.cn", "v.youku.com", "evil.example"]
    gov = ["www.gov.cn", "www.beijing.gov.cn", "www.12377.cn", "portal.example.gov.cn", "data.stats.gov.cn"]
    out: list[str] = [
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="gbk">\n<title>某市人民政府门户网站</title>\n',
    ]
    css = "".join(f".c{i}{{margin:{i % 7}px;padding:{i % 5}px;color:#{i * 7919 % 0xffffff:06x}}}\n" for i in range(800))
    out.append(f"<style>\n{css}</style>\n")
    js_lines = []
    for i in range(1200):
        js_lines.append(f"  var s{i} = '<a href=\"http://ads{i}.example/\">' + {i} * 3; if (s{i}.length < {i}) "
                        f"{{ document.title = \"{rnd.choice(words)}\"; }}\n")
    out.append("<script>\n(function(){\n" + "".join(js_lines) + "})();\n</script>\n</head>\n<body>\n")
    out.append('<div id="header" class="c1"><img src="/static/logo.png" alt="门户"><ul class="nav">\n')
    for i in range(links):
        if i % 50 == 0:
            out.append(f'</ul></div>\n<!-- 栏目 {i} -->\n<div class="c{i % 800} list"><h2>{rnd.choice(words)}'
                       f'{rnd.choice(words)}</h2><ul>\n')
        r = rnd.random()
        title = "".join(rnd.choice(words) for _ in range(rnd.randint(4, 12)))
        if r < rel_share:
            href = f"/{rnd.choice(['xxgk', 'zwfw', 'news', 'zcjd'])}/{2026}{i % 12 + 1:02d}/t{i:08d}.html"
        elif r < rel_share + gov_share:
            href = f"https://{rnd.choice(gov)}/{rnd.choice(['a', 'b', 'c'])}/{i}.html"
        else:
            n = rnd.randrange(distinct) if distinct else i
            href = f"http://{ext[n % len(ext)]}/s?wd={words[n % len(words)]}&amp;i={n}"
        out.append(f'<li class="item c{i % 800}"><span class="date">2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}</span>'
                   f'<a href="{href}" target="_blank" title="{title}">{title}</a></li>\n')
    out.append("</ul></div>\n<div id=\"footer\"><p>主办单位：某市人民政府办公厅 版权所有</p>"
               "<form action=\"/search\" method=\"get\"><input name=q><button>搜索</button></form>"
               "<script>var _hm = _hm || []; (function(){ var hm = document.createElement('script'); })();</script>"
               "</div>\n</body></html>\n")
    return "".join(out).encode("gbk")


def bench_rewrite(body: bytes, seconds: float, label: str) -> float:
    keys = GatewayKeys.from_bytes(b"b" * 32)
    classifier = HostClassifier(Outbound(("gov.cn",), ("www.12377.cn",), RedirectMode.WARN), ("portal.example.gov.cn",))
    origin = "https://portal.example.gov.cn"

    def once() -> int:
        r = rewrite_html(body, content_type="text/html", document_url=origin + "/index.html", classifier=classifier,
                         make_leave_url=lambda u: origin + leave_url("/__govgate", u, keys))
        return r.rewritten

    rewritten = once()
    runs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        once()
        runs += 1
    elapsed = time.perf_counter() - start
    mb_s = len(body) * runs / elapsed / 1e6
    print(f"[{label}] page: {len(body) / 1024:.0f} KiB GBK, 3000 links, rewritten per page: {rewritten}")
    print(f"[{label}] rewrite: {elapsed / runs * 1000:.2f} ms/page, {mb_s:.1f} MB/s, {mb_s / TARGET_MB_S:.2f}x the "
          f"{TARGET_MB_S:.0f} MB/s target")
    return mb_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--proxy", action="store_true", help="also measure proxy throughput (needs wrk)")
    args = parser.parse_args()
    for profile in PROFILES:
        bench_rewrite(generate_page(profile=profile), args.seconds, profile)
    body = generate_page()
    if args.proxy:
        from scripts_bench_proxy import bench_proxy  # type: ignore[import-not-found]
        bench_proxy(body, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
