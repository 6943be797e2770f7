"""The policy-watch addon with the gateway's own ``LiveRuntime`` (``tests/runtime.py``'s ``live_runtime``): a
policy saved whole is applied at the next poll and ``on_reload`` hears of it; a broken one is refused and the last
good policy stays; the watcher runs from ``running`` until ``done``. (SIGHUP and files written in place over
seconds: ``tests/e2e/test_gateway_http.py``, ``test_reload_only_complete_files.py``.)"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from mitmproxy.test import taddons

from govgate.addons.policy_watch import PolicyWatch
from govgate.core.policy.model import Policy
from govgate.live_runtime import LiveRuntime
from tests.policies import policy_data, policy_text, write_policy
from tests.runtime import live_runtime


class Reloads:
    """``on_reload`` as the gateway passes it: records (before, after) of each good reload."""

    def __init__(self) -> None:
        self.seen: list[tuple[Policy, Policy]] = []

    def __call__(self, before: Policy, after: Policy) -> None:
        self.seen.append((before, after))


def save_whole(path: Path, text: str) -> None:
    """Save ``text`` as the docs tell operators to: written beside ``path`` (a while ago), then renamed over it."""
    beside = path.with_suffix(".new")
    beside.write_text(text, encoding="utf-8")
    written = time.time_ns() - 5_000_000_000
    os.utime(beside, ns=(written, written))  # the rename comes after the last write, as it does for a person
    beside.replace(path)


async def poll_once(watch: PolicyWatch, runtime: LiveRuntime) -> None:
    """One poll of the watcher's loop: what changed and settled, then the reload."""
    changes = await asyncio.to_thread(runtime.changed_files)
    if changes is not None:
        await watch._reload("file change", changes=changes)


def test_a_policy_saved_whole_is_applied_at_the_next_poll_and_reported(tmp_path: Path) -> None:
    with live_runtime(tmp_path) as runtime:
        reloads = Reloads()
        watch = PolicyWatch(runtime, reloads)
        data = policy_data(tmp_path)
        data["session"] = {"idle_timeout": "5m", "absolute_timeout": "8h"}
        save_whole(tmp_path / "policy.yaml", policy_text(data))
        asyncio.run(poll_once(watch, runtime))
        assert runtime.policy_version == 2
        [(before, after)] = reloads.seen
        assert (before.session.idle_timeout.total_seconds(), after.session.idle_timeout.total_seconds()) == (900, 300)
        assert runtime.policy is after


def test_a_broken_policy_is_refused_and_the_last_good_one_stays(tmp_path: Path) -> None:
    with live_runtime(tmp_path) as runtime:
        reloads = Reloads()
        watch = PolicyWatch(runtime, reloads)
        good = runtime.policy
        path = tmp_path / "policy.yaml"
        save_whole(path, path.read_text(encoding="utf-8").replace("idle_timeout", "idle_timout"))
        asyncio.run(poll_once(watch, runtime))
        assert runtime.policy is good
        assert runtime.policy_version == 1
        assert reloads.seen == []
        # Looked at, and refused: counted, and health says so until a good reload.
        assert runtime.metrics.sample("govgate_policy_reloads_total", {"what": "policy", "result": "refused"}) == 1
        assert runtime.policy_refused
        save_whole(path, path.read_text(encoding="utf-8").replace("idle_timout", "idle_timeout"))
        asyncio.run(poll_once(watch, runtime))
        assert runtime.policy_version == 2
        assert not runtime.policy_refused
        assert runtime.metrics.sample("govgate_policy_reloads_total", {"what": "policy", "result": "ok"}) == 1


def test_the_watcher_runs_from_running_until_done(tmp_path: Path) -> None:
    with live_runtime(tmp_path) as runtime:
        reloads = Reloads()
        watch = PolicyWatch(runtime, reloads)

        async def main() -> None:
            with taddons.context(watch):
                await watch.running()
                data = policy_data(tmp_path)
                data["login"]["max_failures"] = 5
                write_policy(tmp_path / "policy.yaml", data)
                deadline = time.monotonic() + 10
                while runtime.policy_version < 2:  # the next poll, within 0.5 s
                    assert time.monotonic() < deadline, "the watcher did not apply the saved policy"
                    await asyncio.sleep(0.05)
                await watch.done()
                assert watch._task is not None
                assert watch._task.done()

        asyncio.run(main())
        assert runtime.policy.login.max_failures == 5
        assert len(reloads.seen) == 1
