"""A staff member abroad on a granted trip (Art. 19), and sessions that time out (Art. 30), through a real gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import (
    GB_ADDRESS,
    OFFICE_ADDRESS,
    US_ADDRESS,
    Gateway,
    Upstream,
    start_gateway,
)
from tests.e2e.login import Browser
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Trip-to-London-2026"


@pytest.fixture(scope="module")
def gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("trip")
    (workdir / "secrets").mkdir()
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    data = policy_data(workdir, upstream.url)
    data["overseas"] = {"grants": [{
        "account": "traveller", "countries": ["GB"],
        "from": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        "reason": "参加国际会议",
    }]}
    # The staff rule names only the office network: from abroad, the grant is the way in (Art. 19).
    data["session"] = {"idle_timeout": "3s", "absolute_timeout": "8h"}
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    g = start_gateway(policy)
    yield g
    assert g.stop() == 0


def test_a_granted_traveller_abroad_logs_in_and_works(gw: Gateway) -> None:
    secret = gw.add_account("traveller", PASSWORD)
    b = Browser(gw.url, GB_ADDRESS)
    assert b.http.get("/oa/").status_code == 303  # some grant could admit: on to login
    assert b.login("traveller", PASSWORD, secret).status_code == 303
    assert b.http.get("/oa/").status_code == 200


def test_a_session_opened_at_the_office_is_refused_from_abroad_without_a_grant(gw: Gateway) -> None:
    secret = gw.add_account("homebody", PASSWORD)
    office = Browser(gw.url, OFFICE_ADDRESS)
    assert office.login("homebody", PASSWORD, secret).status_code == 303
    b = Browser(gw.url, GB_ADDRESS)
    b.http.cookies.update(office.http.cookies)  # the same session cookie, now from the granted country
    r = b.http.get("/oa/", headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.json()["reason"] == "network"


def test_a_country_the_grant_does_not_name_is_refused_before_login(gw: Gateway) -> None:
    r = Browser(gw.url, US_ADDRESS).http.get("/oa/", headers={"Accept": "application/json"})
    assert r.status_code == 403
    # Outside the rule's networks with no grant that could let it in: the network step refuses it.
    assert r.json()["reason"] == "network"


def test_an_idle_session_ends_and_the_cookie_is_cleared(gw: Gateway) -> None:
    secret = gw.add_account("napper", PASSWORD)
    b = Browser(gw.url, OFFICE_ADDRESS)
    assert b.login("napper", PASSWORD, secret).status_code == 303
    assert b.http.get("/oa/").status_code == 200
    cookie = "; ".join(f"{k}={v}" for k, v in b.http.cookies.items())
    b.http.cookies.clear()
    # Idleness is the absence of requests, so this test lets the clock run past the idle timeout without
    # touching the session (any request would renew it), then asks once.
    idle_from = time.monotonic()
    wait_for(lambda: time.monotonic() - idle_from > 3.3, 10, "3.3 s of idleness")
    r = b.http.get("/oa/", headers={"Cookie": cookie})
    assert r.status_code == 303
    assert any(c.startswith("govgate-session=;") for c in r.headers.get_list("set-cookie"))
