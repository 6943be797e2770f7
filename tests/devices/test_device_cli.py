"""`govgate device …` through ``run_cli`` with a real policy file, key file, accounts file and audit log (Art. 19,
Art. 30; every action an Art. 20 audit record)."""

from __future__ import annotations

import io
import json
import stat
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from govgate.cli.main import run_cli
from govgate.core import device_certs
from govgate.core.device_registry import DeviceKind, DeviceState, RegisteredDevice
from govgate.devices_file import load_registry, update_registry
from tests.policies import TZ, policy_data, write_policy

P12_PASSWORD = "long enough password"


class Cli:
    def __init__(self, policy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.policy = policy
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str, stdin: str = "") -> int:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.monkeypatch.setattr("govgate.cli.account._have_terminal", lambda: False)
        code = run_cli([*argv, "-p", str(self.policy)])
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code

    def issue(self, device_id: str, *options: str, account: str = "zhangsan", password: str = P12_PASSWORD) -> int:
        return self("device", "issue", device_id, "--account", account, "--password-stdin", *options,
                    stdin=password + "\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def cli(folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    policy = write_policy(folder / "policy.yaml", policy_data(
        devices=[{"id": "ls-desktop", "account": "lisi", "cert_sha256": "ab" * 32, "expires": "2020-01-01"}]))
    monkeypatch.chdir(folder)
    c = Cli(policy, monkeypatch, capsys)
    for name in ("zhangsan", "lisi"):
        assert c("account", "add", name, "--password-stdin", stdin="Correct-horse-battery-9\n") == 0
    return c


def admin_records(folder: Path, prefix: str = "admin.device.") -> list[dict[str, object]]:
    records = []
    for path in sorted((folder / "audit").glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in records if str(r["event"]).startswith(prefix)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- ca init ------------------------------------------------------------------------------------------------------

def test_ca_init_makes_a_ca_whose_key_only_the_owner_can_read(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    ca_dir = folder / "device-ca"
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "ca.key") == 0o600
    cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    assert constraints.path_length == 0
    assert device_certs.fingerprint_text(device_certs.fingerprint(cert)) in cli.out
    [record] = admin_records(folder)
    assert record["event"] == "admin.device.ca_init"
    assert record["article"] == "Art. 19"


def test_ca_init_never_overwrites_an_existing_ca(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    before = (folder / "device-ca" / "ca.key").read_bytes(), (folder / "device-ca" / "ca.pem").read_bytes()
    assert cli("device", "ca", "init") == 1
    assert "exists" in cli.err
    assert ((folder / "device-ca" / "ca.key").read_bytes(), (folder / "device-ca" / "ca.pem").read_bytes()) == before
    assert [r["event"] for r in admin_records(folder)] == ["admin.device.ca_init"]


def test_issue_without_a_ca_says_to_make_one(cli: Cli, folder: Path) -> None:
    assert cli.issue("zs-laptop") == 1
    assert "govgate device ca init" in cli.err
    assert not (folder / "zs-laptop.p12").exists()


# -- issue --------------------------------------------------------------------------------------------------------

def test_issue_writes_a_password_protected_pkcs12_of_a_v3_client_certificate(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop", "--days", "30") == 0
    p12 = folder / "zs-laptop.p12"
    assert mode(p12) == 0o600
    with pytest.raises(ValueError, match="Invalid password"):
        pkcs12.load_pkcs12(p12.read_bytes(), b"wrong password")
    bundle = pkcs12.load_pkcs12(p12.read_bytes(), P12_PASSWORD.encode())
    assert bundle.cert is not None
    assert isinstance(bundle.key, ec.EllipticCurvePrivateKey)
    cert = bundle.cert.certificate
    assert cert.version is x509.Version.v3
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.public_key() == bundle.key.public_key()
    ca = x509.load_pem_x509_certificate((folder / "device-ca" / "ca.pem").read_bytes())
    assert [c.certificate for c in bundle.additional_certs] == [ca]
    assert device_certs.examine([cert], [ca], datetime.now(TZ)).chained
    assert 29 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 31
    fingerprint = device_certs.fingerprint_text(device_certs.fingerprint(cert))
    assert fingerprint in cli.out
    [device] = load_registry(folder / "devices.yaml")
    assert (device.id, device.account, device.kind, device.state) == (
        "zs-laptop", "zhangsan", DeviceKind.CERTIFICATE, DeviceState.ACTIVE)
    assert device.cert_sha256 == device_certs.fingerprint(cert)
    assert device.expires == cert.not_valid_after_utc.astimezone(TZ).date()
    records = admin_records(folder)
    assert records[-1]["event"] == "admin.device.issue"
    assert records[-1]["device"] == "zs-laptop"
    assert records[-1]["account"] == "zhangsan"
    assert P12_PASSWORD not in json.dumps(records)


def test_the_pkcs12_opens_in_openssl_and_legacy_bundles_open_too(cli: Cli, folder: Path) -> None:
    """OpenSSL reads the modern bundle (AES-256, PBKDF2) as Windows 10+, macOS, iOS, Android and browsers do, and
    ``--legacy`` gives a 3DES bundle for systems that refuse that (OpenSSL 3 needs its own -legacy to read it)."""
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop") == 0
    assert cli.issue("zs-old-pc", "--legacy") == 0
    for name, extra in (("zs-laptop", []), ("zs-old-pc", ["-legacy"])):
        out = subprocess.run(["openssl", "pkcs12", *extra, "-in", str(folder / f"{name}.p12"), "-nokeys",
                              "-passin", f"pass:{P12_PASSWORD}"], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("BEGIN CERTIFICATE") == 2
    info = subprocess.run(["openssl", "pkcs12", "-info", "-noout", "-in", str(folder / "zs-laptop.p12"),
                           "-passin", f"pass:{P12_PASSWORD}"], capture_output=True, text=True, check=True)
    assert "AES-256-CBC" in info.stderr


def test_issue_refuses_what_it_must_not_do(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop", account="nobody") == 1
    assert "no account named 'nobody'" in cli.err
    assert cli.issue("zs-laptop", password="short") == 1
    assert "at least 10 characters" in cli.err
    assert cli.issue("ls-desktop", account="lisi") == 1  # written in policy.yaml
    assert "listed in" in cli.err
    assert cli.issue("bad id!") == 1
    assert "invalid device id" in cli.err
    assert cli.issue("zs-laptop", "--days", "0") == 1
    assert not list(folder.glob("*.p12"))
    assert cli.issue("zs-laptop") == 0
    (folder / "elsewhere.p12").write_bytes(b"keep me")
    assert cli.issue("zs-laptop") == 1  # the id is taken
    assert "exists already" in cli.err
    assert cli.issue("zs-phone", "--out", "elsewhere.p12") == 1  # never over an existing file
    assert (folder / "elsewhere.p12").read_bytes() == b"keep me"
    assert [d.id for d in load_registry(folder / "devices.yaml")] == ["zs-laptop"]
    assert [r["event"] for r in admin_records(folder)] == ["admin.device.ca_init", "admin.device.issue"]


def test_without_a_terminal_the_password_must_come_from_stdin(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli("device", "issue", "zs-laptop", "--account", "zhangsan") == 1
    assert "--password-stdin" in cli.err


# -- revoke, approve -----------------------------------------------------------------------------------------------

def pending_browser(folder: Path, device_id: str = "zhangsan-browser-1a2b3c") -> None:
    device = RegisteredDevice(id=device_id, account="zhangsan", kind=DeviceKind.BROWSER, state=DeviceState.PENDING,
                              created=datetime.now(TZ), token_sha256=b"\x01" * 32, label="办公室电脑")
    update_registry(folder / "devices.yaml", lambda reg: reg.with_new(device))


def test_revoke_marks_the_device_revoked_once(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop") == 0
    assert cli("device", "revoke", "zs-laptop") == 0
    [device] = load_registry(folder / "devices.yaml")
    assert device.state is DeviceState.REVOKED
    assert device.revoked is not None
    assert not load_registry(folder / "devices.yaml").active()
    assert cli("device", "revoke", "zs-laptop") == 1
    assert "revoked already" in cli.err
    assert cli("device", "revoke", "nothing") == 1
    assert "unknown device" in cli.err
    assert cli("device", "revoke", "ls-desktop") == 1
    assert "remove it there" in cli.err
    assert [r["event"] for r in admin_records(folder)][-1] == "admin.device.revoke"
    assert len([r for r in admin_records(folder) if r["event"] == "admin.device.revoke"]) == 1


def test_approve_activates_an_enrolled_browser_until_a_day(cli: Cli, folder: Path) -> None:
    pending_browser(folder)
    assert cli("device", "approve", "zhangsan-browser-1a2b3c", "--days", "90") == 0
    [device] = load_registry(folder / "devices.yaml")
    assert device.state is DeviceState.ACTIVE
    assert device.expires == datetime.now(TZ).date() + timedelta(days=90)
    assert "办公室电脑" in cli.out
    [record] = admin_records(folder)
    assert record["event"] == "admin.device.approve"
    assert record["expires"] == device.expires.isoformat()
    assert cli("device", "approve", "zhangsan-browser-1a2b3c") == 1  # not pending any more
    assert cli("device", "revoke", "zhangsan-browser-1a2b3c") == 0
    assert cli("device", "approve", "zhangsan-browser-1a2b3c") == 1  # revoked stays revoked


def test_only_enrolled_browsers_are_approved(cli: Cli) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop") == 0
    assert cli("device", "approve", "zs-laptop") == 1
    assert "not an enrolled browser" in cli.err


# -- list ---------------------------------------------------------------------------------------------------------

def test_list_shows_every_device_with_its_kind_expiry_and_state(cli: Cli, folder: Path) -> None:
    assert cli("device", "list") == 0
    assert "ls-desktop" in cli.out  # from policy.yaml
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop") == 0
    assert cli.issue("zs-phone") == 0
    assert cli("device", "revoke", "zs-phone") == 0
    pending_browser(folder)
    assert cli("device", "list", "--json") == 0
    rows = {row["id"]: row for row in map(json.loads, cli.out.splitlines())}
    assert {i: (r["account"], r["kind"], r["state"]) for i, r in rows.items()} == {
        "zs-laptop": ("zhangsan", "certificate", "active"),
        "zs-phone": ("zhangsan", "certificate", "revoked"),
        "zhangsan-browser-1a2b3c": ("zhangsan", "browser", "pending"),
        "ls-desktop": ("lisi", "policy", "expired"),
    }
    assert date.fromisoformat(rows["zs-laptop"]["expires"]) > date.today()
    assert all(r["last_seen"] == "-" for r in rows.values())
    assert cli("device", "list") == 0
    header, *lines = cli.out.splitlines()
    assert header.split() == ["ID", "ACCOUNT", "KIND", "EXPIRES", "LAST", "SEEN", "STATE"]
    assert len(lines) == 4


def test_the_audit_chain_holds_after_device_actions(cli: Cli, folder: Path) -> None:
    assert cli("device", "ca", "init") == 0
    assert cli.issue("zs-laptop") == 0
    assert cli("device", "revoke", "zs-laptop") == 0
    assert cli("audit", "verify") == 0
