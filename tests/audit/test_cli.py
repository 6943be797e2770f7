"""`govgate audit verify | backup | show` as an operator or auditor runs them (``docs/cli.md``, ``docs/audit.md``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from govgate.cli.main import run_cli
from govgate.core.keys import GatewayKeys
from tests.command import GOVGATE
from tests.policies import policy_data, write_policy

from .conftest import write_days


@pytest.fixture
def log(tmp_path: Path, keys: GatewayKeys) -> tuple[Path, Path]:
    directory = tmp_path / "audit"
    write_days(directory, keys, days=3, per_day=5)
    key_file = tmp_path / "gateway.key"
    key_file.write_text(bytes(range(32)).hex() + "\n")
    return directory, key_file


def cli(*argv: str) -> int:
    return run_cli(list(argv))


def test_verify_prints_the_count_and_time_range_and_exits_0(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = log
    assert cli("audit", "verify", "--dir", str(directory), "--key-file", str(key_file)) == 0
    out = capsys.readouterr().out
    assert "20 records in 3 files" in out
    assert "2026-11-23T09:00:00+08:00 – 2026-11-25T09:00:00+08:00" in out


def test_verify_names_the_first_broken_record_and_exits_1(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = log
    path = directory / "audit-2026-11-24.jsonl"
    lines = path.read_bytes().split(b"\n")
    del lines[4]
    path.write_bytes(b"\n".join(lines))
    assert cli("audit", "verify", "--dir", str(directory), "--key-file", str(key_file)) == 1
    out = capsys.readouterr().out
    assert f"{path}:5: missing" in out


def test_the_real_command_exits_1_on_tamper(log: tuple[Path, Path]) -> None:
    directory, key_file = log
    (directory / "audit-2026-11-23.jsonl").unlink()
    done = subprocess.run(
        [*GOVGATE, "audit", "verify", "--dir", str(directory), "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "audit-2026-11-24.jsonl:1: missing" in done.stdout


def test_backup_copies_and_verifies_and_verify_accepts_the_copy(
    log: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = log
    dest = tmp_path / "backup"
    assert cli("audit", "backup", str(dest), "--dir", str(directory), "--key-file", str(key_file)) == 0
    assert "verified: 20 records" in capsys.readouterr().out
    # The daily files, and the head anchor naming the newest record copied.
    daily = [p.name for p in directory.glob("audit-*.jsonl")]
    assert sorted(p.name for p in dest.iterdir()) == sorted([".head", *daily])
    assert cli("audit", "verify", "--dir", str(dest), "--key-file", str(key_file)) == 0


def test_a_backup_never_overwrites_an_earlier_backup_with_a_changed_log(
    log: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = log
    dest = tmp_path / "backup"
    assert cli("audit", "backup", str(dest), "--dir", str(directory), "--key-file", str(key_file)) == 0
    newest = directory / "audit-2026-11-25.jsonl"
    kept = (dest / newest.name).read_bytes()
    # Dropping the newest records is invisible to the chain alone; the earlier backup shows it.
    newest.write_bytes(b"".join(line + b"\n" for line in newest.read_bytes().split(b"\n")[:3]))
    capsys.readouterr()
    assert cli("audit", "backup", str(dest), "--dir", str(directory), "--key-file", str(key_file)) == 1
    assert f"{newest}:4: truncated" in capsys.readouterr().out
    assert (dest / newest.name).read_bytes() == kept


def test_show_filters_by_account_decision_and_time(log: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    directory, key_file = log
    args = ["audit", "show", "--dir", str(directory), "--key-file", str(key_file)]
    assert cli(*args, "--account", "lisi", "--decision", "refuse", "--since", "2026-11-24T00:00", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["request_id"] for r in records] == ["req-6", "req-12"]
    assert cli(*args, "--client", "10.0.9.0/24", "--until", "2026-11-24T23:59:59+08:00") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "account=zhangsan" in lines[0]
    assert "id=req-9" in lines[0]
    assert cli(*args, "--event", "audit.*") == 0
    assert len(capsys.readouterr().out.splitlines()) == 3 + 2  # three links, two seals


def test_show_rejects_a_bad_address(log: tuple[Path, Path]) -> None:
    directory, key_file = log
    with pytest.raises(SystemExit) as info:
        cli("audit", "show", "--dir", str(directory), "--key-file", str(key_file), "--client", "10.0.0.300")
    assert info.value.code == 2


def test_the_commands_take_the_directory_and_key_from_the_policy(
    tmp_path: Path, keys: GatewayKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(tmp_path / "policy.yaml", policy_data())  # audit log in audit/, key in secrets/, beside it
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gateway.key").write_text(bytes(range(32)).hex() + "\n")
    write_days(tmp_path / "audit", keys, days=2, per_day=2)
    policy = str(tmp_path / "policy.yaml")
    assert cli("-p", policy, "audit", "verify") == 0
    assert "7 records in 2 files" in capsys.readouterr().out
    assert cli("audit", "backup", str(tmp_path / "copy"), "-p", policy) == 0
    assert cli("audit", "verify", "-p", policy, "--dir", str(tmp_path / "copy")) == 0
    assert cli("audit", "show", "-p", policy, "--account", "zhangsan", "--json") == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["request_id"] for r in shown] == ["req-1", "req-3"]


def test_a_backup_of_a_log_that_lost_its_anchor_is_not_vouched_for_by_an_earlier_backup(
    log: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, key_file = log
    dest = tmp_path / "backup"
    assert cli("audit", "backup", str(dest), "--dir", str(directory), "--key-file", str(key_file)) == 0
    (directory / ".head").unlink()
    capsys.readouterr()
    assert cli("audit", "backup", str(dest), "--dir", str(directory), "--key-file", str(key_file)) == 1
    assert "head anchor" in capsys.readouterr().out


def test_export_key_writes_a_public_key_file_0644_once_that_verify_takes_instead_of_the_gateway_key(
    tmp_path: Path, keys: GatewayKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(tmp_path / "policy.yaml", policy_data())  # audit log in audit/, key in secrets/, beside it
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gateway.key").write_text(bytes(range(32)).hex() + "\n")
    write_days(tmp_path / "audit", keys, days=2, per_day=2)
    policy = str(tmp_path / "policy.yaml")
    exported = tmp_path / "for-the-auditor.json"
    assert cli("audit", "export-key", str(exported), "-p", policy) == 0
    assert exported.stat().st_mode & 0o777 == 0o644
    assert "for-the-auditor.json" in capsys.readouterr().out
    assert bytes(range(32)).hex() not in exported.read_text()
    # Never over an existing file (not even its own).
    before = exported.read_bytes()
    assert cli("audit", "export-key", str(exported), "-p", policy) == 1
    assert "already exists" in capsys.readouterr().err
    assert exported.read_bytes() == before
    # An auditor's copy, with no gateway key next to it.
    copy = tmp_path / "elsewhere" / "audit-copy"
    assert cli("audit", "backup", str(copy), "-p", policy) == 0
    capsys.readouterr()
    assert cli("audit", "verify", "--dir", str(copy), "--key-file", str(exported), "-p", str(tmp_path / "none")) == 0
    out = capsys.readouterr().out
    assert "7 records in 2 files" in out
    assert "exported audit key" in out
    day = copy / "audit-2026-11-24.jsonl"
    data = bytearray(day.read_bytes())
    data[40] ^= 0x01
    day.chmod(0o640)
    day.write_bytes(bytes(data))
    assert cli("audit", "verify", "--dir", str(copy), "--key-file", str(exported), "-p", str(tmp_path / "none")) == 1
    assert f"{day}:1: modified" in capsys.readouterr().out


def test_a_backup_of_the_policys_own_log_is_recorded_in_it_and_a_backup_of_a_copy_writes_nothing(
    tmp_path: Path, keys: GatewayKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(tmp_path / "policy.yaml", policy_data())  # audit log in audit/, key in secrets/, beside it
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gateway.key").write_text(bytes(range(32)).hex() + "\n")
    write_days(tmp_path / "audit", keys, days=2, per_day=2)
    policy = str(tmp_path / "policy.yaml")
    assert cli("audit", "backup", str(tmp_path / "first"), "-p", policy) == 0
    records = [json.loads(line) for p in sorted((tmp_path / "audit").glob("audit-*.jsonl"))
               for line in p.read_text().splitlines()]
    backup = records[-1]
    assert backup["event"] == "audit.backup"
    assert backup["article"] == "Art. 20"
    assert (backup["dest"], backup["records"]) == (str((tmp_path / "first").resolve()), 7)
    assert cli("audit", "verify", "-p", policy) == 0  # recorded through the chain
    copy_before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "first").iterdir() if p.is_file())
    assert cli("audit", "backup", str(tmp_path / "second"), "--dir", str(tmp_path / "first"), "-p", policy) == 0
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "first").iterdir() if p.is_file()) == copy_before
    capsys.readouterr()


@pytest.mark.parametrize("keep_bytes", [0, 600, 32 << 20])
def test_show_prints_the_same_whether_it_reads_the_log_once_or_twice(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keep_bytes: int
) -> None:
    """Lines the filter lets through are kept from the checking walk up to a bound; past it, show reads again."""
    directory, key_file = log
    monkeypatch.setattr("govgate.audit.show.KEEP_BYTES", keep_bytes)
    args = ["audit", "show", "--dir", str(directory), "--key-file", str(key_file), "--json"]
    assert cli(*args, "--decision", "allow", "--event", "access") == 0
    shown = [json.loads(line)["request_id"] for line in capsys.readouterr().out.splitlines()]
    assert shown == [f"req-{n}" for n in range(15) if n % 3]
