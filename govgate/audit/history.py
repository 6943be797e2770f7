"""Reading the log for what an auditor asks (Art. 20): one checked walk that also collects the policy timeline.

``scan_log`` walks the log with ``walk_dir`` (every line checked, problems collected, not raised) and
feeds the policy and gateway records to a ``PolicyTimeline`` on the way; ``show``, ``report`` and
``policy --at`` all start from it. ``PolicyTexts`` reads the kept policy texts (``policies/``), checks
each against the hash its record holds, and turns one into the ``OverseasRule`` of its time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from govgate.audit.kept_policies import read_kept
from govgate.audit.verify import Progress, Visitor, WalkResult, walk_dir
from govgate.core.audit_history import OverseasRule, PolicyPeriod, PolicyTimeline, policy_from_text
from govgate.core.audit_keys import AuditKey
from govgate.core.audit_walk import Finding, Unverified
from govgate.core.policy.model import Policy


@dataclass(slots=True)
class Scan:
    """A checked walk of the log: what it found, the policy timeline, and where each file's lines start."""

    result: WalkResult
    timeline: PolicyTimeline

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    @property
    def first_ordinal(self) -> dict[str, int]:
        return self.result.file_starts

    def problems_by_ordinal(self) -> tuple[dict[int, str], list[Unverified]]:
        """What to mark each shown line with: findings by the line they name, and the unverified ranges."""
        return {f.ordinal: f.what for f in self.result.findings if f.ordinal >= 0}, list(self.result.unverified)


def scan_log(directory: Path, key: AuditKey, *, start: str | None = None, visit: Visitor | None = None,
             progress: Progress | None = None,
             files: tuple[list[tuple[str, int]], bytes | None] | None = None) -> Scan:
    """Walk the log from the file ``start`` on (every file when None), collecting problems and the timeline."""
    timeline = PolicyTimeline()
    result = walk_dir(directory, key, collect=True, start=start, visit=visit, progress=progress, files=files,
                      seen=timeline.add)
    return Scan(result, timeline)


def last_timeline_file(directory: Path, names: list[str], before: str) -> str | None:
    """The newest file before ``before`` holding a policy load (raw search, newest first): a walk that starts
    there knows the policy in force when ``before`` begins."""
    for name in reversed([n for n in names if n < before]):
        try:
            data = (directory / name).read_bytes()
        except OSError:
            continue
        if b'"event":"policy.load"' in data or b'"event":"policy.reload"' in data:
            return name
    return None


class PolicyTexts:
    """The kept policy texts of one audit directory, each checked against its hash, parsed once."""

    def __init__(self, directory: Path, fallback: Policy | None = None) -> None:
        self.directory = directory
        self.fallback = fallback  # used for records older than every kept text (a log from before they were kept)
        self._rules: dict[str, OverseasRule | None] = {}
        self._policies: dict[str, Policy | None] = {}
        self.missing: set[str] = set()  # names of kept texts that are missing or do not match their hash

    def text(self, period: PolicyPeriod) -> bytes | None:
        """The exact text of the policy in force in ``period``, when kept and matching its hash."""
        if period.text_name is None:
            return None
        data = read_kept(self.directory, period.text_name)
        if data is None or hashlib.sha256(data).hexdigest() != period.sha256:
            self.missing.add(period.text_name)
            return None
        return data

    def policy(self, period: PolicyPeriod | None) -> Policy | None:
        if period is None:
            return self.fallback
        if period.sha256 not in self._policies:
            data = self.text(period)
            self._policies[period.sha256] = None if data is None else \
                policy_from_text(data, period.file or str(self.directory / "policy.yaml"))
        return self._policies[period.sha256] or self.fallback

    def overseas_rule(self, period: PolicyPeriod | None) -> OverseasRule | None:
        key = period.sha256 if period is not None else ""
        if key not in self._rules:
            policy = self.policy(period)
            self._rules[key] = None if policy is None else OverseasRule(policy)
        return self._rules[key]

