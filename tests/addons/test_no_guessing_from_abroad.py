"""Nobody can guess a password, or lock a staff member out, from where that account could not get in anyway
(Art. 19 + Art. 30, ``docs/decisions.md`` "No password guessing from where nobody may enter"), in process: the
staff rule names only the office network and the one grant admits ``traveller`` (and ``roamer``) from GB.

- From an address no staff rule could admit (abroad without any grant that could, or at home outside every
  network): ``POST login`` is 403 (``overseas`` / ``network``), nothing checked, nothing counted.
- From the granted country, any other account gets exactly what a failed login gets — even with its right
  password — and never counts towards a lock; the granted account can still be locked from there.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from govgate.core.accounts import Accounts
from tests.accounts.builders import PASSWORD, SECRET, make_account
from tests.addons.gateway import Browser, InProcessGateway
from tests.policies import grant, policy
from tests.runtime import InProcessRuntime

# Addresses of the test GeoIP database's GB ranges (81.2.69.142/31, .144/28, .160/27, .192/28): a few, so that
# per-address counting in one test does not lock the address another test uses.
GB = ["81.2.69.142", "81.2.69.145", "81.2.69.161", "81.2.69.162", "81.2.69.193"]
US_ADDRESS = "216.160.83.57"
CN_ADDRESS = "111.235.160.1"
OFFICE_ADDRESS = "10.1.2.3"
MAX_FAILURES = 3  # the test policy's login.max_failures


@pytest.fixture
def runtime() -> InProcessRuntime:
    grants = [grant(account="traveller", countries=frozenset({"GB"})),
              grant(account="roamer", countries=frozenset({"GB"}), reason="lockout test")]
    accounts = Accounts(tuple(make_account(name) for name in ("traveller", "roamer", "lisi", "wangwu")))
    return InProcessRuntime(policy=policy(overseas={"grants": grants}), accounts=accounts)


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


def records(runtime: InProcessRuntime, event: str | tuple[str, ...], **fields: object) -> list[dict[str, Any]]:
    """The audit records (as written to the log) of ``event`` with ``fields``."""
    names = (event,) if isinstance(event, str) else event
    found = [e.to_record() for e in runtime.events if e.event in names]
    return [r for r in found if all(r.get(k) == v for k, v in fields.items())]


def normalised(page: str, username: str) -> str:
    """A login page with what legitimately differs between two attempts taken out: the name typed."""
    return re.sub(r'value="[^"]*"', 'value=""', page.replace(username, "NAME"))


@pytest.mark.parametrize(("client", "reason"), [(US_ADDRESS, "overseas"), (CN_ADDRESS, "network")])
async def test_a_login_from_where_no_staff_rule_could_admit_anyone_is_refused_with_403(
        gateway: InProcessGateway, runtime: InProcessRuntime, client: str, reason: str) -> None:
    r = await Browser(gateway, client).password("lisi", PASSWORD)
    assert r.status_code == 403
    assert reason in r.text
    [record] = records(runtime, "login.refused", client=client)
    assert record["reason"] == reason
    assert record["article"] == "Art. 19"


async def test_no_lockout_can_be_caused_from_an_address_no_rule_admits(gateway: InProcessGateway,
                                                                       runtime: InProcessRuntime) -> None:
    attacker = Browser(gateway, US_ADDRESS)
    for _ in range(MAX_FAILURES + 2):
        assert (await attacker.password("wangwu", "not-the-password")).status_code == 403
    # wangwu, in the office, is not locked: the attempts were never counted.
    assert (await Browser(gateway, OFFICE_ADDRESS).login("wangwu", PASSWORD, SECRET)).status_code == 303
    assert not records(runtime, ("login.failure", "lockout"), account="wangwu")


async def test_another_account_from_the_granted_country_gets_a_failed_login_even_with_its_password(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    granted = Browser(gateway, GB[0])
    failed = await granted.password("traveller", "a-wrong-password")  # what a real failed login looks like
    other = Browser(gateway, GB[0], cookies=granted.cookies)  # the same browser id: the same CSRF token
    answer = await other.password("lisi", PASSWORD)  # lisi's RIGHT password
    assert answer.status_code == failed.status_code == 200
    assert normalised(answer.text, "lisi") == normalised(failed.text, "traveller")
    assert "set-cookie" not in {k.lower() for k in answer.headers} - {k.lower() for k in failed.headers}
    [record] = records(runtime, "login.failure", account="lisi")
    assert record["reason"] == "overseas"
    assert record["counted"] is False
    assert not records(runtime, ("login.password", "login.success"), account="lisi")


async def test_an_account_without_a_grant_cannot_be_locked_from_the_granted_country(
        gateway: InProcessGateway) -> None:
    attacker = Browser(gateway, GB[1])
    for _ in range(MAX_FAILURES + 2):
        assert (await attacker.password("lisi", "guess")).status_code == 200  # never 429: nothing is counted
    assert (await Browser(gateway, OFFICE_ADDRESS).login("lisi", PASSWORD, SECRET)).status_code == 303


async def test_an_account_with_a_grant_can_still_be_locked_from_the_granted_country(
        gateway: InProcessGateway, runtime: InProcessRuntime) -> None:
    attacker = Browser(gateway, GB[2])
    statuses = [(await attacker.password("roamer", f"guess-{i}")).status_code for i in range(MAX_FAILURES)]
    assert statuses[-1] == 429
    assert (await Browser(gateway, GB[3]).password("roamer", PASSWORD)).status_code == 429  # the account is locked
    assert records(runtime, "lockout", account="roamer")


async def test_the_granted_traveller_logs_in_and_works_from_abroad(gateway: InProcessGateway,
                                                                   runtime: InProcessRuntime) -> None:
    b = Browser(gateway, GB[4])
    assert (await b.login("traveller", PASSWORD, SECRET)).status_code == 303
    assert (await b.get("/oa/")).forwarded
    [success] = records(runtime, "login.success", account="traveller")
    assert success["client"] == GB[4]
