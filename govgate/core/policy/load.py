"""Reading policy.yaml: bytes to text, text to the YAML node tree (``govgate.core.yaml_tree``), the tree
to the typed ``Policy`` (``validate.py``).

Every problem on the way, from a byte that is not UTF-8 to an unknown network name, becomes a
``PolicyProblem`` with its line, and all of them are raised together in one ``PolicyError``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from govgate.core.policy.model import Policy
from govgate.core.policy.validate import build_policy
from govgate.core.yaml_tree import YamlSyntaxError, YNode, read_yaml_tree
from govgate.errors import PolicyError, PolicyProblem


def _policy_tree(text: str, file: str) -> tuple[YNode | None, list[PolicyProblem]]:
    """The tree of ``text`` and its YAML-level problems (syntax, duplicate keys, tags, an empty file). Never raises."""
    try:
        tree, problems = read_yaml_tree(text, file, document="a policy")
    except YamlSyntaxError as exc:
        return None, [PolicyProblem(file, exc.line, "", f"YAML syntax error: {exc.reason}")]
    if tree is None and not problems:
        return None, [PolicyProblem(file, 1, "", "the file is empty; expected a mapping starting with 'version: 1'")]
    return tree, problems


def load_policy_text(text: str, source: Path, *, check_files: bool = True, sha256: str | None = None) -> Policy:
    """The validated policy in ``text``, as if read from ``source`` (paths resolve against its folder).

    Raises ``PolicyError`` listing every problem. ``check_files=False`` skips the checks that touch
    the filesystem (GeoIP database, TLS files).
    """
    file = str(source)
    digest = sha256 if sha256 is not None else hashlib.sha256(text.encode("utf-8")).hexdigest()
    tree, problems = _policy_tree(text, file)
    if tree is None:
        raise PolicyError(problems)
    try:
        return build_policy(tree, file=file, source=source.absolute(), sha256=digest, check_files=check_files,
                            yaml_problems=problems)
    except PolicyError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, ArithmeticError) as exc:
        # A value the validator did not foresee must still be a refusal, never a crash: the running gateway
        # keeps its last good policy and `govgate check` prints a message, not a traceback.
        raise PolicyError([*problems, PolicyProblem(file, 0, "", f"cannot validate this policy: {type(exc).__name__}: "
                                                                 f"{str(exc)[:200]}")]) from None


def load_policy(path: Path, *, check_files: bool = True) -> Policy:
    """Read, parse and validate ``path``. Raises ``PolicyError`` listing every problem."""
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PolicyError([PolicyProblem(file, 0, "", f"cannot read the policy file: {reason}")]) from None
    return load_policy_bytes(data, path, check_files=check_files)


def load_policy_bytes(data: bytes, path: Path, *, check_files: bool = True) -> Policy:
    """Parse and validate the bytes read from ``path`` (the gateway's reload reads them once, when the
    file has settled, and loads exactly those). Raises ``PolicyError`` listing every problem."""
    file = str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PolicyError([PolicyProblem(file, line, "", f"expected UTF-8 text; found the byte "
                                                          f"0x{data[exc.start]:02x} that is not UTF-8")]) from None
    return load_policy_text(text, path, check_files=check_files, sha256=hashlib.sha256(data).hexdigest())
