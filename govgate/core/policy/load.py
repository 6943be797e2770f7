"""Reading policy.yaml: YAML text to a plain tree of values with line numbers, then to the typed ``Policy``.

This module owns the YAML side: syntax errors, duplicate keys, unsupported tags and aliases that
expand without bound all become ``PolicyProblem``s with their line. Nothing is constructed from
arbitrary tags: PyYAML's composer (SafeLoader) gives nodes, and only the plain scalar types
(string, integer, float, boolean, null, timestamp), mappings and sequences are accepted. Each
scalar keeps its original text, so ``home_countries: [NO]`` stays the country ``NO`` and is not
the YAML 1.1 boolean ``false``. Meaning is checked in ``validate.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import yaml

from govgate.core.policy.model import Policy
from govgate.errors import PolicyError, PolicyProblem

_YAML = "tag:yaml.org,2002:"
_SCALAR_KINDS = {
    _YAML + "str": "str",
    _YAML + "int": "int",
    _YAML + "float": "float",
    _YAML + "bool": "bool",
    _YAML + "null": "null",
    _YAML + "timestamp": "timestamp",
}
MAX_NODES = 1_000_000  # values after expanding aliases: guards against alias bombs ("billion laughs")
MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class YScalar:
    """A scalar: ``value`` as YAML resolved it, ``text`` as written, ``kind`` one of _SCALAR_KINDS' values."""

    value: str | int | float | bool | date | datetime | None
    text: str
    kind: str
    line: int
    quoted: bool


@dataclass(frozen=True, slots=True)
class YMap:
    items: tuple[tuple[YScalar, YNode], ...]
    line: int


@dataclass(frozen=True, slots=True)
class YSeq:
    items: tuple[YNode, ...]
    line: int


type YNode = YScalar | YMap | YSeq


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


class _TreeBuilder:
    """Nodes to the plain tree. An alias is converted once and shared; its expanded size still counts,
    so a "billion laughs" document is one problem instead of a hang in the validator."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[PolicyProblem] = []
        self.done: dict[int, tuple[YNode, int]] = {}  # id(node) -> (tree, expanded size)
        self.active: set[int] = set()
        self.constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def problem(self, line: int, path: str, message: str) -> None:
        self.problems.append(PolicyProblem(self.file, line, path, message))

    def build(self, node: yaml.Node) -> YNode:
        return self.sized(node, 0, "")[0]

    def sized(self, node: yaml.Node, depth: int, path: str) -> tuple[YNode, int]:
        """The tree of ``node`` (first reached at key path ``path``) and its size with aliases expanded."""
        key = id(node)
        if key in self.done:
            return self.done[key]
        line = node.start_mark.line + 1
        if key in self.active:
            raise _TooBig(line, "an alias refers to a value that contains it; expected no recursive aliases")
        if depth > MAX_DEPTH:
            raise _TooBig(line, f"values are nested more than {MAX_DEPTH} deep; expected a policy of ordinary shape")
        self.active.add(key)
        tree: YNode
        size = 1
        if isinstance(node, yaml.ScalarNode):
            tree = self.scalar(node, line, path)
        elif isinstance(node, yaml.SequenceNode):
            if node.tag != _YAML + "seq":
                self.problem(line, path, f"unsupported YAML tag {node.tag!r}; expected a plain list")
            items: list[YNode] = []
            for i, child in enumerate(node.value):
                item, n = self.sized(child, depth + 1, f"{path}[{i}]")
                items.append(item)
                size += n
            tree = YSeq(tuple(items), line)
        elif isinstance(node, yaml.MappingNode):
            if node.tag != _YAML + "map":
                self.problem(line, path, f"unsupported YAML tag {node.tag!r}; expected a plain mapping")
            tree, n = self.mapping(node, line, depth, path)
            size += n
        else:
            raise _TooBig(line, f"unsupported YAML node {type(node).__name__}")
        if size > MAX_NODES:
            raise _TooBig(line, f"the document expands to more than {MAX_NODES} values (through aliases); "
                                "expected a policy of ordinary size")
        self.active.discard(key)
        self.done[key] = (tree, size)
        return tree, size

    def scalar(self, node: yaml.ScalarNode, line: int, path: str) -> YScalar:
        text = str(node.value)
        quoted = node.style in ("'", '"', "|", ">")
        if node.tag == _YAML + "merge":
            self.problem(line, path, "YAML merge keys (<<) are not supported; expected the keys written out")
            return YScalar(text, text, "str", line, quoted)
        kind = _SCALAR_KINDS.get(node.tag)
        if kind is None:
            self.problem(line, path, f"unsupported YAML tag {node.tag!r}; expected a plain value")
            return YScalar(text, text, "str", line, quoted)
        if kind == "str":
            return YScalar(text, text, kind, line, quoted)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError, yaml.YAMLError):
            # e.g. a timestamp like 2026-02-30: keep the text, the validator says what is wrong with it.
            return YScalar(text, text, "str", line, quoted)
        if not isinstance(value, str | int | float | bool | date | datetime | None):
            return YScalar(text, text, "str", line, quoted)
        return YScalar(value, text, kind, line, quoted)

    def mapping(self, node: yaml.MappingNode, line: int, depth: int, path: str) -> tuple[YMap, int]:
        items: list[tuple[YScalar, YNode]] = []
        seen: dict[str, int] = {}
        size = 0
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_line, path, "a key must be a plain name; found a list or mapping as a key")
                continue
            key = self.scalar(key_node, key_line, path)
            key_path = f"{path}.{key.text}" if path else key.text
            if key.text in seen:
                self.problem(key_line, key_path, f"duplicate key {key.text!r} (first at line {seen[key.text]}); "
                                       "expected each key once")
                continue
            seen[key.text] = key_line
            value, n = self.sized(value_node, depth + 1, key_path)
            size += n + 1
            items.append((key, value))
        return YMap(tuple(items), line), size


def _yaml_error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    return 0


def parse_yaml_tree(text: str, file: str) -> tuple[YNode | None, list[PolicyProblem]]:
    """The tree of ``text`` and the YAML-level problems (syntax, duplicate keys, tags). Never raises."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "; ".join(parts) if parts else "invalid YAML"
        return None, [PolicyProblem(file, _yaml_error_line(exc), "", f"YAML syntax error: {message}")]
    except yaml.YAMLError as exc:
        return None, [PolicyProblem(file, _yaml_error_line(exc), "", f"YAML error: {exc}")]
    except RecursionError:
        return None, [PolicyProblem(file, 0, "", "YAML is nested too deeply to read")]
    if node is None:
        return None, [PolicyProblem(file, 1, "", "the file is empty; expected a mapping starting with 'version: 1'")]
    builder = _TreeBuilder(file)
    try:
        tree = builder.build(node)
    except _TooBig as exc:
        return None, [*builder.problems, PolicyProblem(file, exc.line, "", exc.message)]
    return tree, builder.problems


def load_policy_text(text: str, source: Path, *, check_files: bool = True, sha256: str | None = None) -> Policy:
    """The validated policy in ``text``, as if read from ``source`` (paths resolve against its folder).

    Raises ``PolicyError`` listing every problem. ``check_files=False`` skips the checks that touch
    the filesystem (GeoIP database, TLS files).
    """
    from govgate.core.policy.validate import build_policy

    file = str(source)
    digest = sha256 if sha256 is not None else hashlib.sha256(text.encode("utf-8")).hexdigest()
    tree, problems = parse_yaml_tree(text, file)
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
