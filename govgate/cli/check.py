"""`govgate check [-p policy.yaml]`: validate the policy (and, through hooks, the files it names).

Prints ``policy.yaml: OK (N rules, M grants, K networks)`` and exits 0, or every problem as
``file:line: key.path: message`` on stdout and exits 1. Each file the policy names and another
module owns has a checker in ``EXTRA_CHECKS`` (the accounts file's is there from the start); their
problems are listed with the policy's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from govgate.accounts_file import accounts_problems, load_accounts
from govgate.core.access import catch_all_warnings
from govgate.core.grants import grant_warnings
from govgate.core.policy.model import Policy
from govgate.core.wall_time import wall_time
from govgate.devices_file import load_registry
from govgate.errors import PolicyError, PolicyProblem
from govgate.files import load_policy

# A checker gets the validated policy and returns the problems of the file it owns (empty: fine).
type ExtraCheck = Callable[[Policy], list[PolicyProblem]]
def devices_problems(policy: Policy) -> list[PolicyProblem]:
    """The device registry's own problems (an unreadable or invalid devices file)."""
    try:
        load_registry(policy.devices_file)
    except PolicyError as exc:
        return list(exc.problems)
    return []


EXTRA_CHECKS: list[ExtraCheck] = [accounts_problems, devices_problems]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[common], help="validate policy.yaml; list every problem, exit 1 on any")
    p.set_defaults(func=check)


def check_policy(path: Path) -> tuple[Policy | None, list[PolicyProblem]]:
    """The policy (None if invalid) and every problem found in it and in the files it names."""
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        return None, list(exc.problems)
    problems: list[PolicyProblem] = []
    for extra in EXTRA_CHECKS:
        problems.extend(extra(policy))
    return policy, problems


def policy_warnings(policy: Policy, file: str) -> list[PolicyProblem]:
    """Valid but probably not meant: a public catch-all below a staff rule (``catch_all_warnings``), grants that
    can admit nobody (``grant_warnings``)."""
    try:
        accounts: frozenset[str] | None = (frozenset(a.name for a in load_accounts(policy.accounts_file))
                                           if policy.accounts_file.exists() else None)
    except PolicyError:
        accounts = frozenset()  # its problems are listed as errors by accounts_problems
    try:
        registered = frozenset(d.id for d in load_registry(policy.devices_file))
    except PolicyError:
        registered = frozenset()  # its problems are listed as errors by devices_problems
    devices = frozenset(d.id for d in policy.devices) | registered
    zone = policy.gateway.timezone
    return [*catch_all_warnings(policy.access, file),
            *grant_warnings(policy, accounts, devices, wall_time(datetime.now(zone), zone), file=file)]


def check(args: argparse.Namespace) -> int:
    path: Path = args.policy
    policy, problems = check_policy(path)
    errors = [p for p in problems if not p.warning]
    if errors or policy is None:
        for problem in problems:
            print(problem)
        print(f"{path}: {len(errors)} problem{'s' if len(errors) != 1 else ''}", file=sys.stderr)
        return 1
    warnings = [*problems, *policy_warnings(policy, str(path))]
    for warning in warnings:
        print(warning)
    counted = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
    print(f"{path}: OK ({len(policy.access)} rules, {len(policy.grants)} grants, {len(policy.networks)} networks"
          f"{counted})")
    return 0
