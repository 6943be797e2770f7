"""A running gateway applies only a complete policy.yaml (Art. 19; ``docs/operations.md``, Hot reload).

A policy written in place in two halves a second apart — the first half a valid policy of its own — is never
in force half-way: requests made all through the write never see the half's answers, and the audit log's
reload records name only the whole file's hash. A file saved atomically (written beside, renamed over) is
applied at the next poll.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.harness import (
    Upstream,
    read_records,
    start_gateway,
    wait_for,
    wait_for_record,
)
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

RULE_B = '  - {name: b, paths: ["/echo/public/b/**"], allow: public}\n'
RULE_NEWS = '  - {name: news, paths: ["/news/**"], allow: public}\n'
RULE_C = '  - {name: c, paths: ["/echo/public/c/**"], allow: public}\n'


def texts(workdir: Path, upstream: str) -> tuple[str, str, str]:
    """(before, the first half, the whole): `access` comes last, so the half ends after a complete rule.

    before: b 403, c 403 · half: b 200, c 403 · whole: b 200, c 200."""
    data = policy_data(workdir, upstream)
    del data["access"]
    head = yaml.safe_dump(data, allow_unicode=True, sort_keys=False) + "access:\n"
    return head + RULE_NEWS, head + RULE_B + RULE_NEWS, head + RULE_B + RULE_NEWS + RULE_C


def test_a_policy_written_in_two_halves_a_second_apart_is_never_applied_half_way(
        upstream: Upstream, workdir: Path) -> None:
    policy = workdir / "policy.yaml"
    before, half, whole = texts(workdir, upstream.url)
    policy.write_text(before, encoding="utf-8")
    gw = start_gateway(policy)
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            while not stop.is_set():
                b = client.get("/echo/public/b/x").status_code
                c = client.get("/echo/public/c/x").status_code
                seen.append((b, c))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with policy.open("w", encoding="utf-8") as f:  # in place: same inode, as `cat > policy.yaml` writes
            f.write(half)
            f.flush()
            time.sleep(1.0)
            f.write(whole[len(half):])
        wait_for(lambda: bool(seen) and seen[-1] == (200, 200), 6, "the whole policy in force")
    finally:
        stop.set()
        watcher.join(10)
    assert (200, 403) not in seen, "the first half was in force"
    wait_for_record(workdir / "audit", "the reload record", lambda r: r["event"] == "policy.reload")
    reloads = [r for r in read_records(workdir / "audit") if r["event"] == "policy.reload"]
    hashes = {r["policy_sha256"] for r in reloads}
    assert hashes == {hashlib.sha256(whole.encode()).hexdigest()}, reloads
    assert gw.stop() == 0


def test_a_policy_saved_atomically_is_applied_at_the_next_poll(upstream: Upstream, workdir: Path) -> None:
    policy = workdir / "policy.yaml"
    before, _half, whole = texts(workdir, upstream.url)
    policy.write_text(before, encoding="utf-8")
    gw = start_gateway(policy)
    try:
        assert httpx.get(gw.url + "/echo/public/c/x").status_code == 403
        tmp = workdir / "policy.yaml.new"
        tmp.write_text(whole, encoding="utf-8")
        time.sleep(0.05)  # the rename comes after the last write (a coarse file clock could stamp both alike)
        tmp.replace(policy)
        saved = time.monotonic()
        wait_for(lambda: httpx.get(gw.url + "/echo/public/c/x").status_code == 200, 10, "the new policy")
        # The poll runs every 0.5 s; a file written in place would wait 1.5 s of quiet on top.
        assert time.monotonic() - saved < 1.4
    finally:
        assert gw.stop() == 0


def test_a_staff_rule_cut_before_its_networks_is_refused_and_the_last_good_policy_stays(
        upstream: Upstream, workdir: Path) -> None:
    policy = workdir / "policy.yaml"
    data = policy_data(workdir, upstream.url)
    write_policy(policy, data)
    gw = start_gateway(policy)
    try:
        version = gw.policy_version()
        text = policy.read_text(encoding="utf-8")
        cut = text[: text.index("allow: staff") + len("allow: staff")] + "\n"
        tmp = workdir / "cut.yaml"
        tmp.write_text(cut, encoding="utf-8")
        tmp.replace(policy)
        wait_for(lambda: any(r["event"] == "policy.refused" for r in read_records(workdir / "audit")), 10,
                 "the refusal")
        refused = next(r for r in read_records(workdir / "audit") if r["event"] == "policy.refused")
        assert "a staff rule must name its networks" in refused["problems"]
        assert gw.policy_version() == version
        health = gw.health()
        assert "policy_refused" in health["reasons"]
        assert health["status"] == "degraded"
        # The office system is still closed to an address outside the office network.
        r = httpx.get(gw.url + "/oa/", headers={"X-Forwarded-For": "111.235.160.1", "Accept": "application/json"})
        assert r.status_code == 403
        assert r.json()["reason"] == "network"
    finally:
        assert gw.stop() == 0


def test_a_deleted_policy_is_reported_and_the_last_good_one_stays(upstream: Upstream, workdir: Path) -> None:
    # Found in review: with policy.yaml deleted, nothing was logged and health said ok (until a SIGHUP).
    policy = workdir / "policy.yaml"
    write_policy(policy, policy_data(workdir, upstream.url))
    gw = start_gateway(policy)
    try:
        version = gw.policy_version()
        text = policy.read_text(encoding="utf-8")
        policy.unlink()
        wait_for(lambda: "policy_refused" in gw.health()["reasons"], 10, "health to say the file is not in force")
        wait_for(lambda: any(r["event"] == "policy.refused" for r in read_records(workdir / "audit")), 10,
                 "the refusal's record")
        refused = next(r for r in read_records(workdir / "audit") if r["event"] == "policy.refused")
        assert "cannot read the policy file" in refused["problems"]
        assert gw.policy_version() == version
        assert httpx.get(gw.url + "/news/a").status_code == 200  # the last good policy serves on
        tmp = workdir / "back.yaml"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(policy)  # put back: a good load clears the refusal
        wait_for(lambda: "policy_refused" not in gw.health()["reasons"], 10, "the refusal to clear")
    finally:
        assert gw.stop() == 0
