"""Property: any mutation of a valid policy's YAML either loads or raises PolicyError, never anything else."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govgate.core.policy.model import Policy
from govgate.errors import PolicyError
from govgate.files import load_policy
from tests.policy.test_valid_policies import FULL
from tests.policy.texts import BASE, REPO

SHIPPED = (REPO / "policy.yaml").read_text(encoding="utf-8")
EXAMPLES = int(os.environ.get("GOVGATE_POLICY_EXAMPLES", "300"))

TOKENS = [
    "NO", "no", "off", "~", "null", "[]", "{}", "-1", "0", "1e9", ".inf", ".nan", "0x1F", "0o17", "22:00",
    '""', "''", "2026-02-30", "2026-12-01T25:00", "!!binary aGk=", "!!python/name:os.system", "&a x", "*a",
    "<<: *a", "- x", ": x", "'unterminated", '"\\x00"', "\t", "例子.政务", "::1", "[::1]:0", "10.0.0.1/8",
    "x" * 300, "9999-12-31T23:00-12:00", "0001-01-01", "::1%eth0", "*.", "/**", "staff",
    "public", "deny", "true", "1h30m", "0s", "? x", "|", ">", "%TAG ! x",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from([BASE, FULL, SHIPPED])).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["replace_value", "delete", "duplicate", "insert", "chars", "indent"]))
        line = lines[i]
        if op == "replace_value":
            token = draw(st.sampled_from(TOKENS))
            lines[i] = line.split(":", 1)[0] + ": " + token if ":" in line else token
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(TOKENS)))
        elif op == "chars":
            pos = draw(st.integers(0, len(line)))
            junk = draw(st.text(alphabet=st.sampled_from(list(":-[]{},'\"#&*!|>%@` \t0a政")), max_size=4))
            lines[i] = line[:pos] + junk + line[pos + draw(st.integers(0, 3)):]
        else:
            lines[i] = draw(st.sampled_from(["", " ", "  ", "    "])) + line.lstrip()
    return "\n".join(lines) + "\n"


def load_or_error(text: str, *, check_files: bool) -> Policy | PolicyError:
    """The policy, or the PolicyError; any other exception escapes and fails the test."""
    try:
        return load_policy(REPO / "policy.yaml", data=text.encode("utf-8"), check_files=check_files)
    except PolicyError as exc:
        return exc


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_mutation_of_a_valid_policy_loads_or_raises_policy_error(text: str) -> None:
    outcome = load_or_error(text, check_files=True)
    if isinstance(outcome, PolicyError):
        assert outcome.problems, "a PolicyError lists at least one problem"
        for problem in outcome.problems:
            assert str(problem).startswith(str(REPO / "policy.yaml"))
            assert problem.message
    else:
        assert isinstance(outcome, Policy)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_loads_or_raises_policy_error(text: str) -> None:
    outcome = load_or_error(text, check_files=False)
    assert isinstance(outcome, Policy) or outcome.problems
