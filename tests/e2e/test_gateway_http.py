"""A real gateway process in front of the real sample portal, over plain HTTP (insecure trial mode): what only a
real process shows — forwarding to the portal, raw request lines and heads mitmproxy parses, reloads of the
policy and the GeoIP database from disk, SIGHUP. What the gate answers and what the portal receives is tested in
process: ``tests/addons/``.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import (
    CN_ADDRESS,
    GB_ADDRESS,
    Gateway,
    Upstream,
    start_gateway,
    wait_for_record,
)
from tests.policies import GEOIP_DB, GEOIP_DIR, policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("gw")
    (workdir / "secrets").mkdir()
    policy = workdir / "policy.yaml"
    write_policy(policy, policy_data(workdir, upstream.url))
    gw = start_gateway(policy)
    yield gw
    assert gw.stop() == 0


def get(gw: Gateway, path: str, *, client: str | None = None, **kwargs: object) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))  # type: ignore[call-overload]
    if client is not None:
        headers["X-Forwarded-For"] = client
    return httpx.get(gw.url + path, headers=headers, follow_redirects=False, timeout=10, **kwargs)  # type: ignore[arg-type]


def test_public_path_is_forwarded_to_the_portal(gateway: Gateway) -> None:
    r = get(gateway, "/news/2026/notice.html")
    assert r.status_code == 200
    assert "通知公告" in r.text


def raw_request(gw: Gateway, data: bytes) -> bytes:
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /news/\xff\xfe HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"BREW /oa/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nX-Bad: a\x00b\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nContent-Length: -1\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nHost: \xff\r\nConnection: close\r\n\r\n",
        b"GET /oa/ HTTP/1.1\r\nHost: \xe9\x97\xa8\xe6\x88\xb7.gov.cn\r\nConnection: close\r\n\r\n",
        b"G\xffT /oa/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nConnection: close\r\n\r\n",
        b"GET /news/ HTTP/9.9\r\nHost: portal.example.gov.cn\r\nConnection: close\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\n" + b"X-Many: 1\r\n" * 10_000 + b"\r\n",
    ],
    ids=["garbage", "invalid-utf8-path", "huge-path", "absolute-form", "odd-method", "nul-header", "bad-length",
         "invalid-utf8-host", "raw-utf8-host", "invalid-utf8-method", "http-9.9", "http-1.1-without-host",
         "huge-header", "many-headers"],
)
def test_malformed_requests_get_a_4xx_or_a_closed_connection_never_a_crash(
    gateway: Gateway, request_bytes: bytes
) -> None:
    answer = raw_request(gateway, request_bytes)
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    # The gateway is still serving afterwards: public pages, and staff paths, whose audit records must
    # still be written (a record the log cannot hold would stop it, and fail every staff path closed).
    assert get(gateway, "/news/").status_code == 200
    # The audit writer appends in order: once a later refusal's record is on disk, whatever the malformed
    # request queued before it has been written (or has stopped the log, and this wait fails).
    probe = f"/probe/{uuid.uuid4().hex}"
    assert get(gateway, probe).status_code == 403
    wait_for_record(gateway.workdir / "audit", "the audit record of a request after the malformed one",
                    lambda r: r["path"] == probe)
    health = get(gateway, "/__govgate/health")
    assert health.status_code == 200, health.text
    assert health.json()["audit"]["writable"] is True
    assert get(gateway, "/oa/", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 303
    assert gateway.proc.poll() is None
    assert "Traceback" not in gateway.output.text()


def test_a_broken_policy_edit_is_refused_and_the_last_good_policy_stays(gateway: Gateway) -> None:
    before = get(gateway, "/__govgate/health").json()["policy_version"]
    good = gateway.policy_path.read_text(encoding="utf-8")
    try:
        gateway.policy_path.write_text(good.replace("idle_timeout", "idle_timout"), encoding="utf-8")
        wait_for(lambda: "idle_timout" in gateway.output.text(), 5, "the refusal in the log")
        assert get(gateway, "/news/").status_code == 200
        assert get(gateway, "/__govgate/health").json()["policy_version"] == before
    finally:
        gateway.policy_path.write_text(good, encoding="utf-8")
    wait_for(lambda: get(gateway, "/__govgate/health").json()["policy_version"] > before, 5, "reload of the fix")


def test_a_good_policy_edit_takes_effect_within_two_seconds(gateway: Gateway) -> None:
    import yaml

    data = yaml.safe_load(gateway.policy_path.read_text(encoding="utf-8"))
    original = json.loads(json.dumps(data))
    data["access"].insert(0, {"name": "maintenance", "paths": ["/news/**"], "allow": "deny"})
    try:
        write_policy(gateway.policy_path, data)
        wait_for(lambda: get(gateway, "/news/").status_code == 403, 2.5, "the new rule")
    finally:
        write_policy(gateway.policy_path, original)
        wait_for(lambda: get(gateway, "/news/").status_code == 200, 2.5, "the old rule back")


def test_the_geoip_database_is_reloaded_when_replaced_and_a_broken_one_is_refused(
    upstream: Upstream, workdir: Path
) -> None:
    import shutil

    database = workdir / "geo.mmdb"
    shutil.copyfile(GEOIP_DB, database)
    data = policy_data(workdir, upstream.url)
    data["geoip"] = {"database": str(database), "home_countries": ["CN"], "unknown": "overseas"}
    data["access"][1]["networks"] = "any"
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    gw = start_gateway(policy)
    try:
        version, policy_version = gw.data_version(), gw.policy_version()
        broken = GEOIP_DIR / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"
        tmp = workdir / "geo.tmp"
        shutil.copyfile(broken, tmp)
        tmp.replace(database)  # as geoipupdate does: an atomic rename
        wait_for(lambda: "policy.refused" in gw.output.text(), 5, "the broken database to be refused")
        assert gw.data_version() == version
        assert "policy_refused" in gw.health()["reasons"]  # health tells until a good database is in place
        # Still deciding with the last good database: GB is overseas, CN is home.
        assert get(gw, "/oa/", client=GB_ADDRESS).status_code == 403
        assert get(gw, "/oa/", client=CN_ADDRESS).status_code == 303
        shutil.copyfile(GEOIP_DIR / "GeoIP2-Country-Test.mmdb", tmp)
        tmp.replace(database)
        wait_for(lambda: gw.data_version() > version, 5, "the good database to be loaded")
        assert get(gw, "/oa/", client=CN_ADDRESS).status_code == 303
        assert "policy_refused" not in gw.health()["reasons"]
        assert gw.policy_version() == policy_version  # the policy itself was not loaded again
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("target", [
    b"/oa/../news/", b"/oa/%2e%2e/news/", b"/oa/%2E./news/", b"/news/#/../../oa/x", b"/news/./x",
    b"/news/..;/oa/x",
])
def test_paths_the_portal_could_read_differently_from_the_rules_are_refused(gateway: Gateway, target: bytes) -> None:
    # The rules judge a normalised path; the portal gets the path as sent. Dot-segments and fragments
    # (which browsers never send) could make them disagree, e.g. `/oa/../news/` judged as public `/news/`.
    answer = raw_request(gateway, b"GET " + target + b" HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]


def test_absolute_form_request_targets_are_refused(gateway: Gateway) -> None:
    answer = raw_request(gateway, b"GET http://oa.example.gov.cn/oa/x HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]


def test_sighup_reloads_the_policy_even_when_the_file_looks_unchanged(gateway: Gateway) -> None:
    import signal

    before = gateway.policy_version()
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: gateway.policy_version() > before, 5, "the SIGHUP reload")
    assert "why=SIGHUP" in gateway.output.text()


def test_an_endless_request_head_is_cut_off_with_431_not_buffered(gateway: Gateway) -> None:
    # mitmproxy buffers an HTTP/1 request head without limit; the gate answers 431 past 64 KiB and hangs up.
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nX-Endless: ")
        answer = b""
        try:
            for _ in range(64):  # up to 4 MiB, never finished
                s.sendall(b"a" * 65536)
        except OSError:
            pass  # the gateway hung up
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert get(gateway, "/news/").status_code == 200


@pytest.mark.parametrize("target", [
    b"/echo/public/%c0%ae%c0%ae/staff/x", b"/echo/public/%e0%80%ae%e0%80%ae/staff/x", b"/echo/public/x%c0%afy",
    b"/echo/public/%ef%bc%8e%ef%bc%8e/staff/x", b"/echo/public/..%3b/staff/x", b"/echo/public/.%3bjsessionid=1/x",
])
def test_segments_a_portal_might_decode_to_dot_segments_are_refused(gateway: Gateway, target: bytes) -> None:
    answer = raw_request(gateway, b"GET " + target + b" HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]


def test_legacy_percent_encoded_file_names_that_are_not_utf8_still_pass(gateway: Gateway) -> None:
    answer = raw_request(gateway, b"GET /echo/public/%D6%D0%CE%C4.doc HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
