"""Nobody can guess a password, or lock a staff member out, from where that account could not get in anyway
(Art. 19 + Art. 30, contract §5), through a real gateway whose staff rule names only the office network and
whose one grant admits `traveller` from GB.

- From an address no staff rule could admit (abroad without any grant that could, or at home outside every
  network): `POST login` is 403 (`overseas` / `network`), nothing checked, nothing counted.
- From the granted country, any other account gets exactly what a failed login gets — even with its right
  password — and never counts towards a lock; the granted account can still be locked from there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import (
    CN_ADDRESS,
    OFFICE_ADDRESS,
    US_ADDRESS,
    Gateway,
    Upstream,
    read_records,
    start_gateway,
    wait_for_record,
)
from tests.e2e.login import Browser
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

PASSWORD = "Grant-holder-passphrase-31"
# Addresses of the test GeoIP database's GB ranges (81.2.69.142/31, .144/28, .160/27, .192/28): a few, so that
# per-address counting in one test does not lock the address another test uses.
GB = ["81.2.69.142", "81.2.69.145", "81.2.69.161", "81.2.69.162", "81.2.69.193"]
MAX_FAILURES = 3  # base_policy's login.max_failures
SECRETS: dict[str, str] = {}  # account → TOTP secret, for this module's gateway


@pytest.fixture(scope="module")
def gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("no-guessing")
    (workdir / "secrets").mkdir()
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    data = policy_data(workdir, upstream.url)
    window = {"from": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
              "until": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")}
    data["overseas"] = {"grants": [
        {"account": "traveller", "countries": ["GB"], **window, "reason": "参加国际会议"},
        {"account": "roamer", "countries": ["GB"], **window, "reason": "lockout test"},
    ]}
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    g = start_gateway(policy)
    SECRETS.update({name: g.add_account(name, PASSWORD) for name in ("traveller", "roamer", "lisi", "wangwu")})
    yield g
    assert g.stop() == 0


def secret(gw: Gateway, name: str) -> str:
    return SECRETS[name]


def audit(gw: Gateway) -> Path:
    return gw.workdir / "audit"


def normalised(page: str, username: str) -> str:
    """A login page with what legitimately differs between two attempts taken out: the name typed."""
    return re.sub(r'value="[^"]*"', 'value=""', page.replace(username, "NAME"))


@pytest.mark.parametrize(("client", "reason"), [(US_ADDRESS, "overseas"), (CN_ADDRESS, "network")])
def test_a_login_from_where_no_staff_rule_could_admit_anyone_is_refused_with_403(
        gw: Gateway, client: str, reason: str) -> None:
    b = Browser(gw.url, client)
    r = b.password("lisi", PASSWORD)
    assert r.status_code == 403
    assert reason in r.text
    record = wait_for_record(audit(gw), "login.refused", lambda rec: rec["event"] == "login.refused"
                             and rec["client"] == client)
    assert record["reason"] == reason
    assert record["article"] == "Art. 19"


def test_no_lockout_can_be_caused_from_an_address_no_rule_admits(gw: Gateway) -> None:
    attacker = Browser(gw.url, US_ADDRESS)
    for _ in range(MAX_FAILURES + 2):
        assert attacker.password("wangwu", "not-the-password").status_code == 403
    # wangwu, in the office, is not locked: the attempts were never counted.
    office = Browser(gw.url, OFFICE_ADDRESS)
    assert office.login("wangwu", PASSWORD, secret(gw, "wangwu")).status_code == 303
    assert not [r for r in read_records(audit(gw)) if r["event"] in ("login.failure", "lockout")
                and r.get("account") == "wangwu"]


def test_another_account_from_the_granted_country_gets_a_failed_login_even_with_its_password(gw: Gateway) -> None:
    granted = Browser(gw.url, GB[0])
    failed = granted.password("traveller", "a-wrong-password")  # what a real failed login looks like
    other = Browser(gw.url, GB[0])
    other.http.cookies.update(granted.http.cookies)  # the same browser id: the same CSRF token on the page
    answer = other.password("lisi", PASSWORD)  # lisi's RIGHT password
    assert answer.status_code == failed.status_code == 200
    assert normalised(answer.text, "lisi") == normalised(failed.text, "traveller")
    assert "set-cookie" not in {k.lower() for k in answer.headers} - {k.lower() for k in failed.headers}
    record = wait_for_record(audit(gw), "the uncounted failure", lambda rec: rec["event"] == "login.failure"
                             and rec.get("account") == "lisi")
    assert record["reason"] == "overseas"
    assert record["counted"] is False
    assert not [r for r in read_records(audit(gw)) if r["event"] in ("login.password", "login.success")
                and r.get("account") == "lisi"]


def test_an_account_without_a_grant_cannot_be_locked_from_the_granted_country(gw: Gateway) -> None:
    attacker = Browser(gw.url, GB[1])
    for _ in range(MAX_FAILURES + 2):
        r = attacker.password("lisi", "guess")
        assert r.status_code == 200  # never 429: nothing is counted
    office = Browser(gw.url, OFFICE_ADDRESS)
    assert office.login("lisi", PASSWORD, secret(gw, "lisi")).status_code == 303


def test_an_account_with_a_grant_can_still_be_locked_from_the_granted_country(gw: Gateway) -> None:
    attacker = Browser(gw.url, GB[2])
    statuses = [attacker.password("roamer", f"guess-{i}").status_code for i in range(MAX_FAILURES)]
    assert statuses[-1] == 429
    assert Browser(gw.url, GB[3]).password("roamer", PASSWORD).status_code == 429  # the account is locked
    wait_for_record(audit(gw), "the lockout", lambda rec: rec["event"] == "lockout"
                    and rec.get("account") == "roamer")


def test_the_granted_traveller_logs_in_and_works_from_abroad(gw: Gateway) -> None:
    b = Browser(gw.url, GB[4])
    assert b.login("traveller", PASSWORD, secret(gw, "traveller")).status_code == 303
    assert b.http.get("/oa/").status_code == 200
    assert wait_for_record(audit(gw), "login.success", lambda rec: rec["event"] == "login.success"
                           and rec.get("account") == "traveller")["client"] == GB[4]
