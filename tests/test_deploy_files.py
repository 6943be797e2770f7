"""The files in deploy/ say what docs/deploy.md promises, and agree with each other and with deploy/policy.yaml.

The systemd unit is read as systemd reads it (``systemd-analyze security --offline``: no unknown keys, a low
exposure) and for the settings the docs name; the container file and compose file are parsed for a non-root
user, a read-only root file system and only the audit and state folders writable (no container engine runs
here: ``docker build`` is untested, as the doc says); the HAProxy example passes ``haproxy -c`` and the nginx
example is read for ``proxy_protocol on``. A real HAProxy built from deploy/haproxy.cfg in front of real
gateways is in tests/e2e/test_load_balancer.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from govgate.core.policy.model import Policy
from govgate.files import load_policy

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section → key → every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(values: dict[str, list[str]], key: str) -> str:
    assert len(values.get(key, [])) == 1, f"{key}: {values.get(key)}"
    return values[key][0]


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min|m)?", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


@pytest.fixture(scope="module")
def policy() -> Policy:
    path = DEPLOY / "policy.yaml"
    return load_policy(path, data=path.read_bytes(), check_files=False)


def test_the_example_policy_is_valid_and_speaks_proxy_protocol_with_its_balancers_only(policy: Policy) -> None:
    gw = policy.gateway
    assert gw.proxy_protocol is True
    assert gw.trusted_proxies
    assert all(net.num_addresses == 1 for net in gw.trusted_proxies)
    assert policy.state.redis_url is not None
    assert policy.state.redis_url.startswith("redis+sentinel://")
    assert not gw.insecure


def test_the_systemd_unit_runs_as_its_own_user_with_one_capability_and_a_read_only_system(policy: Policy) -> None:
    service = unit(DEPLOY / "govgate.service")["Service"]
    assert one(service, "User") == one(service, "Group") == "govgate"
    assert one(service, "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert one(service, "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "ProtectHome") in ("yes", "read-only", "tmpfs")
    assert one(service, "PrivateTmp") == "yes"
    families = set(one(service, "RestrictAddressFamilies").split())
    assert {"AF_INET", "AF_INET6"} <= families <= {"AF_INET", "AF_INET6", "AF_UNIX"}
    # Writable: the audit log and the gateway's state (its key and mitmproxy's folder beside it), nothing else.
    writable = {Path(p) for p in one(service, "ReadWritePaths").split()}
    assert writable == {policy.audit.dir, policy.gateway.key_file.parent}
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(service, "KillSignal") == "SIGTERM"
    assert seconds(one(service, "TimeoutStopSec")) > policy.gateway.drain_timeout.total_seconds()
    start = shlex.split(one(service, "ExecStart"))
    assert start[1:] == ["run", "-p", "/etc/govgate/policy.yaml", "--workers", "auto"]
    assert policy.state.redis_url  # several workers need the shared store
    assert one(service, "KillMode") == "mixed"  # the parent forwards SIGTERM and waits for the workers' drain
    assert start[0].endswith("/bin/govgate")
    assert shlex.split(one(service, "ExecStartPre"))[1:] == ["check", "-p", "/etc/govgate/policy.yaml"]


def test_systemd_reads_every_key_of_the_units_and_rates_the_gateways_exposure_low() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian: systemd)", pytrace=False)
    for path in sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer")):
        done = subprocess.run([analyze, "security", "--offline=true", str(path)], capture_output=True, text=True,
                              check=False)
        assert "Unknown" not in done.stderr, (path.name, done.stderr)
        assert "ignoring" not in done.stderr.lower(), (path.name, done.stderr)
        if path.name == "govgate.service":
            m = re.search(r"Overall exposure level for govgate\.service: (\d+\.\d+)", done.stdout)
            assert m, done.stdout[-500:]
            assert float(m.group(1)) <= 2.0, done.stdout


def test_the_timers_refresh_geoip_and_back_up_the_audit_log() -> None:
    geoip = unit(DEPLOY / "govgate-geoipupdate.service")["Service"]
    assert shlex.split(one(geoip, "ExecStart"))[0].endswith("geoipupdate")
    backup = unit(DEPLOY / "govgate-audit-backup.service")["Service"]
    command = shlex.split(one(backup, "ExecStart"))
    assert command[1:3] == ["audit", "backup"]
    assert one(backup, "User") == "govgate"
    for name in ("govgate-geoipupdate.timer", "govgate-audit-backup.timer"):
        assert one(unit(DEPLOY / name)["Timer"], "OnCalendar")


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Containerfile's instructions, continuation lines joined: (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_container_runs_as_a_non_root_user_with_only_audit_and_state_as_volumes(policy: Policy) -> None:
    steps = instructions(DEPLOY / "Containerfile")
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    final = steps[last_from:]
    users = [arg for word, arg in final if word == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    assert all(u.split(":")[0] not in ("root", "0") for u in users)
    volumes = [arg for word, arg in final if word == "VOLUME"]
    assert len(volumes) == 1
    assert set(yaml.safe_load(volumes[0])) == {str(policy.audit.dir), str(policy.gateway.key_file.parent)}
    assert ("STOPSIGNAL", "SIGTERM") in final
    installs = [arg for word, arg in steps if word == "RUN" and "pip install" in arg]
    assert any("--require-hashes -r requirements/runtime.txt" in arg for arg in installs)
    assert any("--no-deps ." in arg for arg in installs)
    assert (REPO / "requirements" / "runtime.txt").is_file()


def test_compose_runs_it_read_only_with_only_audit_and_state_writable(policy: Policy) -> None:
    service = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))["services"]["govgate"]
    assert service["read_only"] is True
    user = next(arg for word, arg in instructions(DEPLOY / "Containerfile") if word == "USER")
    assert service["user"] == user
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    writable = {v.split(":")[1] for v in service["volumes"] if not v.endswith(":ro")}
    assert writable == {str(policy.audit.dir), str(policy.gateway.key_file.parent)}
    assert service["tmpfs"] == ["/tmp"]
    assert seconds(service["stop_grace_period"]) > policy.gateway.drain_timeout.total_seconds()


def test_the_haproxy_example_is_valid_tcp_with_proxy_protocol_to_the_gateways_port(policy: Policy) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.fail("haproxy is missing: scripts/setup --test installs it (Debian: haproxy)", pytrace=False)
    path = DEPLOY / "haproxy.cfg"
    done = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = path.read_text(encoding="utf-8")
    assert re.search(r"^\s*mode tcp$", text, re.MULTILINE)
    assert re.search(r"^\s*default-server .*\bsend-proxy-v2\b.*\bcheck-send-proxy\b", text, re.MULTILINE)
    backend = text[text.index("\nbackend govgate\n"):text.index("\nbackend govgate_redirect")]
    ports = set(re.findall(r"^\s*server \S+ \S+:(\d+)", backend, re.MULTILINE))
    assert ports == {str(policy.gateway.listen.port)}


def test_the_nginx_example_sends_the_proxy_protocol_to_the_gateways_port(policy: Policy) -> None:
    text = (DEPLOY / "nginx-stream.conf").read_text(encoding="utf-8")
    assert text.lstrip("# \n").count("stream {") == 1
    assert re.search(r"^\s*proxy_protocol on;$", text, re.MULTILINE)
    ports = set(re.findall(r"^\s*server \S+:(\d+)", text, re.MULTILINE))
    assert ports == {str(policy.gateway.listen.port)}

