#!/usr/bin/env python3
"""Staff-path throughput with a client certificate, against the same without one, side by side in one run.

A device certificate is verified once per TLS connection (its chain to the device CA, validity, clientAuth;
docs/devices.md), so on kept-alive connections a request from a device should cost what any staff request costs.
The gateway runs with TLS and its own device CA (`govgate device ca init`, `govgate device issue`); one account
logs in; then C connections each send requests one after another, kept alive, to a staff path (the sample
portal's /echo) with the session cookie:

  without   no client certificate (the office network admits the address)
  with      the device certificate `govgate device issue` made (the device is recognised on every request)

Rounds alternate between the two; medians. Target: with / without ≥ 0.95, judged by the gateway's CPU time
per request (from /proc), which a busy machine swings far less than requests/s. The client is a minimal asyncio
HTTP/1.1 loop (wrk cannot present a client certificate); it shares the cores with the gateway and the portal,
alike for both.

    .venv/bin/python scripts/bench_client_cert.py [--seconds 5] [--rounds 5] [--connections 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import yaml
from benchlib import cpu_seconds, free_port, stop_processes, wait_for_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
PASSWORD = "Quick-brown-fox-93!"
P12_PASSWORD = "bench-p12-password"
TARGET = 0.95


def server_pem(path: Path) -> None:
    """A self-signed certificate for 127.0.0.1 and its key, one PEM file (the gateway's tls.cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o600)


def write_policy(workdir: Path, upstream: str, port: int) -> Path:
    data: dict[str, object] = {
        "version": 1,
        "gateway": {"listen": f"127.0.0.1:{port}", "upstream": upstream, "public_hosts": ["127.0.0.1"],
                    "tls": {"cert": str(workdir / "gateway.pem")}, "key_file": str(workdir / "gateway.key")},
        "geoip": {"database": str(REPO / "geoip" / "GeoLite2-Country-Test.mmdb"), "home_countries": ["CN"]},
        "networks": {"loopback": ["127.0.0.0/8"]},
        "accounts_file": str(workdir / "accounts.yaml"),
        "devices_file": str(workdir / "devices.yaml"),
        "access": [
            {"name": "staff", "paths": ["/echo/**"], "allow": "staff", "networks": ["loopback"]},
            {"name": "rest", "paths": ["/**"], "allow": "deny"},
        ],
        "audit": {"dir": str(workdir / "audit"), "retention_days": 365},
    }
    path = workdir / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def govgate(policy: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(BIN / "govgate"), *args, "-p", str(policy)], input=stdin, capture_output=True,
                          text=True, cwd=policy.parent)
    if done.returncode != 0:
        raise SystemExit(f"govgate {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def client_pem(p12: Path, out: Path) -> Path:
    bundle = pkcs12.load_pkcs12(p12.read_bytes(), P12_PASSWORD.encode())
    assert bundle.key is not None
    assert bundle.cert is not None
    key = bundle.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    out.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
                    + bundle.cert.certificate.public_bytes(serialization.Encoding.PEM))
    out.chmod(0o600)
    return out


def login(base: str, secret: str) -> str:
    """The session cookie of a full login (password, then TOTP) over TLS."""
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10, verify=False) as c:
        page = c.get("/__govgate/login?next=/echo/x").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = c.post("/__govgate/login", data={"username": "bench", "password": PASSWORD, "csrf": csrf,
                                             "next": "/echo/x"})
        assert r.status_code == 303, r.text
        page = c.get("/__govgate/mfa").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = c.post("/__govgate/mfa", data={"code": pyotp.TOTP(secret).now(), "csrf": csrf})
        assert r.status_code == 303, r.text
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items() if "session" in k)


async def one_connection(port: int, context: ssl.SSLContext, request: bytes, until: float,
                         counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None:
                raise RuntimeError(f"no content-length in {head[:300]!r}")
            await reader.readexactly(int(length.group(1)))
            if status != 200:
                raise RuntimeError(f"status {status}: {head[:300]!r}")
            counts[0] += 1
    finally:
        writer.close()


def measure(port: int, context: ssl.SSLContext, cookie: str, seconds: float, connections: int,
            gateway_pid: int) -> tuple[float, float]:
    """(requests/s, the gateway process's CPU milliseconds per request) for one round."""
    request = (f"GET /echo/x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n").encode()
    counts = [0]

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(one_connection(port, context, request, until, counts) for _ in range(connections)))

    start, cpu = time.monotonic(), cpu_seconds(gateway_pid)
    asyncio.run(run())
    return counts[0] / (time.monotonic() - start), 1000 * (cpu_seconds(gateway_pid) - cpu) / max(counts[0], 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="govgate-bench-cert-"))
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "govgate.sample_portal", str(up_port)],
                                      stdout=subprocess.DEVNULL, cwd=REPO))
        server_pem(tmp / "gateway.pem")
        port = free_port()
        policy = write_policy(tmp, f"http://127.0.0.1:{up_port}", port)
        out = govgate(policy, "account", "add", "bench", "--groups", "staff", "--password-stdin", stdin=PASSWORD + "\n")
        secret = pyotp.parse_uri(re.search(r"otpauth://\S+", out).group(0)).secret  # type: ignore[union-attr]
        govgate(policy, "device", "ca", "init")
        govgate(policy, "device", "issue", "bench-laptop", "--account", "bench", "--password-stdin", "--out",
                str(tmp / "bench-laptop.p12"), stdin=P12_PASSWORD + "\n")
        cert = client_pem(tmp / "bench-laptop.p12", tmp / "bench-laptop.pem")
        gateway = subprocess.Popen([str(BIN / "govgate"), "run", "-p", str(policy)], stdout=subprocess.DEVNULL)
        procs.append(gateway)
        wait_for_port(up_port)
        wait_for_port(port)
        cookie = login(f"https://127.0.0.1:{port}", secret)

        def context(with_cert: bool) -> ssl.SSLContext:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the gateway's certificate is made above, self-signed
            if with_cert:
                ctx.load_cert_chain(cert)
            return ctx

        targets = {"without": context(False), "with": context(True)}
        for ctx in targets.values():  # warm up
            measure(port, ctx, cookie, 1, args.connections, gateway.pid)
        rounds: dict[str, list[float]] = {name: [] for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, ctx in targets.items():
                rps, ms = measure(port, ctx, cookie, args.seconds, args.connections, gateway.pid)
                rounds[name].append(rps)
                cpu[name].append(ms)
        med = {name: statistics.median(v) for name, v in rounds.items()}
        cpu_med = {name: statistics.median(v) for name, v in cpu.items()}
        ratio = med["with"] / med["without"]
        # The steadier figure on a shared machine: the gateway's CPU per request, without / with (≥ 0.95: a
        # request from a device costs at most about 5 % more). The client shares the cores, so req/s swings.
        cpu_ratio = cpu_med["without"] / cpu_med["with"]
        # The device must really have been recognised on the "with" connections: the access records say so.
        seen = sum(1 for f in (tmp / "audit").glob("audit-*.jsonl")
                   for line in f.read_text(encoding="utf-8").splitlines() if '"device":"bench-laptop"' in line)
        figures: dict[str, Any] = {
            "staff_without_cert_rps": round(med["without"], 1), "staff_with_cert_rps": round(med["with"], 1),
            "ratio": round(ratio, 3), "cpu_ms_without": round(cpu_med["without"], 3),
            "cpu_ms_with": round(cpu_med["with"], 3), "cpu_ratio": round(cpu_ratio, 3), "target": TARGET,
            "met": cpu_ratio >= TARGET, "device_records": seen,
            "rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
            "connections": args.connections, "seconds": args.seconds, "cores": os.cpu_count()}
        if seen == 0:
            raise SystemExit("no access record names the device: the certificate was not recognised")
        if args.json:
            print(json.dumps(figures))
            return 0
        print(f"\nstaff path over TLS, {args.connections} kept-alive connections, {args.rounds} rounds x "
              f"{args.seconds:g}s, {os.cpu_count()} cores (gateway, portal and client share them)")
        for name, values in rounds.items():
            print(f"  {name + ' client certificate':30s} {med[name]:8.0f} req/s, {cpu_med[name]:.2f} ms gateway CPU "
                  f"per request   (rounds: {', '.join(f'{x:.0f}' for x in values)})")
        print(f"  with / without: {ratio:.2f} by req/s, {cpu_ratio:.2f} by gateway CPU per request (target ≥ "
              f"{TARGET:.2f}, judged by CPU: {'met' if cpu_ratio >= TARGET else 'NOT met'}); {seen} access records "
              "name the device")
        return 0
    finally:
        stop_processes(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
