"""Real processes for end-to-end tests: the sample portal as upstream, `govgate run` as the gateway.

Nothing here is a mock: the gateway is the `govgate` command (``python -m govgate run``), started on
port 0, and the tests talk to it over real sockets (plain HTTP or TLS with certificates made by trustme).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.command import GOVGATE
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]

# Addresses the bundled MaxMind test database knows (tests/data/geoip/GeoLite2-Country-Test.json).
GB_ADDRESS = "81.2.69.160"
US_ADDRESS = "216.160.83.57"
CN_ADDRESS = "111.235.160.1"
OFFICE_ADDRESS = "10.1.2.3"

# The state stores a login suite runs against (work order issue 4): in-process memory and a real Redis.
# Use as ``params=STORE_PARAMS`` of a fixture; the Redis one carries the ``redis`` marker.
STORE_PARAMS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def read_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every record of the audit log in ``audit_dir``, oldest first: the complete lines only (the gateway's writer
    may be half way through appending the last one while we read)."""
    records = []
    for path in sorted(audit_dir.glob("audit-*.jsonl")):
        for line in path.read_bytes().split(b"\n")[:-1]:
            if line.strip():
                records.append(json.loads(line))
    return records


def wait_for_record(audit_dir: Path, what: str, match: Callable[[dict[str, Any]], bool],
                    timeout: float = 10) -> dict[str, Any]:
    """The newest record matching ``match``, once the gateway's audit writer has put one on disk."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [r for r in read_records(audit_dir) if match(r)]
        return bool(found)

    wait_for(seen, timeout, what)
    return found[-1]


class OutputReader:
    """Collects a process's output lines in a thread so we can wait on them with a deadline."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in self._stream:  # type: ignore[attr-defined]
            self.lines.append(raw.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        rx = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines:
                m = rx.search(line)
                if m:
                    found.append(m)
                    return True
            return False

        wait_for(seen, timeout, lambda: f"output matching {pattern!r}; got:\n" + "\n".join(self.lines[-30:]))
        return found[0]

    def join(self) -> None:
        self._thread.join(5)

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Upstream:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client the test (or the gateway) dropped resets the portal's connection: no traceback


@contextmanager
def portal_in_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A test's own portal (``handler`` answering), on a free loopback port in this process; yields its URL."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def start_upstream() -> Upstream:
    proc = subprocess.Popen([sys.executable, "-m", "govgate.sample_portal", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)
    reader = OutputReader(proc.stdout)
    m = reader.wait_for_line(r"sample portal on (http://\S+?)/$")
    return Upstream(proc, m.group(1))


@dataclass
class Gateway:
    proc: subprocess.Popen[str]
    url: str
    policy_path: Path
    output: OutputReader
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def health(self) -> dict[str, Any]:
        import httpx

        return httpx.get(self.url + "/__govgate/health", timeout=10).json()  # type: ignore[no-any-return]

    def policy_version(self) -> int:
        """Loads of policy.yaml so far."""
        return int(self.health()["policy_version"])

    def data_version(self) -> int:
        """Loads of the accounts file and GeoIP database so far."""
        return int(self.health()["data_version"])

    def add_account(self, name: str, password: str, groups: str = "staff") -> str:
        """Create an account with the real CLI and wait until this gateway has reloaded the accounts file."""
        before = self.data_version()
        secret = add_account(self.policy_path, name, password, groups)
        wait_for(lambda: self.data_version() > before, 5, f"the gateway to see account {name}")
        return secret

    def stop(self) -> int:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    return self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                    raise AssertionError("gateway did not exit within 15 s of SIGTERM") from None
            return self.proc.returncode
        finally:
            self.output.join()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start_gateway(policy_path: Path, *, timeout: float = 30.0) -> Gateway:
    env = dict(os.environ)
    proc = subprocess.Popen([*GOVGATE, "run", "-p", str(policy_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=policy_path.parent, env=env)
    reader = OutputReader(proc.stdout)
    try:
        m = reader.wait_for_line(r"govgate: listening on (\S+?)/ ", timeout)
    except AssertionError:
        proc.kill()
        raise
    return Gateway(proc, m.group(1), policy_path, reader, policy_path.parent)


def add_account(policy_path: Path, name: str, password: str, groups: str = "staff") -> str:
    """Create an account with the real CLI; returns its TOTP secret (parsed from the otpauth URI)."""
    out = subprocess.run([*GOVGATE, "account", "add", name, "--groups", groups, "--password-stdin",
                          "-p", str(policy_path)], input=password + "\n", capture_output=True, text=True,
                         check=True, cwd=policy_path.parent)
    m = re.search(r"otpauth://\S+", out.stdout)
    assert m, out.stdout + out.stderr
    return pyotp.parse_uri(m.group(0)).secret  # type: ignore[no-any-return]


def store_state(store: str, redis_url: str | None) -> dict[str, object] | None:
    """The policy's ``state`` section for ``store`` ("memory": none, "redis": the given server)."""
    if store == "memory":
        return None
    assert store == "redis", store
    assert redis_url
    return {"redis": redis_url, "timeout": "1s"}


class AccountTemplates:
    """Accounts made once per session (per xdist worker) with the real CLI and copied into each gateway's
    directory with the key file they were made under: creating an account costs an Argon2id hash and a
    process start, and a login suite needs the same accounts on every store it runs against."""

    def __init__(self, root: Path, age: timedelta = timedelta(days=1)) -> None:
        self.root = root
        self.age = age
        self._made: dict[tuple[tuple[str, tuple[str, str]], ...], tuple[Path, dict[str, str]]] = {}

    def install(self, workdir: Path, accounts: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Put ``accounts`` (name → (password, groups)) and their key file into ``workdir``; returns the TOTP
        secrets. ``workdir`` must not have a key file yet."""
        key = tuple(sorted(accounts.items()))
        if key not in self._made:
            template = self.root / f"accounts-{len(self._made)}"
            (template / "secrets").mkdir(parents=True)
            policy = template / "policy.yaml"
            write_policy(policy, policy_data(template, "http://127.0.0.1:9"))
            secrets = {name: add_account(policy, name, password, groups)
                       for name, (password, groups) in accounts.items()}
            self._backdate(template / "accounts.yaml")
            self._made[key] = (template, secrets)
        template, secrets = self._made[key]
        (workdir / "secrets").mkdir(exist_ok=True)
        target = workdir / "secrets" / "gateway.key"
        assert not target.exists(), "the accounts are encrypted under the template's key"
        shutil.copy2(template / "secrets" / "gateway.key", target)
        shutil.copy2(template / "accounts.yaml", workdir / "accounts.yaml")
        return dict(secrets)

    def _backdate(self, path: Path) -> None:
        """Make the accounts ``age`` old (created and password set then), as accounts in service are: a
        password step can then be back-dated in the store without looking older than the password."""
        def older(m: re.Match[str]) -> str:
            return m.group(1) + (datetime.fromisoformat(m.group(2)) - self.age).isoformat() + m.group(3)

        text = path.read_text(encoding="utf-8")
        new, count = re.subn(r"^( +(?:created|password_changed): ')([^']+)(')$", older, text, flags=re.MULTILINE)
        assert count, text[:500]
        path.write_text(new, encoding="utf-8")


def start_store_gateway(workdir: Path, upstream: str, store: str, redis_url: str | None,
                        templates: AccountTemplates, accounts: dict[str, tuple[str, str]],
                        **overrides: object) -> tuple[Gateway, dict[str, str]]:
    """A gateway on ``store`` with ``accounts`` (name → (password, groups)) in place before it starts (no
    reload wait per account); returns it and each account's TOTP secret. Checks that it really uses ``store``."""
    policy = workdir / "policy.yaml"
    data = policy_data(workdir, upstream, **overrides)
    state = store_state(store, redis_url)
    if state is not None:
        data["state"] = state
    secrets = templates.install(workdir, accounts)
    write_policy(policy, data)
    gateway = start_gateway(policy)
    kind = gateway.health()["store"]["kind"]
    if kind != store:
        gateway.stop()
        raise AssertionError(f"the gateway runs on the {kind} store, not {store}")
    return gateway, secrets
