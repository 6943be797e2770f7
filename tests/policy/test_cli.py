"""`govgate check` and `govgate schema` through the real CLI dispatcher."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from govgate.cli import check as check_module
from govgate.cli.main import run_cli
from govgate.core.policy.model import Policy
from govgate.errors import PolicyProblem
from govgate.regular_file import read_regular
from tests.policy.texts import BASE, GEOIP_DB, REPO, line_of, replace


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "geoip").mkdir()
    shutil.copy(GEOIP_DB, tmp_path / "geoip" / GEOIP_DB.name)
    return tmp_path


def test_check_of_the_shipped_policy_prints_ok_and_exits_0(policy_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = policy_dir / "policy.yaml"  # a copy: no accounts file or key left over from local trials
    shutil.copy(REPO / "policy.yaml", path)
    assert run_cli(["check", "-p", str(path)]) == 0
    *warnings, last = capsys.readouterr().out.splitlines()
    # The sample grant names zhangsan, whom a fresh copy has no accounts file for: a warning, not an error.
    assert any("overseas.grants[0].account: warning: account 'zhangsan' does not exist" in w for w in warnings)
    assert all(": warning: " in w for w in warnings)
    assert last == f"{path}: OK (3 rules, 1 grants, 2 networks, {len(warnings)} warning{'s' * (len(warnings) > 1)})"


GRANT = """overseas:
  grants:
    - {account: %s, countries: [%s], from: 2025-01-01, until: %s, reason: trip}
"""


def test_check_warns_but_passes_when_a_grant_names_a_missing_account_or_is_over(
        policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = policy_dir / "policy.yaml"
    path.write_text(BASE + GRANT % ("nobody", "GB", "2025-02-01"), encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    line = line_of(path.read_text(), "nobody")
    assert f"{path}:{line}: overseas.grants[0].account: warning: account 'nobody' does not exist " \
           "(there is no accounts file yet); the grant admits nobody until it is added" in out
    assert any(o.startswith(f"{path}:{line}: overseas.grants[0].until: warning: the grant ended on 2025-02-01")
               for o in out)
    assert out[-1] == f"{path}: OK (2 rules, 1 grants, 1 networks, 2 warnings)"


@pytest.mark.parametrize(("code", "message"), [
    ("UK", "'UK' is not an ISO 3166-1 country code; did you mean 'GB'?"),
    ("ZZ", "'ZZ' is a user-assigned code, not a country"),
    ("QX", "'QX' is a user-assigned code, not a country"),
    ("YU", "'YU' is not an assigned ISO 3166-1 country code"),
])
def test_check_refuses_country_codes_no_geoip_database_returns(
        policy_dir: Path, capsys: pytest.CaptureFixture[str], code: str, message: str) -> None:
    path = policy_dir / "policy.yaml"
    path.write_text(BASE + GRANT % ("zhangsan", code, "2099-01-01"), encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"overseas.grants[0].countries[0]: {message}" in out


def test_check_lists_every_problem_on_stdout_and_exits_1(policy_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    text = replace(BASE, "office: [10.0.0.0/8]", "office: [10.0.0.1/8]")
    text = replace(text, "networks: [office]", "networks: [ofice]") + "session: {idle_timout: 5m}\n"
    path = policy_dir / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    assert run_cli(["check", "--policy", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:{line_of(text, 'office: [10')}: networks.office[0]: '10.0.0.1/8' has host bits set; expected the "
        "network address: did you mean '10.0.0.0/8'?",
        f"{path}:{line_of(text, 'ofice')}: access[1].networks[0]: unknown network 'ofice'; did you mean 'office'?",
        f"{path}:{line_of(text, 'idle_timout')}: session.idle_timout: unknown key 'idle_timout'; did you mean "
        "'idle_timeout'?",
    ]


def test_check_of_a_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["check", "-p", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read the policy file" in capsys.readouterr().out


def test_check_reports_the_geoip_database_only_when_it_is_missing(policy_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = policy_dir / "policy.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 0
    (policy_dir / "geoip" / GEOIP_DB.name).unlink()
    capsys.readouterr()
    assert run_cli(["check", "-p", str(path)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert re.match(rf"{re.escape(str(path))}:\d+: geoip\.database: expected a MaxMind DB", line)


def test_check_includes_the_accounts_file(policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = policy_dir / "policy.yaml"
    path.write_text(BASE, encoding="utf-8")
    (policy_dir / "accounts.yaml").write_text("accounts: [unterminated\n", encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{policy_dir / 'accounts.yaml'}:")


def test_check_runs_the_registered_checks_of_other_files(policy_dir: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def accounts_check(policy: Policy) -> list[PolicyProblem]:
        return [PolicyProblem(str(policy.accounts_file), 3, "accounts.zhangsan", "bad hash")]

    monkeypatch.setattr(check_module, "EXTRA_CHECKS", [accounts_check])
    path = policy_dir / "policy.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 1
    assert capsys.readouterr().out == f"{policy_dir / 'accounts.yaml'}:3: accounts.zhangsan: bad hash\n"


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["version", "gateway", "geoip", "access"]
    assert "idle_timeout" in schema["properties"]["session"]["properties"]


def test_check_warns_of_a_public_catch_all_below_a_staff_rule(policy_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # IIS serves /OA/x, /oa./x and ASP.NET /(S(x))/oa/x as /oa/x: the staff rule misses them, a public /** takes them.
    path = policy_dir / "policy.yaml"
    path.write_text(BASE + '  - {name: everything else, paths: ["/**"], allow: public}\n', encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    line = line_of(path.read_text(), "everything else")
    assert any(o.startswith(f"{path}:{line}: access[2].paths: warning: '/**' makes every path public that the staff "
                            "rule 'oa' above does not match") for o in out), out
    path.write_text(BASE + '  - {name: the rest, paths: ["/**"], allow: deny}\n', encoding="utf-8")
    assert run_cli(["check", "-p", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_a_policy_that_is_not_a_regular_file_is_refused_at_once(policy_dir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Found in review: a FIFO at policy.yaml blocked the reload thread for ever, SIGHUP and SIGTERM behind it.
    path = policy_dir / "policy.yaml"
    os.mkfifo(path)
    assert run_cli(["check", "-p", str(path)]) == 1  # returns at once: nothing waits for a writer
    assert f"{path}: cannot read the policy file: not a regular file (a FIFO)" in capsys.readouterr().out


def test_read_regular_reads_files_and_refuses_the_rest(tmp_path: Path) -> None:
    regular = tmp_path / "a.txt"
    regular.write_bytes(b"x" * 3_000_000)
    assert read_regular(regular) == b"x" * 3_000_000
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match=r"not a regular file \(a FIFO\)"):
        read_regular(tmp_path / "fifo")
    with pytest.raises(IsADirectoryError):
        read_regular(tmp_path)
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(Path("/dev/null"))
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "absent")
