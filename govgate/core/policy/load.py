"""Reading policy.yaml: bytes to text, text to the YAML node tree (``govgate.core.yaml_tree``), the tree
to the typed ``Policy`` (``validate.py``).

Every problem on the way, from a byte that is not UTF-8 to an unknown network name, becomes a
``PolicyProblem`` with its line, all collected in one ``PolicyReading`` (``policy_or_error()`` raises
them together in one ``PolicyError``). The bytes come from the files layer (``govgate.files``), which
also reads and checks the files the policy names (``reading.named_files``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from govgate.core.policy.validate import PolicyReading, build_policy
from govgate.core.yaml_tree import YamlSyntaxError, YNode, read_yaml_tree
from govgate.errors import PolicyProblem


def _policy_tree(text: str, file: str) -> tuple[YNode | None, list[PolicyProblem]]:
    """The tree of ``text`` and its YAML-level problems (syntax, duplicate keys, tags, an empty file). Never raises."""
    try:
        tree, problems = read_yaml_tree(text, file, document="a policy")
    except YamlSyntaxError as exc:
        return None, [PolicyProblem(file, exc.line, "", f"YAML syntax error: {exc.reason}")]
    if tree is None and not problems:
        return None, [PolicyProblem(file, 1, "", "the file is empty; expected a mapping starting with 'version: 1'")]
    return tree, problems


def read_policy_text(text: str, source: Path, *, sha256: str | None = None) -> PolicyReading:
    """Validate ``text`` as if read from ``source`` (relative paths resolve against its folder). Never raises:
    the reading holds the policy, or every problem found."""
    file = str(source)
    digest = sha256 if sha256 is not None else hashlib.sha256(text.encode("utf-8")).hexdigest()
    tree, problems = _policy_tree(text, file)
    if tree is None:
        return PolicyReading(None, tuple(problems))
    try:
        return build_policy(tree, file=file, source=source.absolute(), sha256=digest, yaml_problems=problems)
    except (ValueError, TypeError, OverflowError, RecursionError, ArithmeticError) as exc:
        # A value the validator did not foresee must still be a refusal, never a crash: the running gateway
        # keeps its last good policy and `govgate check` prints a message, not a traceback.
        return PolicyReading(None, (*problems, PolicyProblem(file, 0, "", f"cannot validate this policy: "
                                                                          f"{type(exc).__name__}: {str(exc)[:200]}")))


def read_policy_bytes(data: bytes, source: Path) -> PolicyReading:
    """Validate the bytes of the policy file ``source`` (UTF-8, a byte order mark allowed). Never raises."""
    file = str(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return PolicyReading(None, (PolicyProblem(file, line, "", f"expected UTF-8 text; found the byte "
                                                                  f"0x{data[exc.start]:02x} that is not UTF-8"),))
    return read_policy_text(text, source, sha256=hashlib.sha256(data).hexdigest())
