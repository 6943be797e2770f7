"""The audit log a real gateway writes (``docs/audit.md``, Art. 20): one scenario of logins, failures, a lockout, a
logout, an idle session, a leave page and policy reloads, then its JSON Lines records are read back.

Checks: each event with the fields every record has (time with its offset, request id, client, account, decision,
reason, article), the policy hash of reload records against the file's bytes, no secret in any record, the
request id of a refusal page found in the log, and `govgate audit verify` accepting the whole directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from govgate.core.leave_link import leave_url
from govgate.files import load_key_file
from tests.command import GOVGATE
from tests.e2e.harness import (
    OFFICE_ADDRESS,
    Gateway,
    Upstream,
    add_account,
    read_records,
    start_gateway,
    wait_for_record,
)
from tests.e2e.login import Browser, fresh_code, wrong_code
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Audit-trail-passphrase-58"
WRONG_PASSWORD = "Audit-wrong-guess-9931"
RECORD_FIELDS = ("time", "event", "request_id", "client", "country", "device", "account", "method", "host",
                   "path", "rule", "decision", "reason", "article")
REQUEST_ID = re.compile(r"<code>([^<]+)</code>")
IDLE_SECONDS = 3
BROKEN_POLICY = "version: 1\ngateway: [this is not, a mapping\n"


@dataclass
class Scenario:
    gw: Gateway
    audit_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)  # passwords, session and pending cookie values
    codes: list[str] = field(default_factory=list)  # TOTP codes typed, right and wrong
    good_policy_sha256: str = ""
    broken_policy_sha256: str = ""
    lock_page_request_id: str = ""
    deny_page_request_id: str = ""
    verify: subprocess.CompletedProcess[str] | None = None


def cookie_value(browser: Browser, name: str) -> str:
    value = browser.http.cookies.get(name)
    assert value, f"no {name} cookie"
    return value


@pytest.fixture(scope="module")
def scenario(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    workdir = tmp_path_factory.mktemp("audit-e2e")
    (workdir / "secrets").mkdir()
    policy = workdir / "policy.yaml"
    data = policy_data(workdir, upstream.url, session={"idle_timeout": f"{IDLE_SECONDS}s", "absolute_timeout": "8h"})
    write_policy(policy, data)
    totp = {name: add_account(policy, name, PASSWORD) for name in ("auditee", "lockme", "sleeper")}
    gw = start_gateway(policy)
    s = Scenario(gw=gw, audit_dir=workdir / "audit", secrets=[PASSWORD, WRONG_PASSWORD])
    try:
        # A failed login (known account, wrong password) and one for a name that does not exist.
        assert Browser(gw.url, "10.30.0.1").password("auditee", WRONG_PASSWORD).status_code == 200
        assert Browser(gw.url, "10.30.0.1").password("no-such-user", WRONG_PASSWORD).status_code == 200
        # A failed MFA, then a successful login with MFA, a staff request, and a logout.
        b = Browser(gw.url, "10.30.0.2")
        assert b.password("auditee", PASSWORD).status_code == 303
        s.secrets.append(cookie_value(b, "govgate-pending"))
        bad = wrong_code(totp["auditee"])
        s.codes.append(bad)
        assert b.mfa(bad).status_code == 200
        good = fresh_code(totp["auditee"])
        s.codes.append(good)
        assert b.mfa(good).status_code == 303
        s.secrets.append(cookie_value(b, "govgate-session"))
        s.secrets.append(cookie_value(b, "govgate-csrf"))
        assert b.http.get("/oa/").status_code == 200
        token = b.csrf("/__govgate/logout")
        assert b.http.post("/__govgate/logout", data={"csrf": token}).status_code == 200
        # A lockout (max_failures: 3), and an attempt while locked.
        locker = Browser(gw.url, "10.30.0.3")
        answers = [locker.password("lockme", WRONG_PASSWORD) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        s.lock_page_request_id = REQUEST_ID.findall(answers[-1].text)[-1]
        assert locker.password("lockme", PASSWORD).status_code == 429
        # A refusal page (the `deny` rule) names its request id.
        denied = Browser(gw.url, OFFICE_ADDRESS).http.get("/secret/thing")
        assert denied.status_code == 403
        s.deny_page_request_id = REQUEST_ID.findall(denied.text)[-1]
        # A session left idle past idle_timeout, then used.
        sleeper = Browser(gw.url, OFFICE_ADDRESS)
        code = fresh_code(totp["sleeper"])
        assert sleeper.password("sleeper", PASSWORD).status_code == 303
        assert sleeper.mfa(code).status_code == 303
        s.codes.append(code)
        s.secrets.append(cookie_value(sleeper, "govgate-session"))
        idle_from = time.monotonic()
        wait_for(lambda: time.monotonic() - idle_from > IDLE_SECONDS + 0.3, IDLE_SECONDS + 5, "the idle timeout")
        assert sleeper.http.get("/oa/").status_code == 303
        # The leave page (Art. 15), signed with the gateway's key as the outbound-link rewriter does.
        keys = load_key_file(workdir / "secrets" / "gateway.key", create=False)
        leave = Browser(gw.url, OFFICE_ADDRESS).http.get(
            leave_url("/__govgate", "https://www.example.com/reports?q=1", keys))
        assert leave.status_code == 200
        assert "www.example.com" in leave.text
        # A good policy edit, a broken one (refused, last good kept), then the good one back.
        data["access"][0]["paths"].append("/about/**")
        write_policy(policy, data)
        s.good_policy_sha256 = hashlib.sha256(policy.read_bytes()).hexdigest()
        wait_for_record(s.audit_dir, "the reload of the edited policy",
                        lambda r: r["event"] == "policy.reload" and r.get("policy_sha256") == s.good_policy_sha256)
        policy.write_text(BROKEN_POLICY, encoding="utf-8")
        s.broken_policy_sha256 = hashlib.sha256(BROKEN_POLICY.encode()).hexdigest()
        wait_for_record(s.audit_dir, "the broken policy's refusal", lambda r: r["event"] == "policy.refused")
        assert Browser(gw.url, OFFICE_ADDRESS).http.get("/about/x").status_code != 403  # last good still in force
        write_policy(policy, data)
        wait_for(lambda: sum(r["event"] == "policy.reload" and r.get("policy_sha256") == s.good_policy_sha256
                             for r in read_records(s.audit_dir)) == 2, 10, "the reload of the repaired policy")
    finally:
        assert gw.stop() == 0  # SIGTERM flushes the audit queue
    s.records = read_records(s.audit_dir)
    s.verify = subprocess.run([*GOVGATE, "audit", "verify", "--dir", str(s.audit_dir), "-p", str(policy)],
                              capture_output=True, text=True, cwd=workdir, timeout=60)
    return s


def events(s: Scenario, name: str, **fields: object) -> list[dict[str, Any]]:
    found = [r for r in s.records if r["event"] == name and all(r.get(k) == v for k, v in fields.items())]
    assert found, f"no {name} record with {fields}; events seen: {sorted({r['event'] for r in s.records})}"
    return found


def assert_record_fields(record: dict[str, Any]) -> None:
    missing = [f for f in RECORD_FIELDS if f not in record]
    assert not missing, f"{record['event']} lacks {missing}: {record}"
    when = datetime.fromisoformat(record["time"])
    assert when.utcoffset() == timedelta(hours=8), record["time"]  # ISO 8601 with the gateway's offset
    assert abs(datetime.now(when.tzinfo) - when) < timedelta(minutes=10)


def assert_request_event(record: dict[str, Any], client: str, decision: str, article: str) -> None:
    assert_record_fields(record)
    assert record["request_id"], record
    assert record["client"] == client, record
    assert record["decision"] == decision, record
    assert record["article"] == article, record
    assert record["method"] in ("GET", "POST"), record
    assert record["path"], record


def test_every_record_has_the_documented_fields(scenario: Scenario) -> None:
    assert len(scenario.records) > 20
    for record in scenario.records:
        assert_record_fields(record)


def test_login_failures_success_and_mfa_failure_are_recorded(scenario: Scenario) -> None:
    failed = events(scenario, "login.failure", account="auditee")[0]
    assert_request_event(failed, "10.30.0.1", "refuse", "Art. 30")
    assert failed["reason"] == "credentials"
    unknown = events(scenario, "login.failure", client="10.30.0.1", account=None)[0]
    assert unknown["reason"] == "credentials"
    assert "no-such-user" not in json.dumps(unknown)  # unknown names are kept as a keyed hash only
    password = events(scenario, "login.password", account="auditee")[0]
    assert_request_event(password, "10.30.0.2", "ok", "Art. 30")
    mfa = events(scenario, "mfa.failure", account="auditee")[0]
    assert_request_event(mfa, "10.30.0.2", "refuse", "Art. 30")
    assert mfa["reason"] == "credentials"
    success = events(scenario, "login.success", account="auditee")[0]
    assert_request_event(success, "10.30.0.2", "allow", "Art. 30")
    assert success["path"] == "/__govgate/mfa"
    allowed = events(scenario, "access", account="auditee", decision="allow")[0]
    assert_request_event(allowed, "10.30.0.2", "allow", allowed["article"])
    assert allowed["rule"] == "office system"


def test_the_lockout_is_recorded_with_the_request_id_of_its_429_page(scenario: Scenario) -> None:
    lockout = events(scenario, "lockout", account="lockme")
    assert len(lockout) == 1  # one record per lock
    assert_request_event(lockout[0], "10.30.0.3", "refuse", "Art. 30")
    assert lockout[0]["reason"] == "locked"
    assert lockout[0]["request_id"] == scenario.lock_page_request_id
    until = datetime.fromisoformat(lockout[0]["until"])
    assert timedelta(minutes=29) < until - datetime.fromisoformat(lockout[0]["time"]) <= timedelta(minutes=30)
    assert len(events(scenario, "login.failure", account="lockme")) == 3
    locked = events(scenario, "login.locked", client="10.30.0.3")[0]
    assert_request_event(locked, "10.30.0.3", "refuse", "Art. 30")
    assert locked["reason"] == "locked"
    assert locked["account"] == "lockme"


def test_a_refusal_page_request_id_is_the_one_in_the_log(scenario: Scenario) -> None:
    refused = [r for r in scenario.records if r["request_id"] == scenario.deny_page_request_id]
    assert len(refused) == 1
    assert_request_event(refused[0], OFFICE_ADDRESS, "refuse", refused[0]["article"])
    assert refused[0]["event"] == "access"
    assert refused[0]["rule"] == "the rest"
    assert refused[0]["path"] == "/secret/thing"


def test_logout_and_idle_expiry_are_recorded(scenario: Scenario) -> None:
    logout = events(scenario, "logout", account="auditee")[0]
    assert_request_event(logout, "10.30.0.2", "ok", "Art. 30")
    expired = events(scenario, "session.expired")
    assert len(expired) == 1
    assert_request_event(expired[0], OFFICE_ADDRESS, "login", "Art. 30")
    assert expired[0]["reason"] == "idle"  # which timeout (Art. 30): idle, not absolute
    assert expired[0]["path"] == "/oa/"
    assert expired[0]["account"] == "sleeper"  # whose session timed out


def test_the_leave_page_view_is_recorded(scenario: Scenario) -> None:
    view = events(scenario, "leave.view")[0]
    assert_request_event(view, OFFICE_ADDRESS, "allow", "Art. 15")
    assert view["destination_host"] == "www.example.com"


def test_policy_reloads_carry_the_hash_of_the_file_they_read(scenario: Scenario) -> None:
    loads = events(scenario, "policy.load")
    assert loads[0]["article"] == "Art. 20"
    reloads = events(scenario, "policy.reload", policy_sha256=scenario.good_policy_sha256)
    assert len(reloads) == 2  # the edit, and the repair after the broken file
    for record in reloads:
        assert_record_fields(record)
        assert record["decision"] == "ok"
        assert record["article"] == "Art. 20"
    refused = events(scenario, "policy.refused")
    assert len(refused) == 1  # refused once, not again at every poll
    assert_record_fields(refused[0])
    assert refused[0]["decision"] == "refuse"
    assert refused[0]["article"] == "Art. 20"
    assert refused[0]["policy_sha256"] == scenario.broken_policy_sha256
    assert refused[0]["problems"]


def test_no_record_holds_a_password_a_totp_code_or_a_cookie_value(scenario: Scenario) -> None:
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in scenario.records)
    for secret in scenario.secrets:
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text  # nor the form Redis keeps ids in
    # Six-digit codes could collide with the microseconds of a time or a run of a hex MAC: look at every
    # other value.
    values = [str(v) for r in scenario.records for k, v in r.items() if k not in ("time", "until", "mac", "prev")]
    for code in scenario.codes:
        assert not any(code in v for v in values), code


def test_govgate_audit_verify_accepts_the_log(scenario: Scenario) -> None:
    assert scenario.verify is not None
    assert scenario.verify.returncode == 0, scenario.verify.stdout + scenario.verify.stderr
    assert scenario.verify.stdout.startswith("OK ")
    assert f"{len(scenario.records)} records" in scenario.verify.stdout
