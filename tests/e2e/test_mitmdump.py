"""GovGate in a stock mitmproxy: a real ``mitmdump -s addons/govgate.py --set govgate_policy=…`` in front of the
sample portal forwards a public page and refuses a staff page, and its audit log says so."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import CN_ADDRESS, REPO, OutputReader, Upstream, read_records
from tests.policies import policy_data, write_policy
from tests.ports import free_port

pytestmark = pytest.mark.e2e

MITMDUMP = Path(sys.executable).parent / "mitmdump"


def test_mitmdump_with_the_govgate_script_forwards_public_pages_and_refuses_staff_pages(
        upstream: Upstream, workdir: Path) -> None:
    port = free_port()
    data = policy_data(workdir, upstream.url)
    data["gateway"]["listen"] = f"127.0.0.1:{port}"
    policy = write_policy(workdir / "policy.yaml", data)
    # mitmproxy opens its default listener before it loads scripts: port 0, so a busy 8080 cannot stop it.
    proc = subprocess.Popen([str(MITMDUMP), "-s", str(REPO / "addons" / "govgate.py"), "--set",
                             f"govgate_policy={policy}", "--set", "listen_port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
    output = OutputReader(proc.stdout)
    try:
        output.wait_for_line(rf"reverse proxy to {upstream.url} listening at 127\.0\.0\.1:{port}\.")
        base = f"http://127.0.0.1:{port}"
        public = httpx.get(base + "/news/2026/notice.html", timeout=10)
        assert public.status_code == 200
        assert "通知公告" in public.text
        staff = httpx.get(base + "/oa/", headers={"X-Forwarded-For": CN_ADDRESS, "Accept": "application/json"},
                          timeout=10)
        assert staff.status_code == 403
        assert staff.json()["reason"] == "network"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        output.join()
        if proc.stdout is not None:
            proc.stdout.close()
    # Stopping closed the runtime last: the audit log holds both decisions.
    decisions = [(r["path"], r["decision"]) for r in read_records(workdir / "audit") if r["event"] == "access"]
    assert decisions == [("/news/2026/notice.html", "allow"), ("/oa/", "refuse")]


def test_mitmdump_with_the_govgate_script_reads_the_proxy_protocol_from_its_balancer(
        upstream: Upstream, workdir: Path) -> None:
    port = free_port()
    data = policy_data(workdir, upstream.url)
    data["gateway"].update({"listen": f"127.0.0.1:{port}", "trusted_proxies": ["127.0.0.2/32"], "proxy_protocol": True})
    policy = write_policy(workdir / "policy.yaml", data)
    proc = subprocess.Popen([str(MITMDUMP), "-s", str(REPO / "addons" / "govgate.py"), "--set",
                             f"govgate_policy={policy}", "--set", "listen_port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
    output = OutputReader(proc.stdout)

    def exchange(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0)) as s:
            s.sendall(data)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            return answer

    request = (b"GET /oa/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nAccept: application/json\r\n"
               b"Connection: close\r\n\r\n")
    try:
        output.wait_for_line(rf"reverse proxy to {upstream.url} listening at 127\.0\.0\.1:{port}\.")
        answer = exchange(f"PROXY TCP4 {CN_ADDRESS} 192.0.2.10 50000 443\r\n".encode() + request)
        assert answer.startswith(b"HTTP/1.1 403")
        assert exchange(request) == b""  # the balancer without its header: closed
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        output.join()
        if proc.stdout is not None:
            proc.stdout.close()
    clients = [r["client"] for r in read_records(workdir / "audit") if r["event"] == "access"]
    assert clients == [CN_ADDRESS]
