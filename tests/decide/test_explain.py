"""`govgate explain` end to end: a real policy file, the real GeoIP test database, the real CLI parser."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from govgate.cli.main import run_cli
from tests.policies import device, grant, policy_data, write_policy


def explain_policy() -> dict[str, Any]:
    """The test policy with two of zhangsan's devices (one expired) and a grant for him in Great Britain."""
    return policy_data(
        devices=[device("zs-laptop", "zhangsan", cert_sha256=bytes.fromhex("ab" * 32)),
                 device("old-pc", "zhangsan", token="zhangsan-old-pc-enrolment-01", expires=date(2026, 1, 1))],
        overseas={"grants": [grant(account="zhangsan", countries=frozenset({"GB"}))]},
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path / "policy.yaml", explain_policy())


def explain(policy: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(["explain", "-p", str(policy), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_office_address_on_a_staff_path_is_sent_to_login(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "10.1.2.3", "--path", "/oa/", "--at", "2026-12-05T10:00", capsys=capsys)
    assert code == 0
    assert "decision: LOGIN" in out
    assert "rule:     #1 'office system'" in out
    assert "policy.yaml:" in out
    assert "✓ network   10.1.2.3 is in network 'office'" in out
    assert "✗ session" in out


def test_json_output_is_one_object_with_rule_and_checks(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "81.2.69.142", "--account", "zhangsan", "--groups", "staff",
                           "--device", "zs-laptop", "--path", "/oa/inbox", "--at", "2026-12-05T10:00", "--json",
                           capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert report["decision"] == "forward"
    assert report["allowed"] is True
    assert report["status"] == 200
    assert report["rule"]["name"] == "office system"
    assert report["rule"]["index"] == 1
    assert report["rule"]["line"] > 0
    assert report["request"]["country"] == "GB"
    assert report["grant"]["reason"] == "参加国际会议"
    assert [c["name"] for c in report["checks"]] == ["rule", "network", "overseas", "session", "account", "group"]
    assert all(c["passed"] for c in report["checks"])


def test_overseas_refusal_names_the_reason_and_article(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # After the grant's window the same request is refused.
    code, out, _ = explain(policy, "--ip", "81.2.69.142", "--account", "zhangsan", "--groups", "staff",
                           "--device", "zs-laptop", "--path", "/oa/", "--at", "2026-12-20T10:00", "--json",
                           capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert report["decision"] == "refuse"
    assert report["reason"] == "overseas"
    assert report["article"] == "Art. 19"
    assert report["checks"][-1]["passed"] is False


def test_text_output_marks_the_failed_check(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "216.160.83.56", "--path", "/oa/", "--at", "2026-12-05T10:00",
                           capsys=capsys)
    assert code == 0
    assert "decision: REFUSE (403)  reason: network" in out
    assert "✗ network" in out


def test_public_and_unmatched_paths(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "216.160.83.56", "--path", "/news/a", "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["decision"] == "forward"
    code, out, _ = explain(policy, "--ip", "216.160.83.56", "--path", "/admin", "--json", capsys=capsys)
    assert json.loads(out)["reason"] == "denied"


def test_gate_pages_are_served_to_everyone(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "216.160.83.56", "--path", "/__govgate/login?next=/oa/", "--json",
                           capsys=capsys)
    assert code == 0
    assert json.loads(out)["decision"] == "gate-page"


def test_expired_device_is_not_recognised(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "216.160.83.56", "--device", "old-pc", "--path", "/oa/",
                           "--at", "2026-12-05T10:00", "--json", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert report["request"]["device"] is None
    assert report["reason"] == "network"
    assert "expired" in report["notes"][0]


@pytest.mark.parametrize("args", [
    ["--ip", "999.1.1.1"],
    ["--ip", "not-an-ip"],
    ["--ip", "10.1.2.3", "--at", "yesterday"],
    ["--ip", "10.1.2.3", "--device", "no-such-device"],
    ["--ip", "10.1.2.3", "--country", "Britain"],
    ["--ip", "10.1.2.3", "--groups", "staff"],
    ["--ip", "10.1.2.3", "--host", "[1:2]"],  # the gateway answers 400: nothing to explain
    ["--ip", "10.1.2.3", "--host", "portal.example.gov.cn:99999"],
])
def test_bad_arguments_exit_2(policy: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = explain(policy, *args, capsys=capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("govgate explain: --")


def test_missing_ip_is_a_usage_error(policy: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(["explain", "-p", str(policy)])
    assert exc.value.code == 2


def test_invalid_policy_exits_1_listing_its_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = explain_policy()
    data["access"][1]["networks"] = ["ofice"]
    bad = write_policy(tmp_path / "policy.yaml", data)
    code, _out, err = explain(bad, "--ip", "10.1.2.3", capsys=capsys)
    assert code == 1
    assert "ofice" in err
    assert "policy.yaml:" in err


def test_the_installed_command_runs(policy: Path) -> None:
    govgate = Path(sys.executable).parent / "govgate"
    result = subprocess.run([str(govgate), "explain", "-p", str(policy), "--ip", "2001:db8::1", "--path", "/oa/",
                             "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["decision"] == "login"


def write_accounts_file(folder: Path, **accounts: dict[str, object]) -> None:
    from datetime import datetime

    from govgate.accounts_file import write_accounts
    from govgate.core.accounts import Account, Accounts
    from govgate.core.keys import GatewayKeys
    from govgate.core.totp import encrypt_secret, new_totp_secret
    from tests.policies import TZ

    keys = GatewayKeys.from_bytes(bytes(range(32)))

    items = tuple(
        Account(name=name, password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                totp_secret=encrypt_secret(keys, name, new_totp_secret()),
                groups=tuple(fields.get("groups", ("staff",))),  # type: ignore[arg-type]
                expires=fields.get("expires"), disabled=bool(fields.get("disabled", False)),  # type: ignore[arg-type]
                created=datetime(2026, 1, 1, tzinfo=TZ))
        for name, fields in accounts.items())
    write_accounts(folder / "accounts.yaml", Accounts(items))


def test_account_details_come_from_the_accounts_file(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_accounts_file(policy.parent, zhangsan={"groups": ("staff",)}, wangwu={"disabled": True},
                        zhaoliu={"groups": ("guests",)})
    common = ["--ip", "10.1.2.3", "--path", "/oa/", "--at", "2026-12-05T10:00", "--json"]
    code, out, err = explain(policy, "--account", "zhangsan", *common, capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["decision"] == "forward"
    _, out, _ = explain(policy, "--account", "wangwu", *common, capsys=capsys)
    assert json.loads(out)["reason"] == "account"
    _, out, _ = explain(policy, "--account", "zhaoliu", *common, capsys=capsys)
    assert json.loads(out)["reason"] == "group"
    _, out, _ = explain(policy, "--account", "zhaoliu", "--groups", "staff", *common, capsys=capsys)
    assert json.loads(out)["decision"] == "forward"


def test_account_missing_from_the_accounts_file_is_a_bad_argument(
        policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_accounts_file(policy.parent, zhangsan={})
    code, _, err = explain(policy, "--ip", "10.1.2.3", "--account", "nobody", capsys=capsys)
    assert code == 2
    assert "unknown account 'nobody'" in err


def test_explain_names_the_grant_that_admits_a_traveller_through_the_office_only_rule(
        policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(policy, "--ip", "81.2.69.142", "--account", "zhangsan", "--groups", "staff",
                           "--path", "/oa/", "--at", "2026-12-05T10:00", "--json", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    assert report["decision"] == "forward"
    assert report["grant"]["index"] == 0
    assert report["grant"]["reason"] == "参加国际会议"
    assert report["grants_checked"] == [{"index": 0, "line": grant_line(policy), "reason": "参加国际会议",
                                         "failed": []}]


@pytest.mark.parametrize(("args", "failed"), [
    (("--account", "lisi", "--at", "2026-12-05T10:00"), "account: the grant names 'zhangsan', not 'lisi'"),
    (("--account", "zhangsan", "--at", "2026-12-20T10:00"), "window: 2026-12-20T10:00+08:00 is outside"),
    (("--account", "zhangsan", "--at", "2026-12-05T10:00", "--country", "US"), "country: US is not one of GB"),
])
def test_explain_says_which_condition_of_each_grant_failed(
        policy: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], failed: str) -> None:
    code, out, _ = explain(policy, "--ip", "81.2.69.142", "--groups", "staff", "--path", "/oa/", *args,
                           capsys=capsys)
    assert code == 0
    assert "decision: REFUSE (403)  reason: network" in out
    assert f"✗ #0 (line {grant_line(policy)}, 参加国际会议): {failed}" in out


def grant_line(policy: Path) -> int:
    """The line of the policy's first grant, as the loader numbers it."""
    from govgate.core.policy.load import read_policy_text

    return read_policy_text(policy.read_text(encoding="utf-8"), policy).policy_or_error().grants[0].line


def test_without_an_accounts_file_the_account_is_not_called_enabled(
        policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not (policy.parent / "accounts.yaml").exists()
    common = ["--ip", "10.1.2.3", "--path", "/oa/", "--at", "2026-12-05T10:00", "--account", "zhangsan",
              "--groups", "staff"]
    code, out, _ = explain(policy, *common, "--json", capsys=capsys)
    assert code == 0
    report = json.loads(out)
    account = next(c for c in report["checks"] if c["name"] == "account")
    assert "enabled" not in account["detail"].replace("taken as enabled", "")
    assert "no accounts file" in account["detail"]
    assert any("no accounts file" in n and "not known" in n for n in report["notes"])
    code, out, _ = explain(policy, *common, capsys=capsys)
    assert "account 'zhangsan' is enabled" not in out
    assert "note:     account 'zhangsan': there is no accounts file" in out


def test_an_account_not_in_the_file_explained_with_groups_says_so(
        policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_accounts_file(policy.parent, zhangsan={})
    code, out, _ = explain(policy, "--ip", "10.1.2.3", "--path", "/oa/", "--at", "2026-12-05T10:00",
                           "--account", "newcomer", "--groups", "staff", capsys=capsys)
    assert code == 0
    assert "has no account 'newcomer'" in out
    assert "account 'newcomer' is enabled" not in out
