"""Evidence an auditor can use (Art. 20, Art. 19, Art. 30), from a log a real gateway wrote.

One gateway run under three policies (a start and two reloads): office work, a public page, refusals from the
US and from an address of unknown country, a traveller in GB on an overseas grant, an idle and an absolute
session timeout, then SIGTERM. Then, as an auditor would: `govgate audit show` with each filter (results
checked record by record against the log read back), `audit policy --at` across the reloads, the exported key
on a copy of the log that has no gateway key next to it, and what a changed byte does to both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from govgate.audit.log_dir import AuditDir
from govgate.core.audit_chain import event_record
from govgate.core.audit_event import AuditEvent
from govgate.core.audit_keys import parse_document
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from tests.e2e.harness import (
    CN_ADDRESS,
    GB_ADDRESS,
    GOVGATE,
    OFFICE_ADDRESS,
    US_ADDRESS,
    Upstream,
    add_account,
    read_records,
    start_gateway,
    wait_for_record,
)
from tests.e2e.login import Browser
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "Evidence-for-the-auditor-77"
UNKNOWN_ADDRESS = "198.51.100.7"  # public, and not in the bundled GeoIP test database: country unknown
GRANT_REASON = "参加国际会议 (London)"
IDLE, ABSOLUTE = 3.0, 5.0


@dataclass
class Evidence:
    workdir: Path
    policy: Path
    audit: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    texts: list[bytes] = field(default_factory=list)  # the three policy files, as loaded
    loaded_at: list[datetime] = field(default_factory=list)  # the load and the two reloads, as recorded
    stopped_at: datetime | None = None


def evidence_policy(workdir: Path, upstream: str, version: int) -> dict[str, object]:
    now = datetime.now(TZ)
    data = policy_data(workdir, upstream)
    data["overseas"] = {"grants": [{
        "account": "traveller", "countries": ["GB"],
        "from": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "reason": GRANT_REASON,
    }]}
    data["session"] = {"idle_timeout": f"{IDLE:g}s", "absolute_timeout": f"{ABSOLUTE:g}s"}
    if version >= 2:
        # The US range becomes a listed network (so: not overseas), and addresses of unknown country count as home.
        data["networks"] = {"office": ["10.0.0.0/8", "2001:db8::/32"], "partner": ["216.160.83.0/24"]}
        data["geoip"] = {**data["geoip"], "unknown": "home"}  # type: ignore[dict-item]
    if version >= 3:
        data["access"][0]["paths"].append("/about/**")  # type: ignore[index]
    return data


def reload_to(ev: Evidence, data: dict[str, object]) -> None:
    write_policy(ev.policy, data)
    text = ev.policy.read_bytes()
    sha = hashlib.sha256(text).hexdigest()
    record = wait_for_record(ev.audit, f"the reload of policy {sha[:12]}",
                             lambda r: r["event"] == "policy.reload" and r.get("policy_sha256") == sha)
    ev.texts.append(text)
    ev.loaded_at.append(datetime.fromisoformat(record["time"]))


def staff_get(browser: Browser, path: str = "/oa/") -> int:
    return browser.http.get(path, headers={"Accept": "application/json"}).status_code


@pytest.fixture(scope="module")
def evidence(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    workdir = tmp_path_factory.mktemp("evidence")
    (workdir / "secrets").mkdir()
    ev = Evidence(workdir, workdir / "policy.yaml", workdir / "audit")
    write_policy(ev.policy, evidence_policy(workdir, upstream.url, 1))
    secrets = {name: add_account(ev.policy, name, PASSWORD) for name in ("staffer", "traveller", "sleeper",
                                                                         "marathon")}
    ev.texts.append(ev.policy.read_bytes())
    gw = start_gateway(ev.policy)
    try:
        load = wait_for_record(ev.audit, "the policy load", lambda r: r["event"] == "policy.load")
        ev.loaded_at.append(datetime.fromisoformat(load["time"]))
        office = Browser(gw.url, OFFICE_ADDRESS)
        assert office.login("staffer", PASSWORD, secrets["staffer"]).status_code == 303
        assert staff_get(office) == 200
        assert Browser(gw.url, CN_ADDRESS).http.get("/").status_code == 200
        assert staff_get(Browser(gw.url, US_ADDRESS)) == 403
        assert staff_get(Browser(gw.url, UNKNOWN_ADDRESS)) == 403
        traveller = Browser(gw.url, GB_ADDRESS)
        assert traveller.login("traveller", PASSWORD, secrets["traveller"]).status_code == 303
        assert staff_get(traveller) == 200
        assert staff_get(traveller, "/oa/report") == 200
        # Art. 30: one session left idle past idle_timeout, one kept busy past absolute_timeout.
        sleeper = Browser(gw.url, OFFICE_ADDRESS)
        assert sleeper.login("sleeper", PASSWORD, secrets["sleeper"]).status_code == 303
        marathon = Browser(gw.url, OFFICE_ADDRESS)
        assert marathon.login("marathon", PASSWORD, secrets["marathon"]).status_code == 303
        opened = time.monotonic()
        slept = False
        while time.monotonic() - opened < ABSOLUTE + 0.4:
            if not slept and time.monotonic() - opened > IDLE + 0.4:
                assert staff_get(sleeper) == 303  # idle past idle_timeout, well before absolute_timeout
                slept = True
            if staff_get(marathon) != 200:
                break
            time.sleep(0.5)  # a busy user: never idle for IDLE seconds
        assert slept
        assert staff_get(marathon) == 303
        reload_to(ev, evidence_policy(workdir, upstream.url, 2))
        assert staff_get(Browser(gw.url, US_ADDRESS)) == 403
        assert staff_get(Browser(gw.url, UNKNOWN_ADDRESS)) == 403
        again = Browser(gw.url, GB_ADDRESS)
        assert again.login("traveller", PASSWORD, secrets["traveller"]).status_code == 303
        assert staff_get(again, "/oa/after-reload") == 200
        reload_to(ev, evidence_policy(workdir, upstream.url, 3))
    finally:
        assert gw.stop() == 0
    ev.records = read_records(ev.audit)
    stop = [r for r in ev.records if r["event"] == "gateway.stop"]
    assert len(stop) == 1
    ev.stopped_at = datetime.fromisoformat(stop[0]["time"])
    return ev


def govgate(*args: str, cwd: Path, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*GOVGATE, *args], capture_output=True, cwd=cwd, timeout=120, input=input_bytes)


def show(ev: Evidence, *filters: str, directory: Path | None = None, key: Path | None = None) -> list[dict[str, Any]]:
    """The records `audit show --json` prints for ``filters`` (asserting it succeeds)."""
    source = ["--dir", str(directory), "--key-file", str(key)] if directory and key else []
    done = govgate("audit", "show", "-p", str(ev.policy), *source, "--json", *filters, cwd=ev.workdir)
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in records]


def expected(ev: Evidence, keep: Callable[[dict[str, Any]], bool]) -> list[int]:
    found = seqs([r for r in ev.records if keep(r)])
    assert found, "a filter test needs something to find"
    return found


def when(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["time"])


# -- the records themselves ----------------------------------------------------------------------------------


def test_an_access_admitted_by_an_overseas_grant_names_the_grant(evidence: Evidence) -> None:
    abroad = [r for r in evidence.records if r["event"] == "access" and r["client"] == GB_ADDRESS
              and r["decision"] == "allow"]
    assert [r["path"] for r in abroad] == ["/oa/", "/oa/report", "/oa/after-reload"]
    assert all(r["grant"] == {"index": 0, "reason": GRANT_REASON} for r in abroad)
    at_home = [r for r in evidence.records if r["event"] == "access" and r["decision"] == "allow"
               and r["client"] != GB_ADDRESS]
    assert at_home
    assert all("grant" not in r for r in at_home)


def test_session_expiry_says_idle_or_absolute(evidence: Evidence) -> None:
    expired = {r["account"]: r["reason"] for r in evidence.records if r["event"] == "session.expired"}
    assert expired == {"sleeper": "idle", "marathon": "absolute"}


def test_the_gateway_start_and_stop_are_records(evidence: Evidence) -> None:
    start = [r for r in evidence.records if r["event"] == "gateway.start"]
    assert len(start) == 1
    assert start[0]["version"]
    assert start[0]["policy_sha256"] == hashlib.sha256(evidence.texts[0]).hexdigest()
    assert start[0]["listen"]
    assert all(url.startswith("http://127.0.0.1:") for url in start[0]["listen"])
    assert start[0]["tls"]["insecure"] is True
    stop = [r for r in evidence.records if r["event"] == "gateway.stop"]
    assert stop[0]["reason"] == "SIGTERM"
    assert evidence.records[-1]["event"] == "gateway.stop"  # written last, and flushed before the exit


def test_every_policy_loaded_is_kept_by_its_hash_and_named_by_its_record(evidence: Evidence) -> None:
    loads = [r for r in evidence.records if r["event"] in ("policy.load", "policy.reload")]
    assert [r["policy_sha256"] for r in loads] == [hashlib.sha256(t).hexdigest() for t in evidence.texts]
    for record, text in zip(loads, evidence.texts, strict=True):
        kept = evidence.audit / record["policy_text"]
        assert kept.read_bytes() == text
        assert kept.name == f"{record['policy_sha256']}.yaml"
        assert kept.stat().st_mode & 0o777 == 0o440
    assert sorted(p.name for p in (evidence.audit / "policies").iterdir()) == sorted(
        f"{hashlib.sha256(t).hexdigest()}.yaml" for t in evidence.texts)


# -- audit show -------------------------------------------------------------------------------------------


def test_show_filters_each_give_exactly_the_records_that_match(evidence: Evidence) -> None:
    ev = evidence
    assert seqs(show(ev, "--event", "access")) == expected(ev, lambda r: r["event"] == "access")
    assert seqs(show(ev, "--event", "session.*", "--event", "gateway.*")) == expected(
        ev, lambda r: r["event"].startswith(("session.", "gateway.")))
    assert seqs(show(ev, "--account", "traveller")) == expected(ev, lambda r: r["account"] == "traveller")
    assert seqs(show(ev, "--country", "gb")) == expected(ev, lambda r: r["country"] == "GB")
    assert seqs(show(ev, "--client", "216.160.83.0/24")) == expected(ev, lambda r: r["client"] == US_ADDRESS)
    assert seqs(show(ev, "--decision", "refuse")) == expected(ev, lambda r: r["decision"] == "refuse")
    assert seqs(show(ev, "--rule", "office system")) == expected(ev, lambda r: r["rule"] == "office system")
    granted = expected(ev, lambda r: "grant" in r)
    assert seqs(show(ev, "--grant")) == granted
    assert seqs(show(ev, "--grant", "0")) == granted
    assert seqs(show(ev, "--grant", "国际会议")) == granted
    assert show(ev, "--grant", "1") == []
    assert seqs(show(ev, "--since", "7d")) == seqs(ev.records)
    assert show(ev, "--since", "1s", "--until", "1s") == []


def test_show_time_window_is_inclusive_at_both_ends(evidence: Evidence) -> None:
    ev = evidence
    since, until = ev.loaded_at[1], ev.loaded_at[2]
    found = show(ev, "--since", since.isoformat(), "--until", until.isoformat())
    assert seqs(found) == expected(ev, lambda r: since <= when(r) <= until)
    assert found[0]["event"] == "policy.reload"
    assert found[-1]["event"] == "policy.reload"
    naive = since.astimezone(TZ).replace(tzinfo=None).isoformat()  # no offset: the gateway's timezone
    assert seqs(show(ev, "--since", naive, "--event", "access")) == expected(
        ev, lambda r: r["event"] == "access" and when(r) >= since)


def overseas_then(ev: Evidence, record: dict[str, Any]) -> bool:
    """What the policy in force at the record's time said: under the first, GB, US and unknown-country clients were
    overseas; after the first reload the US range is a listed network and unknown countries count as home."""
    client = record.get("client")
    if when(record) < ev.loaded_at[1]:
        return client in (GB_ADDRESS, US_ADDRESS, UNKNOWN_ADDRESS)
    return client == GB_ADDRESS


def test_show_overseas_judges_each_record_by_the_policy_in_force_at_its_time(evidence: Evidence) -> None:
    ev = evidence
    overseas = expected(ev, lambda r: overseas_then(ev, r))
    assert seqs(show(ev, "--overseas")) == overseas
    assert {r["client"] for r in ev.records if r["seq"] in overseas} == {GB_ADDRESS, US_ADDRESS, UNKNOWN_ADDRESS}
    # Unknown-country and US clients after the reload are in the log, but were not overseas then.
    assert [r for r in ev.records if r["client"] == UNKNOWN_ADDRESS and when(r) > ev.loaded_at[1]]
    # "Who reached staff functions from abroad last week", in one command:
    reached = show(ev, "--overseas", "--event", "access", "--decision", "allow", "--since", "7d")
    assert seqs(reached) == expected(ev, lambda r: overseas_then(ev, r) and r["event"] == "access"
                                     and r["decision"] == "allow")
    assert {(r["account"], r["grant"]["index"]) for r in reached} == {("traveller", 0)}


def test_show_writes_csv_for_spreadsheets_and_a_table_and_lines_for_people(evidence: Evidence) -> None:
    ev = evidence
    done = govgate("audit", "show", "-p", str(ev.policy), "--csv", "--grant", cwd=ev.workdir)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8"))))
    assert list(rows[0])[:4] == ["time", "event", "request_id", "client"]
    assert [(r["client"], r["grant_index"], r["grant_reason"], r["verified"]) for r in rows] == [
        (GB_ADDRESS, "0", GRANT_REASON, "ok")] * 3
    assert [r["path"] for r in rows] == ["/oa/", "/oa/report", "/oa/after-reload"]
    table = govgate("audit", "show", "-p", str(ev.policy), "--table", "--grant", cwd=ev.workdir).stdout.decode()
    header, *lines = table.splitlines()
    assert header.split()[:3] == ["TIME", "EVENT", "DECISION"]
    assert len(lines) == 3
    assert all("traveller" in line and "#0 参加国际会议" in line for line in lines)
    plain = govgate("audit", "show", "-p", str(ev.policy), "--grant", cwd=ev.workdir).stdout.decode().splitlines()
    assert len(plain) == 3
    assert all("account=traveller" in line and "grant=#0" in line for line in plain)


# -- audit policy --at ------------------------------------------------------------------------------------


def policy_at(ev: Evidence, at: datetime | str, *extra: str, directory: Path | None = None,
              key: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    source = ["--dir", str(directory), "--key-file", str(key)] if directory and key else []
    stamp = at if isinstance(at, str) else at.isoformat()
    return govgate("audit", "policy", "-p", str(ev.policy), *source, "--at", stamp, *extra, cwd=ev.workdir)


def test_policy_at_prints_the_exact_text_in_force_across_two_reloads(evidence: Evidence) -> None:
    ev = evidence
    moments = [ev.loaded_at[0] + (ev.loaded_at[1] - ev.loaded_at[0]) / 2, ev.loaded_at[1],
               ev.loaded_at[2] - timedelta(microseconds=1), ev.loaded_at[2]]
    for at, text in zip(moments, [ev.texts[0], ev.texts[1], ev.texts[1], ev.texts[2]], strict=True):
        raw = policy_at(ev, at, "--raw")
        assert raw.returncode == 0, raw.stderr
        assert raw.stdout == text
        sha = hashlib.sha256(text).hexdigest()
        assert f"sha256: {sha}" in raw.stderr.decode()
        shown = policy_at(ev, at)
        assert shown.returncode == 0
        assert f"# sha256: {sha}\n".encode() in shown.stdout
        assert shown.stdout.endswith(text)
    naive = ev.loaded_at[1].astimezone(TZ).replace(tzinfo=None).isoformat()
    assert policy_at(ev, naive, "--raw").stdout == ev.texts[1]


def test_policy_at_a_time_with_no_policy_in_force_says_so(evidence: Evidence) -> None:
    ev = evidence
    before = policy_at(ev, ev.loaded_at[0] - timedelta(seconds=1))
    assert before.returncode == 1
    assert b"no policy was in force" in before.stderr
    assert ev.stopped_at is not None
    after = policy_at(ev, ev.stopped_at + timedelta(seconds=1))
    assert after.returncode == 1
    assert b"stopped" in after.stderr
    assert policy_at(ev, "yesterday-ish").returncode == 2


# -- the key to hand over -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handed_over(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """What an auditor gets: a backup of the log and the exported key, somewhere with no gateway key or policy."""
    elsewhere = tmp_path_factory.mktemp("auditor")
    key = elsewhere / "govgate-audit.key.json"
    done = govgate("audit", "export-key", str(key), "-p", str(evidence.policy), cwd=evidence.workdir)
    assert done.returncode == 0, done.stderr
    copy = elsewhere / "audit-copy"
    done = govgate("audit", "backup", str(copy), "-p", str(evidence.policy), cwd=evidence.workdir)
    assert done.returncode == 0, done.stderr
    assert not list(elsewhere.rglob("gateway.key"))
    return copy, key


def auditor(args: list[str], copy: Path, key: Path) -> subprocess.CompletedProcess[bytes]:
    """A command as the auditor runs it: in their own folder, no policy file there."""
    return govgate(*args, "--dir", str(copy), "--key-file", str(key), cwd=key.parent)


def test_the_exported_key_verifies_a_copy_with_no_gateway_key_next_to_it(evidence: Evidence,
                                                                         handed_over: tuple[Path, Path]) -> None:
    copy, key = handed_over
    done = auditor(["audit", "verify"], copy, key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(evidence.records)} records".encode() in done.stdout
    assert (copy / "policies").is_dir()  # the backup carries the kept policy texts
    # The auditor asks the same questions, with the same answers, from the copy alone.
    found = auditor(["audit", "show", "--overseas", "--json"], copy, key)
    assert found.returncode == 0, found.stderr
    assert seqs([json.loads(x) for x in found.stdout.decode().splitlines()]) == expected(
        evidence, lambda r: overseas_then(evidence, r))
    text = auditor(["audit", "policy", "--at", evidence.loaded_at[1].isoformat(), "--raw"], copy, key)
    assert text.stdout == evidence.texts[1]


def test_the_exported_key_fails_a_copy_with_one_byte_changed(evidence: Evidence, handed_over: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    copy, key = handed_over
    target = tmp_path / "changed"
    shutil.copytree(copy, target)
    day = sorted(target.glob("audit-*.jsonl"))[-1]
    data = bytearray(day.read_bytes())
    at = data.index(GB_ADDRESS.encode())
    data[at] = ord("9")  # 81.2.69.160 → 91.2.69.160: the traveller was never abroad
    day.chmod(0o640)
    day.write_bytes(bytes(data))
    done = auditor(["audit", "verify"], target, key)
    assert done.returncode == 1
    line = bytes(data[:at]).count(b"\n") + 1
    assert f"{day}:{line}: modified".encode() in done.stdout
    # `show` marks the changed record, and --strict refuses to show anything.
    shown = auditor(["audit", "show", "--json", "--account", "traveller"], target, key)
    assert shown.returncode == 0
    records = [json.loads(x) for x in shown.stdout.decode().splitlines()]
    changed = [r for r in records if r.get("_verify", "").startswith("modified")]
    assert [r["client"] for r in changed] == ["91.2.69.160"]
    # With the public key, what no signature vouches for any more is marked too: the records between the last
    # signature and the changed one. What follows it is still vouched for by the signed head anchor.
    after = records[records.index(changed[0]) + 1:]
    assert after
    assert all("_verify" not in r for r in after)
    assert all(r["_verify"].startswith("unverified") for r in records[:records.index(changed[0])] if "_verify" in r)
    strict = auditor(["audit", "show", "--strict", "--account", "traveller"], target, key)
    assert (strict.returncode, strict.stdout) == (1, b"")
    # A kept policy text changed is found too.
    kept = sorted((target / "policies").iterdir())[0]
    kept.chmod(0o640)
    kept.write_bytes(kept.read_bytes() + b"# edited\n")
    day.write_bytes(day.read_bytes().replace(b"91.2.69.160", GB_ADDRESS.encode()))
    done = auditor(["audit", "verify"], target, key)
    assert done.returncode == 1
    assert b"kept policy text" in done.stdout


def test_records_written_with_the_exported_key_alone_do_not_verify(handed_over: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    copy, key = handed_over
    target = tmp_path / "forged"
    shutil.copytree(copy, target)
    for f in target.rglob("*"):
        f.chmod(0o750 if f.is_dir() else 0o640)
    public = parse_document(key.read_bytes(), str(key)).public.public_bytes_raw()
    fake = GatewayKeys.from_bytes(public)  # the only key material the auditor has
    day = sorted(target.glob("audit-*.jsonl"))[-1]
    genuine = len(day.read_bytes().splitlines())
    writer = AuditDir(target, fake, AuditAlgorithm.HMAC_SHA256, TZ)
    now = datetime.now(TZ)
    try:
        writer.append([event_record(AuditEvent(event="access", time=now, client=GB_ADDRESS, account="traveller",
                                               decision="allow", path="/oa/forged"), fake)], now)
    finally:
        writer.close()
    assert len(day.read_bytes().splitlines()) > genuine
    done = auditor(["audit", "verify"], target, key)
    assert done.returncode == 1
    # The genuine records still verify; the first line the writer added with the exported key is refused.
    assert done.stdout.decode().startswith(f"{day}:{genuine + 1}: ")


# -- the report per article ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = govgate("audit", "report", "-p", str(evidence.policy), "--since", "1d", "--out", str(out),
                   cwd=evidence.workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"verifies" in done.stdout
    return out


def test_the_report_holds_the_evidence_of_each_article(evidence: Evidence, report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    for section in ("art15", "art19", "art20", "art30", "art29"):
        body = page[page.index(f'id="{section}"'):]
        body = body[:body.index("</section>")]
        assert body.index('lang="zh-CN"') < body.index('class="en" lang="en"')  # Chinese first, English below
    # Art. 19: the traveller's accesses under grant #0, with its reason, and the grant in force.
    assert f"<td>#0</td><td>{GRANT_REASON}</td><td>traveller</td><td>GB</td><td class=\"n\">3</td>" in page
    # Art. 30: one idle and one absolute timeout; four logins.
    assert "空闲超时 idle 1" in page
    assert "绝对超时 absolute 1" in page
    logins = sum(1 for r in evidence.records if r["event"] == "login.success")
    assert f"<b>{logins}</b> logins" in page
    # Art. 20: verified, the policy loads, and the start and stop.
    assert "intact: verified" in page
    for text in evidence.texts:
        assert hashlib.sha256(text).hexdigest() in page
    assert "SIGTERM" in page
    # Art. 29: this gateway served plain HTTP (insecure: true): said plainly.
    assert "not compliant" in page
    # Self-contained: nothing fetched, nothing executed.
    for outside in ('src="', "href=\"http", "url(", "@import", "<script", "<link"):
        assert outside not in page


def test_the_report_without_out_is_a_text_summary(evidence: Evidence) -> None:
    done = govgate("audit", "report", "-p", str(evidence.policy), "--since", "1d", cwd=evidence.workdir)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    for heading in ("第十五条 Art. 15", "第十九条 Art. 19", "第二十条 Art. 20", "Art. 25 & 30", "第二十九条 Art. 29"):
        assert heading in text
    assert f"#0 {GRANT_REASON} · traveller from GB: 3" in text


@pytest.mark.browser
def test_the_report_renders_in_a_browser_with_no_errors_and_no_requests(report: Path, tmp_path: Path) -> None:
    """The same check scripts/screenshots.py makes before it writes docs/screenshots/audit-report.png."""
    from tests.e2e.chromium import chromium_browser

    with chromium_browser() as browser:
        page = browser.new_page(locale="zh-CN", viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("networkidle")
        assert requests == [report.as_uri()]
        assert errors == []
        assert page.locator("h1").first.inner_text().startswith("审计证据报告")
        assert page.locator("section.article").count() == 5
        assert page.locator("svg").count() >= 3
        box = page.locator("#art19 svg").first.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 100
        page.screenshot(path=str(tmp_path / "audit-report.png"), full_page=True)
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4")  # printable: Chromium lays it out on A4 pages
        assert pdf.startswith(b"%PDF")
