"""`govgate run --workers 2` for real: a parent and two gateway processes on one port (SO_REUSEPORT), a real Redis,
real HTTP over fresh connections (the kernel picks the worker; each request is pinned to a worker by asking health
first on the same kept-alive connection, which names the worker's pid).

Art. 30 state holds across the workers (one session, one lockout, a TOTP code used once), a policy change and
SIGHUP reach both, a killed worker is restarted and serves again, SIGTERM drains and ends them all, and the audit
log they wrote together verifies (Art. 20)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from govgate.workers import ENV_PORTS
from tests.command import GOVGATE
from tests.e2e.harness import OFFICE_ADDRESS, OutputReader, Upstream, add_account, read_records
from tests.e2e.login import Browser, fresh_code
from tests.policies import policy_data, write_policy
from tests.redis_server import RedisServer
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PASSWORD = "Workers-share-redis-42"


@dataclass
class Workers:
    proc: subprocess.Popen[str]
    url: str
    metrics_url: str
    policy: Path
    output: OutputReader
    secrets: dict[str, str]
    redis_url: str

    def health(self, client: httpx.Client | None = None) -> dict[str, Any]:
        if client is None:
            with httpx.Client(timeout=10) as fresh:  # a new connection: whichever worker the kernel picks
                r = fresh.get(self.url + "/__govgate/health")
        else:
            r = client.get("/__govgate/health")
        data: dict[str, Any] = r.json()
        return data

    def pids(self) -> dict[int, int]:
        """Worker index → pid, as health reports them over fresh connections (until both have answered)."""
        seen: dict[int, int] = {}

        def both() -> bool:
            w = self.health()["workers"]
            if w["alive"] == 2:
                seen[w["worker"]] = w["pid"]
            return len(seen) == 2

        wait_for(both, 20, "both workers to answer")
        return seen

    def pinned(self, pid: int, client_ip: str = OFFICE_ADDRESS, cookies: httpx.Cookies | None = None) -> Browser:
        """A browser whose one connection is served by the worker ``pid``."""
        for _ in range(200):
            browser = Browser(self.url, client_ip, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            if cookies is not None:
                browser.http.cookies.update(cookies)
            if self.health(browser.http)["workers"]["pid"] == pid:
                return browser
            browser.close()
        raise AssertionError(f"no connection reached worker pid {pid} in 200 tries")

    def on_each(self) -> list[Browser]:
        return [self.pinned(pid) for _, pid in sorted(self.pids().items())]


def start_workers(policy: Path, *args: str) -> tuple[subprocess.Popen[str], OutputReader]:
    proc = subprocess.Popen([*GOVGATE, "run", "-p", str(policy), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=policy.parent)
    return proc, OutputReader(proc.stdout)


def workers_policy(workdir: Path, upstream: str, redis_url: str | None, **sections: Any) -> dict[str, Any]:
    data = policy_data(workdir, upstream, metrics={"listen": "127.0.0.1:0"}, **sections)
    if redis_url is not None:
        data["state"] = {"redis": redis_url, "timeout": "1s"}
    return data


@pytest.fixture(scope="module")
def workers(upstream: Upstream, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Workers]:
    if not redis_server.running:
        redis_server.start()
    redis_server.flushall()
    workdir = tmp_path_factory.mktemp("workers")
    (workdir / "secrets").mkdir()
    policy = workdir / "policy.yaml"
    write_policy(policy, workers_policy(workdir, upstream.url, redis_server.url))
    secrets = {name: add_account(policy, name, PASSWORD) for name in ("both", "locked", "once")}
    proc, output = start_workers(policy, "--workers", "2")
    try:
        m = output.wait_for_line(r"govgate: listening on (\S+?)/ → \S+ \(2 workers, pids \d+ \d+\)", 90)
        metrics = output.wait_for_line(r"govgate: metrics on (http://\S+/metrics)", 10)
    except AssertionError:
        proc.kill()
        proc.wait(10)
        raise
    w = Workers(proc, m.group(1), metrics.group(1), policy, output, secrets, redis_server.url)
    yield w
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    output.join()


def test_two_workers_serve_the_port_and_report_each_other_in_health(workers: Workers) -> None:
    pids = workers.pids()
    assert set(pids) == {0, 1}
    assert len(set(pids.values())) == 2
    health = workers.health()
    assert health["status"] == "ok" or health["reasons"] == ["geoip_stale"], health
    assert health["workers"]["count"] == 2
    assert health["store"]["kind"] == "redis"

    def starts() -> list[tuple[int, int, int]]:
        return sorted((r["worker"], r["pid"], r["workers"]) for r in read_records(workers.policy.parent / "audit")
                      if r["event"] == "gateway.start")

    # Each worker's audit writer puts its start record on disk in its own time.
    wait_for(lambda: len(starts()) >= 2, 10, "both workers' gateway.start records")
    assert starts() == sorted((i, pid, 2) for i, pid in pids.items())


def test_one_session_works_on_both_workers(workers: Workers) -> None:
    one, two = workers.on_each()
    assert one.login("both", PASSWORD, workers.secrets["both"]).status_code == 303
    other = workers.pinned(workers.health(two.http)["workers"]["pid"], cookies=one.http.cookies)
    for browser in (one, other):
        r = browser.http.get("/echo/staff/x")
        assert r.status_code == 200, r.text[:300]
        assert dict((k.lower(), v) for k, v in r.json()["headers"])["x-govgate-user"] == "both"
    # Over fresh connections, whichever worker serves: always the same session.
    cookie = "; ".join(f"{k}={v}" for k, v in one.http.cookies.items())
    served: set[int] = set()
    for _ in range(40):
        with httpx.Client(base_url=workers.url, timeout=10,
                          headers={"Cookie": cookie, "X-Forwarded-For": OFFICE_ADDRESS}) as fresh:
            served.add(fresh.get("/__govgate/health").json()["workers"]["pid"])
            assert fresh.get("/echo/staff/x").status_code == 200
    assert len(served) == 2, served


def test_a_lockout_earned_on_both_workers_holds_on_both(workers: Workers) -> None:
    pids = workers.pids()
    for n, index in ((1, 0), (2, 1), (3, 0)):  # max_failures: 3, from three addresses (only the account counts)
        last = workers.pinned(pids[index], f"10.7.2.{n}").password("locked", f"Wrong-pass-word-{n}")
    assert last.status_code == 429
    for index in (0, 1):
        assert workers.pinned(pids[index], "10.7.2.9").password("locked", PASSWORD).status_code == 429


def test_a_totp_code_is_accepted_once_across_workers(workers: Workers) -> None:
    pids = workers.pids()
    first, second = workers.pinned(pids[0]), workers.pinned(pids[1])
    for browser in (first, second):
        r = browser.password("once", PASSWORD)
        assert r.status_code == 303
        assert r.headers["location"].endswith("/__govgate/mfa")
    code = fresh_code(workers.secrets["once"])
    assert first.mfa(code).status_code == 303
    replay = second.mfa(code)
    assert replay.status_code != 303, "the same code was accepted by the other worker"
    assert second.http.get("/echo/staff/x").status_code != 200
    assert first.http.get("/echo/staff/x").status_code == 200


def test_metrics_from_either_worker_count_the_requests_of_both(workers: Workers) -> None:
    def total(text: str) -> float:
        return sum(float(m.group(1)) for m in re.finditer(
            r'^govgate_request_duration_seconds_count\{outcome="login"\} (\S+)$', text, flags=re.MULTILINE))

    before = total(httpx.get(workers.metrics_url, timeout=10).text)
    for _ in range(20):
        workers.health()  # fresh connections: both workers serve some of them
    # Each scrape is answered by one worker (SO_REUSEPORT), merging every worker's values (multiprocess mode).
    scrapes = [total(httpx.get(workers.metrics_url, timeout=10).text) for _ in range(6)]
    assert all(s >= before + 20 for s in scrapes), (before, scrapes)


def test_a_policy_edit_and_sighup_reach_both_workers(workers: Workers, upstream: Upstream) -> None:
    one, two = workers.on_each()
    assert one.login("both", PASSWORD, workers.secrets["both"]).status_code == 303
    other = workers.pinned(workers.health(two.http)["workers"]["pid"], cookies=one.http.cookies)
    browsers = (one, other)
    versions = [workers.health(b.http)["policy_version"] for b in browsers]
    data = workers_policy(workers.policy.parent, upstream.url, workers.redis_url)
    data["access"].insert(0, {"name": "closed for maintenance", "paths": ["/echo/staff/**"], "allow": "deny"})
    write_policy(workers.policy, data)
    wait_for(lambda: all(workers.health(b.http)["policy_version"] > v for b, v in zip(browsers, versions, strict=True)),
             15, "both workers to reload the edited policy")
    for browser in browsers:
        assert browser.http.get("/echo/staff/x").status_code == 403
        assert browser.http.get("/oa/").status_code == 200
    # SIGHUP to the parent: forwarded, each worker reads the policy again.
    versions = [workers.health(b.http)["policy_version"] for b in browsers]
    workers.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: all(workers.health(b.http)["policy_version"] > v for b, v in zip(browsers, versions, strict=True)),
             15, "both workers to reload on SIGHUP")
    write_policy(workers.policy, workers_policy(workers.policy.parent, upstream.url, workers.redis_url))
    wait_for(lambda: all(b.http.get("/echo/staff/x").status_code == 200 for b in browsers), 15,
             "both workers to open the path again")


def test_a_killed_worker_is_restarted_and_sigterm_ends_them_all(workers: Workers) -> None:
    pids = workers.pids()
    os.kill(pids[1], signal.SIGKILL)
    workers.output.wait_for_line(rf"worker\.exit worker=1 pid={pids[1]} signal SIGKILL .* restarting in 0\.5 s", 15)
    new: dict[int, int] = {}

    def restarted() -> bool:
        new.update(workers.pids())
        return new[1] != pids[1]

    wait_for(restarted, 30, "worker 1 to be restarted")
    assert new[0] == pids[0]
    # The restarted worker serves a login and the staff path. A kept-alive connection may still be closed
    # between requests (and the next one land on the other worker): then the check is made again. The TOTP code is
    # taken before the connection is pinned: waiting for a fresh step (up to 30 s) on it would outlast httpx's
    # 5 s keep-alive expiry, and each try would land on either worker by chance.
    for _ in range(5):
        code = fresh_code(workers.secrets["both"])
        browser = workers.pinned(new[1])
        assert browser.password("both", PASSWORD).status_code == 303
        assert browser.mfa(code).status_code == 303
        assert browser.http.get("/oa/").status_code == 200
        if workers.health(browser.http)["workers"]["pid"] == new[1]:
            break
        browser.close()
    assert workers.health(browser.http)["workers"] == {"worker": 1, "pid": new[1], "count": 2, "alive": 2}

    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(60) == 0
    for pid in (*pids.values(), *new.values()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    records = read_records(workers.policy.parent / "audit")
    starts = [(r["worker"], r["pid"], r["restarts"]) for r in records if r["event"] == "gateway.start"]
    assert sorted(starts) == sorted([(0, pids[0], 0), (1, pids[1], 0), (1, new[1], 1)])
    stops = [(r["worker"], r["pid"], r["reason"]) for r in records if r["event"] == "gateway.stop"]
    assert sorted(stops) == sorted([(0, pids[0], "SIGTERM"), (1, new[1], "SIGTERM")])
    verify = subprocess.run([*GOVGATE, "audit", "verify", "-p", str(workers.policy)], capture_output=True, text=True,
                            cwd=workers.policy.parent, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK ")


def test_more_than_one_worker_needs_state_redis(upstream: Upstream, workdir: Path) -> None:
    policy = write_policy(workdir / "policy.yaml", workers_policy(workdir, upstream.url, None))
    for count in ("2", "auto") if (os.cpu_count() or 1) > 1 else ("2",):
        r = subprocess.run([*GOVGATE, "run", "-p", str(policy), "--workers", count], capture_output=True, text=True,
                           cwd=workdir, timeout=60, check=False)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "state.redis" in r.stderr
        assert "nothing was started" in r.stderr
    assert not (workdir / "audit").exists()


@pytest.mark.parametrize("count", ["0", "-1", "two", "", "1.5", "100000"])
def test_a_bad_worker_count_is_an_argument_error(count: str, workdir: Path) -> None:
    r = subprocess.run([*GOVGATE, "run", "-p", str(workdir / "policy.yaml"), "--workers", count], capture_output=True,
                       text=True, cwd=workdir, timeout=60, check=False)
    assert r.returncode == 2
    assert "argument --workers" in r.stderr, r.stderr


def test_auto_runs_one_worker_per_cpu(upstream: Upstream, workdir: Path, redis_url: str) -> None:
    from govgate.workers import cpu_count

    policy = write_policy(workdir / "policy.yaml", workers_policy(workdir, upstream.url, redis_url))
    proc, output = start_workers(policy, "--workers", "auto")
    try:
        if cpu_count() == 1:
            output.wait_for_line(r"govgate: listening on (\S+?)/ → \S+$", 60)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            return
        m = output.wait_for_line(rf"govgate: listening on (\S+?)/ → \S+ \({cpu_count()} workers, pids ([\d ]+)\)", 90)
        assert httpx.get(m.group(1) + "/__govgate/health", timeout=10).json()["workers"]["count"] == cpu_count()
        # The parent killed outright: its workers are told by the kernel (SIGTERM), drain and go too.
        pids = [int(p) for p in m.group(2).split()]
        proc.kill()
        proc.wait(10)

        def gone() -> bool:
            for pid in pids:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                return False
            return True

        wait_for(gone, 30, "the workers of a killed parent to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        output.join()


def test_each_worker_reads_the_proxy_protocol_header_of_its_connections(
        upstream: Upstream, workdir: Path, redis_url: str) -> None:
    from govgate.core.proxy_protocol import v1_line
    from tests.e2e.harness import GB_ADDRESS
    from tests.e2e.test_proxy_protocol import BALANCER, HEAD, ep, exchange, status_and_json

    data = workers_policy(workdir, upstream.url, redis_url)
    data["gateway"]["trusted_proxies"] = [f"{BALANCER}/32"]
    data["gateway"]["proxy_protocol"] = True
    data["access"][1]["networks"] = "any"  # only the country (from the header's address) decides
    proc, output = start_workers(write_policy(workdir / "policy.yaml", data), "--workers", "2")
    try:
        port = int(output.wait_for_line(r"govgate: listening on http://127\.0\.0\.1:(\d+)/ .*2 workers", 90).group(1))
        to = ep("192.0.2.10", 443)
        health = HEAD.replace(b"GET /oa/", b"GET /__govgate/health")
        answered: set[int] = set()
        for n in range(60):
            status, body = status_and_json(exchange(port, v1_line(ep(GB_ADDRESS, 40000 + n), to) + health))
            assert status == 200
            answered.add(body["workers"]["pid"])  # type: ignore[index]
            if len(answered) == 2 and n >= 10:
                break
        assert len(answered) == 2, answered
        for n in range(10):  # whichever worker: the header's (overseas) address is the one judged (Art. 19)
            status, body = status_and_json(exchange(port, v1_line(ep(GB_ADDRESS, 41000 + n), to) + HEAD))
            assert (status, body["reason"]) == (403, "overseas")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        output.join()


def test_an_address_in_use_is_refused_before_any_worker_starts(
        upstream: Upstream, workdir: Path, redis_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = workers_policy(workdir, upstream.url, redis_url)
        data["gateway"]["listen"] = f"127.0.0.1:{port}"
        policy = write_policy(workdir / "policy.yaml", data)
        r = subprocess.run([*GOVGATE, "run", "-p", str(policy), "--workers", "2"], capture_output=True, text=True,
                           cwd=workdir, timeout=60, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "nothing was started" in r.stderr


def test_a_worker_that_cannot_start_stops_them_all_with_exit_1(
        upstream: Upstream, workdir: Path, redis_url: str) -> None:
    policy = write_policy(workdir / "policy.yaml", workers_policy(workdir, upstream.url, redis_url))
    (workdir / "secrets" / "gateway.key").write_text("not a key\n", encoding="utf-8")  # the policy itself is valid
    r = subprocess.run([*GOVGATE, "run", "-p", str(policy), "--workers", "2"], capture_output=True, text=True,
                       cwd=workdir, timeout=120, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "key file must hold 32 bytes" in r.stderr
    assert re.search(r"govgate: worker \d exited with exit code 1 before it listened; stopping the other workers",
                     r.stderr), r.stderr
    assert "listening on" not in r.stdout


def test_a_worker_that_hangs_at_start_has_its_stacks_printed_and_all_stop_with_exit_1(
        upstream: Upstream, workdir: Path, redis_url: str) -> None:
    policy = write_policy(workdir / "policy.yaml", workers_policy(workdir, upstream.url, redis_url))
    key = workdir / "secrets" / "gateway.key"
    # A worker's open() of its key file never returns, as on a hung network mount. (A FIFO no longer stands in
    # for one: the gateway refuses a file that is not regular at once.) In the workers only, which the parent
    # tells apart by their environment.
    hook = workdir / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, time\n"
        f"if {ENV_PORTS!r} in os.environ:\n"
        "    _open = os.open\n"
        "    def _hung(path, *args, **kwargs):\n"
        f"        if str(path) == {str(key)!r}:\n"
        "            time.sleep(3600)\n"
        "        return _open(path, *args, **kwargs)\n"
        "    os.open = _hung\n")
    # 15 s: long enough for a worker to reach its key on a loaded machine (5 s was not, under the suite beside
    # other work: the stacks then showed the worker still importing).
    r = subprocess.run([*GOVGATE, "run", "-p", str(policy), "--workers", "2", "--worker-start-timeout", "15s"],
                       capture_output=True, text=True, cwd=workdir, timeout=120, check=False,
                       env={**os.environ, "PYTHONPATH": str(hook)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "did not listen within 15 s" in r.stderr, r.stderr
    assert "worker.hung worker=" in r.stderr
    # faulthandler's dump of the hung worker: where it waits, so the cause can be found from the log alone
    assert "most recent call first" in r.stderr
    assert "in load_key_file" in r.stderr


def test_a_stalled_worker_is_seen_killed_and_restarted(upstream: Upstream, workdir: Path, redis_url: str) -> None:
    # Found in review: after SIGSTOP on one worker, half of new connections hung, health said 2 of 2 alive and
    # nothing was logged, until SIGCONT. A worker whose event loop gives no sign of life (its heartbeat) for
    # STALL_SECONDS is down for health, then asked for its stacks, killed and restarted.
    policy = write_policy(workdir / "policy.yaml", workers_policy(workdir, upstream.url, redis_url))
    proc, output = start_workers(policy, "--workers", "2")
    try:
        m = output.wait_for_line(r"govgate: listening on (\S+?)/ → \S+ \(2 workers, pids (\d+) (\d+)\)", 90)
        url, stopped = m.group(1), int(m.group(3))

        def alive() -> int | None:
            try:  # a new connection may land on the stopped worker: then it times out and is tried again
                return int(httpx.get(url + "/__govgate/health", timeout=2).json()["workers"]["alive"])
            except httpx.HTTPError:
                return None

        os.kill(stopped, signal.SIGSTOP)
        output.wait_for_line(rf"worker\.stalled worker=\d pid={stopped} no sign of life", 40)
        output.wait_for_line(rf"worker\.exit worker=\d pid={stopped} signal SIGKILL .* restarting in", 20)
        wait_for(lambda: alive() == 2, 40, "the restarted worker to answer")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        output.join()
    with pytest.raises(ProcessLookupError):
        os.kill(stopped, 0)
