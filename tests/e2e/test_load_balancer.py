"""deploy/haproxy.cfg for real: HAProxy (Debian's) in front of two gateways, TCP with PROXY protocol v2 and TLS
ending at the gateways. Only the addresses differ from the shipped file: HAProxy listens on a free loopback port
and reaches the gateways from 127.0.0.2 (their one trusted proxy); the client connects from 127.0.0.5.

Each gateway sees the client's own address (Art. 19: the rules and the audit ``client``), HAProxy's health checks
(GET /__govgate/health over TLS, after a LOCAL header) pass, and nothing is refused."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, OutputReader, Upstream, read_records
from tests.e2e.test_tls_profile import TlsGw, start_tls_gateway
from tests.ports import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

BALANCER = "127.0.0.2"
CLIENT = "127.0.0.5"


def haproxy_config(listen: int, redirect: int, gateways: list[int], closed: int) -> str:
    """deploy/haproxy.cfg with this machine's addresses in place of the example's."""
    text = (REPO / "deploy" / "haproxy.cfg").read_text(encoding="utf-8")
    text = text.replace("bind :443", f"bind 127.0.0.1:{listen}").replace("bind :80", f"bind 127.0.0.1:{redirect}")
    text = text.replace("maxconn 20000", "maxconn 200")
    text = re.sub(r"^(\s*default-server .*)$", rf"\1 source {BALANCER}", text, flags=re.MULTILINE)
    text = text.replace("inter 5s", "inter 200ms")
    for n, port in enumerate(gateways, 1):
        assert f"10.0.0.1{n}:8443" in text
        text = text.replace(f"10.0.0.1{n}:8443", f"127.0.0.1:{port}").replace(f"10.0.0.1{n}:8080",
                                                                              f"127.0.0.1:{closed}")
    return text


def test_haproxy_from_deploy_passes_the_clients_address_to_every_gateway(
        upstream: Upstream, tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.fail("haproxy is missing: scripts/setup --test installs it (Debian: haproxy)", pytrace=False)
    gateways: list[TlsGw] = []
    proc = None
    try:
        for n in (1, 2):
            (tmp_path / f"gw{n}").mkdir()
            gateways.append(start_tls_gateway(upstream.url, tmp_path / f"gw{n}", trusted_proxies=[f"{BALANCER}/32"],
                                              proxy_protocol=True))
        listen = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config(listen, free_port(), [g.port for g in gateways], free_port()),
                          encoding="utf-8")
        proc = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        log = OutputReader(proc.stdout)
        trust = ssl.create_default_context(cadata=b"".join(g.ca.pem() for g in gateways).decode())

        def get(path: str) -> tuple[int, dict[str, object]]:
            with socket.create_connection(("127.0.0.1", listen), timeout=10, source_address=(CLIENT, 0)) as raw, \
                    trust.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(f"GET {path} HTTP/1.1\r\nHost: portal.example.gov.cn\r\nAccept: application/json\r\n"
                            "Connection: close\r\n\r\n".encode())
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            return int(head.split(b" ")[1]), json.loads(body) if body.startswith(b"{") else {}

        deadline = time.monotonic() + 10
        while True:  # HAProxy starting up
            try:
                get("/news/")
                break
            except OSError:
                assert time.monotonic() < deadline, log.text()
                time.sleep(0.1)
        time.sleep(1.0)  # five health check intervals: a failing check would have taken both gateways out by now
        ids = []
        for _ in range(6):
            status, body = get("/oa/")
            assert (status, body["reason"]) == (403, "network")  # 127.0.0.5 is no office address
            ids.append(body["request_id"])
        assert get("/__govgate/health")[0] == 200
        def audited() -> dict[int, list[dict[str, object]]]:
            return {n: [r for r in read_records(g.workdir / "audit")
                        if r["event"] == "access" and r["request_id"] in ids] for n, g in enumerate(gateways, 1)}

        wait_for(lambda: sum(len(rs) for rs in audited().values()) == 6, 10, "the six refusals in the audit logs")
        seen = {n: len(records) for n, records in audited().items()}
        for records in audited().values():
            assert {r["client"] for r in records} <= {CLIENT}
        for g in gateways:
            assert "proxy_protocol.refused" not in g.gw.output.text(), g.gw.output.text()[-2000:]
        assert sum(seen.values()) == 6
        assert all(seen.values()), f"HAProxy sent every request to one gateway: {seen}"
        assert not re.search(r"Server govgate/gw\d is DOWN", log.text()), log.text()  # the health checks pass
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        for g in gateways:
            assert g.gw.stop() == 0
