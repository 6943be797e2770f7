"""Client certificates as device identity through real TLS handshakes (Art. 19: staff functions from allowed
devices; Art. 30: account–device binding, electronic certificates).

A certificate counts as the device only while it is within its validity period, is not revoked, and — when
``gateway.tls.client_ca`` is set or the gateway's own device CA is in use — chains to that CA. Every device
here is made for real: the device CA and the PKCS#12 by the ``govgate device`` command, the rest with
``cryptography``; the gateway is ``govgate run`` with TLS. The signal is the staff path ``/oa/`` from an
address outside every network: a device passes the network check (303 on to the login page), anything else
is refused (403 ``network``).
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from govgate.core import device_certs
from tests.command import GOVGATE
from tests.e2e.harness import CN_ADDRESS, Gateway, Upstream, add_account, read_records, start_gateway
from tests.pki import TestCA
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

P12_PASSWORD = "correct horse battery"
STAFF = {"X-Forwarded-For": CN_ADDRESS, "Accept": "application/json"}  # outside every network, in China


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key as PEM files, for ``ssl`` and curl."""

    cert: x509.Certificate
    pem: Path  # key and certificate chain, one file

    @property
    def sha256(self) -> str:
        return device_certs.fingerprint(self.cert).hex()


@dataclass
class DeviceGateway:
    gw: Gateway
    workdir: Path
    server_ca: trustme.CA

    @property
    def https(self) -> str:
        return "https://127.0.0.1:" + self.gw.url.rsplit(":", 1)[1]

    @property
    def port(self) -> int:
        return int(self.gw.url.rsplit(":", 1)[1])

    def context(self, client: ClientCert | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.server_ca.configure_trust(ctx)
        if client is not None:
            ctx.load_cert_chain(client.pem)
        return ctx

    def staff_status(self, client: ClientCert | None) -> tuple[int, str | None]:
        """The answer to one request for the staff path on a new TLS connection: (status, refusal reason)."""
        with httpx.Client(verify=self.context(client), timeout=10) as http:
            r = http.get(self.https + "/oa/", headers=STAFF)
        reason = r.json().get("reason") if r.status_code == 403 else None
        return r.status_code, reason

    def device(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GOVGATE, "device", *args, "-p", str(self.gw.policy_path)], input=stdin,
                              capture_output=True, text=True, cwd=self.workdir, timeout=60)


def write_client(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                 chain: tuple[x509.Certificate, ...] = ()) -> ClientCert:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    for c in (cert, *chain):
        pem += c.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pem)
    path.chmod(0o600)
    return ClientCert(cert, path)


def from_p12(p12: Path, out: Path) -> ClientCert:
    bundle = pkcs12.load_pkcs12(p12.read_bytes(), P12_PASSWORD.encode())
    assert bundle.key is not None
    assert bundle.cert is not None
    key = bundle.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return write_client(out, key, bundle.cert.certificate)


def self_signed(subject: x509.Name, *, serial: int, key: ec.EllipticCurvePrivateKey | None = None,
                days: int = 30) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def server_tls(workdir: Path) -> tuple[trustme.CA, Path]:
    (workdir / "secrets").mkdir(exist_ok=True)
    ca = trustme.CA()
    pem = workdir / "secrets" / "gateway.pem"
    ca.issue_cert("portal.example.gov.cn", "127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(pem))
    return ca, pem


def tls_policy(workdir: Path, upstream: str, pem: Path, *, client_ca: Path | None = None,
               devices: list[dict[str, str]] | None = None) -> Path:
    data = policy_data(workdir, upstream)
    tls: dict[str, str] = {"cert": str(pem)}
    if client_ca is not None:
        tls["client_ca"] = str(client_ca)
    data["gateway"].update(insecure=False, tls=tls)
    if devices:
        data["devices"] = devices
    return write_policy(workdir / "policy.yaml", data)


# -- the gateway's own device CA in use (govgate device ca init), no client_ca --------------------------------

@dataclass
class WithDeviceCa:
    gateway: DeviceGateway
    issued: ClientCert  # zs-laptop: `govgate device issue`
    phone: ClientCert  # zs-phone: issued, to be revoked by a test
    p12: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    listed_stranger: ClientCert  # self-signed, its fingerprint written in policy.yaml by hand
    expired: ClientCert  # issued by the device CA, listed by hand without an expiry, past its end
    not_yet: ClientCert  # issued by the device CA, listed by hand, valid only from tomorrow


@pytest.fixture(scope="module")
def with_device_ca(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WithDeviceCa]:
    workdir = tmp_path_factory.mktemp("device-ca")
    server_ca, pem = server_tls(workdir)
    now = dt.datetime.now(dt.UTC)
    # Certificates listed by hand need their fingerprints in the policy before the gateway starts.
    stranger_key, stranger_cert = self_signed(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")]),
                                              serial=7)
    policy_path = tls_policy(workdir, upstream.url, pem)
    add_account(policy_path, "zhangsan", "Correct-Horse-9-Staple")
    run = [*GOVGATE, "device", "-p", str(policy_path)]
    subprocess.run([*run, "ca", "init"], check=True, capture_output=True, cwd=workdir)
    for device in ("zs-laptop", "zs-phone"):
        subprocess.run([*run, "issue", device, "--account", "zhangsan", "--password-stdin", "--out",
                        str(workdir / f"{device}.p12")], input=P12_PASSWORD + "\n", text=True, check=True,
                       capture_output=True, cwd=workdir)
    from govgate.device_ca import load_ca
    from govgate.files import load_policy

    ca_key, ca_cert = load_ca(load_policy(policy_path, check_files=False))
    expired_key = ec.generate_private_key(ec.SECP256R1())
    expired_cert = device_certs.issue(ca_key, ca_cert, expired_key, "old-laptop", "zhangsan",
                                      now - dt.timedelta(days=40), days=30)
    future_key = ec.generate_private_key(ec.SECP256R1())
    future_cert = device_certs.issue(ca_key, ca_cert, future_key, "new-laptop", "zhangsan",
                                     now + dt.timedelta(days=1), days=30)
    expired = write_client(workdir / "old-laptop.pem", expired_key, expired_cert)
    not_yet = write_client(workdir / "new-laptop.pem", future_key, future_cert)
    stranger = write_client(workdir / "stranger.pem", stranger_key, stranger_cert)
    tls_policy(workdir, upstream.url, pem, devices=[
        {"id": "stranger-pc", "account": "zhangsan", "cert_sha256": stranger.sha256},
        {"id": "old-laptop", "account": "zhangsan", "cert_sha256": expired.sha256},
        {"id": "new-laptop", "account": "zhangsan", "cert_sha256": not_yet.sha256},
    ])
    gw = start_gateway(policy_path)
    try:
        yield WithDeviceCa(DeviceGateway(gw, workdir, server_ca),
                           from_p12(workdir / "zs-laptop.p12", workdir / "zs-laptop.pem"),
                           from_p12(workdir / "zs-phone.p12", workdir / "zs-phone.pem"),
                           workdir / "zs-laptop.p12", ca_key, ca_cert, stranger, expired, not_yet)
    finally:
        assert gw.stop() == 0


def test_a_certificate_issued_by_govgate_device_is_the_device(with_device_ca: WithDeviceCa) -> None:
    assert with_device_ca.gateway.staff_status(with_device_ca.issued) == (303, None)


def test_without_a_certificate_an_outside_address_is_refused(with_device_ca: WithDeviceCa) -> None:
    assert with_device_ca.gateway.staff_status(None) == (403, "network")


def test_an_expired_certificate_from_the_device_ca_is_not_the_device(with_device_ca: WithDeviceCa) -> None:
    assert with_device_ca.gateway.staff_status(with_device_ca.expired) == (403, "network")


def test_a_certificate_not_yet_valid_is_not_the_device(with_device_ca: WithDeviceCa) -> None:
    assert with_device_ca.gateway.staff_status(with_device_ca.not_yet) == (403, "network")


def test_a_forged_copy_with_the_same_subject_and_serial_but_another_key_is_refused(
        with_device_ca: WithDeviceCa, tmp_path: Path) -> None:
    """An attacker copies the issued certificate's subject, serial and issuer name and signs it with a CA of the
    same name; it chains to nothing the gateway trusts (and its fingerprint is no device's)."""
    real = with_device_ca.issued.cert
    fake_ca_key = ec.generate_private_key(ec.SECP256R1())
    fake_ca = (x509.CertificateBuilder().subject_name(with_device_ca.ca_cert.subject)
               .issuer_name(with_device_ca.ca_cert.subject).public_key(fake_ca_key.public_key())
               .serial_number(with_device_ca.ca_cert.serial_number)
               .not_valid_before(with_device_ca.ca_cert.not_valid_before_utc)
               .not_valid_after(with_device_ca.ca_cert.not_valid_after_utc)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .sign(fake_ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (x509.CertificateBuilder().subject_name(real.subject).issuer_name(real.issuer)
              .public_key(key.public_key()).serial_number(real.serial_number)
              .not_valid_before(real.not_valid_before_utc).not_valid_after(real.not_valid_after_utc)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(fake_ca_key, hashes.SHA256()))
    assert forged.subject == real.subject
    assert forged.serial_number == real.serial_number
    client = write_client(tmp_path / "forged.pem", key, forged, (fake_ca,))
    assert with_device_ca.gateway.staff_status(client) == (403, "network")


def test_a_self_signed_look_alike_is_refused(with_device_ca: WithDeviceCa, tmp_path: Path) -> None:
    real = with_device_ca.issued.cert
    key, look_alike = self_signed(real.subject, serial=real.serial_number)
    assert with_device_ca.gateway.staff_status(write_client(tmp_path / "alike.pem", key, look_alike)) == (
        403, "network")


def test_with_the_device_ca_in_use_a_hand_listed_fingerprint_that_does_not_chain_is_refused(
        with_device_ca: WithDeviceCa) -> None:
    """Once `govgate device ca init` has run, the CA is in use: a fingerprint in policy.yaml is not enough."""
    assert with_device_ca.gateway.staff_status(with_device_ca.listed_stranger) == (403, "network")


def test_the_certificate_request_names_the_device_ca(with_device_ca: WithDeviceCa) -> None:
    names = acceptable_ca_names(with_device_ca.gateway.port)
    assert names == [with_device_ca.ca_cert.subject.rfc4514_string()]


def test_the_pkcs12_works_with_curl(with_device_ca: WithDeviceCa) -> None:
    gw = with_device_ca.gateway
    server_ca = gw.workdir / "server-ca.pem"
    gw.server_ca.cert_pem.write_to_path(str(server_ca))
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(server_ca),
                          "--cert-type", "P12", "--cert", f"{with_device_ca.p12}:{P12_PASSWORD}",
                          "-H", f"X-Forwarded-For: {CN_ADDRESS}", "-H", "Accept: application/json",
                          gw.https + "/oa/"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "303"


def test_a_revoked_device_is_refused_within_two_seconds_on_a_kept_alive_connection(
        with_device_ca: WithDeviceCa) -> None:
    gw = with_device_ca.gateway
    with httpx.Client(verify=gw.context(with_device_ca.phone), timeout=10) as http:
        assert http.get(gw.https + "/oa/", headers=STAFF).status_code == 303
        out = gw.device("revoke", "zs-phone")
        assert out.returncode == 0, out.stderr
        revoked_at = time.monotonic()
        while (status := http.get(gw.https + "/oa/", headers=STAFF).status_code) == 303:
            assert time.monotonic() - revoked_at < 2.0, "the revoked device still passes after 2 s"
            time.sleep(0.05)
        assert status == 403
    assert gw.staff_status(with_device_ca.phone) == (403, "network")  # and on a new connection
    assert gw.staff_status(with_device_ca.issued) == (303, None)  # the other device of the account is unaffected
    records = [r for r in read_records(gw.workdir / "audit") if r["event"] == "admin.device.revoke"]
    assert [(r["device"], r["account"]) for r in records] == [("zs-phone", "zhangsan")]


def test_a_broken_registry_is_refused_and_the_last_good_one_stays_in_force(with_device_ca: WithDeviceCa) -> None:
    """A devices file cut or garbled (a hand edit, a full disk) never revokes or admits anything: the gateway
    keeps the registry in force, says so in health, and takes the file again once it is good."""
    gw = with_device_ca.gateway
    registry = gw.workdir / "devices.yaml"
    good = registry.read_text(encoding="utf-8")

    def reasons() -> list[str]:
        with httpx.Client(verify=gw.context(), timeout=10) as http:
            return list(http.get(gw.https + "/__govgate/health").json()["reasons"])

    def write(text: str) -> None:
        tmp = registry.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, registry)

    assert "policy_refused" not in reasons()
    try:
        write(good + "  broken: [unclosed\n")
        wait_for(lambda: "policy_refused" in reasons(), 5, "the gateway to refuse the broken registry")
        assert gw.staff_status(with_device_ca.issued) == (303, None)  # still the device
        assert gw.staff_status(None) == (403, "network")  # and nothing else is one
    finally:
        write(good)
    wait_for(lambda: "policy_refused" not in reasons(), 5, "the gateway to take the good registry again")
    assert gw.staff_status(with_device_ca.issued) == (303, None)
    refused = [r for r in read_records(gw.workdir / "audit") if r["event"] == "policy.refused"]
    assert refused
    assert "devices.yaml" in str(refused[-1]["reason"])


def acceptable_ca_names(port: int) -> list[str]:
    """The CA names the gateway's TLS CertificateRequest carries, as `openssl s_client` reads them (TLS 1.3's
    certificate_authorities extension)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-tls1_3"], input="", capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    if "Acceptable client certificate CA names" not in lines:
        return []
    start = lines.index("Acceptable client certificate CA names") + 1
    names = []
    for line in lines[start:]:
        if not line.startswith(("C =", "CN =", "O =", "OU =")) and "=" not in line.split(",")[0]:
            break
        names.append(line)
    return [openssl_to_rfc4514(n) for n in names]


def openssl_to_rfc4514(line: str) -> str:
    """``CN = GovGate device CA, O = x`` (OpenSSL's one-line form) as RFC 4514 (``O=x,CN=GovGate device CA``)."""
    parts = [p.strip().replace(" = ", "=", 1) for p in line.split(", ")]
    return ",".join(reversed(parts))


# -- no CA in use: a listed fingerprint is the device while the certificate is valid -------------------------

@dataclass
class WithoutCa:
    gateway: DeviceGateway
    listed: ClientCert
    listed_expired: ClientCert
    unlisted: ClientCert


@pytest.fixture(scope="module")
def without_ca(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WithoutCa]:
    workdir = tmp_path_factory.mktemp("no-ca")
    server_ca, pem = server_tls(workdir)
    operator = TestCA("Some operator CA")
    listed = operator.issue("zs-laptop", client=True)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = operator.issue("ls-laptop", client=True, not_before=past - dt.timedelta(days=30), not_after=past)
    unlisted = operator.issue("ww-laptop", client=True)
    clients = [write_client(workdir / f"{name}.pem", issued.key, issued.cert, issued.chain)
               for name, issued in (("listed", listed), ("expired", expired), ("unlisted", unlisted))]
    policy_path = tls_policy(workdir, upstream.url, pem, devices=[
        {"id": "zs-laptop", "account": "zhangsan", "cert_sha256": clients[0].sha256},
        {"id": "ls-laptop", "account": "lisi", "cert_sha256": clients[1].sha256},
    ])
    gw = start_gateway(policy_path)
    try:
        yield WithoutCa(DeviceGateway(gw, workdir, server_ca), *clients)
    finally:
        assert gw.stop() == 0


def test_without_a_ca_a_listed_fingerprint_is_the_device(without_ca: WithoutCa) -> None:
    assert without_ca.gateway.staff_status(without_ca.listed) == (303, None)


def test_without_a_ca_a_listed_but_expired_certificate_is_not_the_device(without_ca: WithoutCa) -> None:
    assert without_ca.gateway.staff_status(without_ca.listed_expired) == (403, "network")


def test_without_a_ca_an_unlisted_certificate_is_not_a_device(without_ca: WithoutCa) -> None:
    assert without_ca.gateway.staff_status(without_ca.unlisted) == (403, "network")


def test_without_a_ca_the_certificate_request_names_none(without_ca: WithoutCa) -> None:
    assert acceptable_ca_names(without_ca.gateway.port) == []


# -- client_ca set: only certificates chaining to the operator's CA, listed by fingerprint -------------------

@dataclass
class WithClientCa:
    gateway: DeviceGateway
    operator: TestCA
    listed: ClientCert
    listed_other_ca: ClientCert
    server_auth_only: ClientCert


@pytest.fixture(scope="module")
def with_client_ca(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WithClientCa]:
    workdir = tmp_path_factory.mktemp("client-ca")
    server_ca, pem = server_tls(workdir)
    operator = TestCA("Ministry device CA")
    other = TestCA("Someone else's CA")
    issued = [("listed", operator.issue("zs-laptop", client=True)),
              ("other", other.issue("ls-laptop", client=True)),
              ("server-auth", operator.issue("ww-laptop", client=False))]
    clients = [write_client(workdir / f"{name}.pem", i.key, i.cert, i.chain) for name, i in issued]
    policy_path = tls_policy(workdir, upstream.url, pem, client_ca=operator.write(workdir / "client-ca.pem"),
                             devices=[{"id": f"d{n}", "account": "zhangsan", "cert_sha256": c.sha256}
                                      for n, c in enumerate(clients)])
    gw = start_gateway(policy_path)
    try:
        yield WithClientCa(DeviceGateway(gw, workdir, server_ca), operator, *clients)
    finally:
        assert gw.stop() == 0


def test_with_client_ca_a_listed_certificate_chaining_to_it_is_the_device(with_client_ca: WithClientCa) -> None:
    assert with_client_ca.gateway.staff_status(with_client_ca.listed) == (303, None)


def test_with_client_ca_a_listed_certificate_from_another_ca_is_refused(with_client_ca: WithClientCa) -> None:
    assert with_client_ca.gateway.staff_status(with_client_ca.listed_other_ca) == (403, "network")


def test_with_client_ca_a_certificate_without_client_auth_usage_is_refused(with_client_ca: WithClientCa) -> None:
    assert with_client_ca.gateway.staff_status(with_client_ca.server_auth_only) == (403, "network")


def test_with_client_ca_the_certificate_request_names_it(with_client_ca: WithClientCa) -> None:
    assert acceptable_ca_names(with_client_ca.gateway.port) == [with_client_ca.operator.cert.subject.rfc4514_string()]
