"""Policy load, reload and refusal are audit records carrying the policy file's hash (Art. 20)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from govgate.audit.verify import verify_dir
from govgate.files import load_key_file
from govgate.live_runtime import LiveRuntime
from tests.policies import policy_data, write_policy


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_reload_and_refusal_records_carry_the_hash_of_the_file_they_judged(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    policy_file = tmp_path / "policy.yaml"
    data = policy_data(tmp_path, "http://127.0.0.1:9")
    write_policy(policy_file, data)
    loaded = sha256(policy_file)

    async def scenario() -> tuple[str, str, str]:
        runtime = LiveRuntime.load(policy_file)
        try:
            data["session"] = {"idle_timeout": "10m", "absolute_timeout": "8h"}
            write_policy(policy_file, data)
            good = sha256(policy_file)
            assert await runtime.reload(why="test", force=True)
            policy_file.write_text(policy_file.read_text().replace("idle_timeout", "idle_timout"))
            broken = sha256(policy_file)
            assert not await runtime.reload(why="test", force=True)
            (tmp_path / "broken-accounts.yaml").write_text("accounts: [not, a, mapping\n")
            data["accounts_file"] = str(tmp_path / "broken-accounts.yaml")
            write_policy(policy_file, data)  # a valid policy, but the accounts file it names is broken
            unreadable = sha256(policy_file)
            assert not await runtime.reload(why="test", force=True)
            return good, broken, unreadable
        finally:
            await runtime.close()

    good, broken, unreadable = asyncio.run(scenario())
    assert len({loaded, good, broken, unreadable}) == 4
    audit = tmp_path / "audit"
    records = [json.loads(line) for f in sorted(audit.glob("audit-*.jsonl")) for line in f.read_text().splitlines()]
    policy = [(r["event"], r["policy_sha256"]) for r in records if r["event"].startswith("policy.")]
    assert policy == [("policy.load", loaded), ("policy.reload", good), ("policy.refused", broken),
                      ("policy.refused", unreadable)]
    refused = [r for r in records if r["event"] == "policy.refused"]
    assert "idle_timout" in refused[0]["problems"]  # the refusal says what was wrong
    assert all(r["article"] == "Art. 20" and r["decision"] == "refuse" for r in refused)
    assert verify_dir(audit, load_key_file(tmp_path / "secrets" / "gateway.key")).count == len(records)
