#!/usr/bin/env python3
"""One long HTTP/2 connection: memory and throughput of the gateway and of bare mitmdump as streams accumulate.

    .venv/bin/python scripts/bench_h2_soak.py [--streams 100000] [--interval 10] [--only gateway|mitmdump]

For each target (the gateway, then bare ``mitmdump --mode reverse:`` in front of the same sample portal,
both over TLS), h2load from Debian's nghttp2-client opens ONE connection and sends ``--streams`` requests on
it (10 at a time) for a small static file. Every ``--interval`` seconds the target's resident memory (RSS)
and the requests done so far are sampled; at the end both curves are printed side by side, with the growth
in KB per 1,000 streams (flat: about 0). The gateway runs with ``max_requests_per_connection`` above the
stream count, so its curve shows what one connection holds, not the limit closing it (in production the
limit, 1,000 by default, bounds any growth anyway). Not part of the test suite: it takes minutes per target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MITMDUMP = Path(PY).parent / "mitmdump"


@dataclass
class Curve:
    name: str
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, done, RSS KiB)
    finished: str = ""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def make_cert(workdir: Path) -> Path:
    """A self-signed ECDSA certificate for 127.0.0.1 (h2load does not verify it)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    pem = workdir / "cert.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    pem.chmod(0o600)
    return pem


def soak(name: str, pid: int, url: str, streams: int, interval: float) -> Curve:
    curve = Curve(name)
    proc = subprocess.Popen(["h2load", "-n", str(streams), "-c", "1", "-m", "10", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = [0]
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            m = re.match(r"progress: (\d+)% done", line)
            if m:
                done[0] = streams * int(m.group(1)) // 100

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.monotonic()
    curve.samples.append((0.0, 0, rss_kib(pid)))
    while proc.poll() is None:
        time.sleep(interval)
        curve.samples.append((time.monotonic() - started, done[0], rss_kib(pid)))
    reader.join(5)
    curve.samples.append((time.monotonic() - started, streams, rss_kib(pid)))
    curve.finished = next((line.strip() for line in output if line.startswith("finished in")), "h2load: no summary")
    failed = next((line.strip() for line in output if line.startswith("requests:")), "")
    curve.finished += "; " + failed
    return curve


def growth_kib_per_1000(curve: Curve) -> float:
    """The least-squares slope of RSS over streams done (ignoring the first sample: warm-up)."""
    points = [(d, r) for _, d, r in curve.samples[1:] if d > 0]
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(d for d, _ in points) / n
    my = sum(r for _, r in points) / n
    var = sum((d - mx) ** 2 for d, _ in points)
    return 1000 * sum((d - mx) * (r - my) for d, r in points) / var if var else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--only", choices=["gateway", "mitmdump"])
    parser.add_argument("--json", action="store_true", help="print the curves and growths as JSON")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("bench_h2_soak: h2load is missing (Debian: apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="govgate-h2soak-"))
    procs: list[subprocess.Popen[bytes]] = []
    curves: list[Curve] = []
    try:
        upstream_port = free_port()
        procs.append(subprocess.Popen([PY, "-m", "govgate.sample_portal", str(upstream_port)], cwd=REPO,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(upstream_port)
        upstream = f"http://127.0.0.1:{upstream_port}"
        pem = make_cert(workdir)
        if args.only in (None, "gateway"):
            port = free_port()
            (workdir / "policy.yaml").write_text(f"""version: 1
gateway:
  listen: "127.0.0.1:{port}"
  upstream: "{upstream}"
  public_hosts: [127.0.0.1]
  tls: {{cert: {pem}, request_client_cert: false}}
  key_file: {workdir}/gateway.key
  max_requests_per_connection: {args.streams + 1}
geoip: {{database: {REPO}/geoip/GeoLite2-Country-Test.mmdb}}
access:
  - {{name: public, paths: ["/**"], allow: public}}
audit: {{dir: {workdir}/audit}}
""", encoding="utf-8")
            gw = subprocess.Popen([PY, "-m", "govgate", "run", "-p", str(workdir / "policy.yaml")], cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(gw)
            wait_for_port(port)
            curves.append(soak("gateway", gw.pid, f"https://127.0.0.1:{port}/static/app.css", args.streams,
                               args.interval))
            gw.send_signal(signal.SIGTERM)
            gw.wait(60)
        if args.only in (None, "mitmdump"):
            port = free_port()
            md = subprocess.Popen([str(MITMDUMP), "-q", "--mode", f"reverse:{upstream}@{port}", "--set",
                                   f"certs=*={pem}", "--set", f"confdir={workdir}/mitmproxy"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(md)
            wait_for_port(port)
            curves.append(soak("bare mitmdump", md.pid, f"https://127.0.0.1:{port}/static/app.css",
                               args.streams, args.interval))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(json.dumps({"streams": args.streams, "cpus": os.cpu_count(), "targets": [
            {"name": c.name, "finished": c.finished, "growth_kib_per_1000": growth_kib_per_1000(c),
             "samples": [{"seconds": t, "streams": d, "rss_kib": r} for t, d, r in c.samples]} for c in curves]}))
        return 0
    print(f"\nOne HTTP/2 connection, {args.streams:,} streams, 10 at a time; machine: {os.cpu_count()} CPUs")
    for curve in curves:
        print(f"\n{curve.name}: {curve.finished}")
        print(f"  {'seconds':>8} {'streams':>9} {'req/s':>7} {'RSS MiB':>8}")
        previous = (0.0, 0)
        for seconds, done, rss in curve.samples:
            rate = (done - previous[1]) / (seconds - previous[0]) if seconds > previous[0] else 0.0
            print(f"  {seconds:8.0f} {done:9,} {rate:7.0f} {rss / 1024:8.1f}")
            previous = (seconds, done)
        print(f"  growth: {growth_kib_per_1000(curve):.1f} KiB per 1,000 streams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
