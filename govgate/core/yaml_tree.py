"""YAML text to a tree of plain nodes with line numbers: the one YAML reader of policy.yaml and the accounts file.

This module owns the YAML side of both files: syntax errors, duplicate keys, unsupported tags and
aliases that expand without bound. Nothing is constructed from arbitrary tags: PyYAML's composer
(SafeLoader) gives nodes, and only the plain scalar types (string, integer, float, boolean, null,
timestamp), mappings and sequences become ``YScalar``, ``YMap`` and ``YSeq``. Each scalar keeps its
original text, so ``home_countries: [NO]`` stays the country ``NO`` and is not the YAML 1.1 boolean
``false``. What the values mean is for each file's reader (``govgate.core.policy``,
``govgate.core.accounts``) to say.

``read_yaml_tree(text, file, document=...)`` never raises for a document it can read: the problems
it finds (located as ``file:line: key.path: message``) come back beside the tree. Text that is not
one YAML document at all raises ``YamlSyntaxError``; each reader words that in its own voice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import yaml

from govgate.errors import PolicyProblem

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

type ScalarValue = str | int | float | bool | date | datetime | None


@dataclass(frozen=True, slots=True)
class YScalar:
    """A scalar: ``value`` as YAML resolved it, ``text`` as written, ``kind`` one of _SCALAR_KINDS' values."""

    value: ScalarValue
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
type PlainValue = ScalarValue | list[PlainValue] | dict[str, PlainValue]


def plain_value(node: YNode) -> PlainValue:
    """The node as plain Python values (keys by their text), for messages that show what was found."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain_value(item) for item in node.items]
    return {key.text: plain_value(value) for key, value in node.items}


class YamlSyntaxError(ValueError):
    """The text is not one well-formed YAML document. ``line`` is 1-based (0: unknown); ``reason`` is
    the YAML parser's own account of what is wrong."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


class _TreeBuilder:
    """Nodes to the plain tree. An alias is converted once and shared; its expanded size still counts,
    so a "billion laughs" document is one problem instead of a hang in the reader."""

    def __init__(self, file: str, document: str) -> None:
        self.file = file
        self.document = document
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
            raise _TooBig(line, f"values are nested more than {MAX_DEPTH} deep; expected {self.document} of "
                                "ordinary shape")
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
                                f"expected {self.document} of ordinary size")
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
            # e.g. a timestamp like 2026-02-30: keep the text, the file's reader says what is wrong with it.
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


# Contexts naming a token or flow collection the parser was still inside when it gave up: the mistake is
# where that began (a key missing its ":", a quote or bracket never closed), while the problem mark is
# wherever reading stopped (the next line, or the end of the file).
_STARTED_AT_CONTEXT = ("while scanning", "while parsing a flow")


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    """The 1-based line an operator should look at (0: unknown).

    PyYAML gives two marks: ``problem_mark``, where it noticed, and ``context_mark``, where the construct it
    was reading began. For ``gateway`` without its ":" it notices at the next line; for an unclosed quote,
    at the end of the file. There the construct's start is the line to fix. For a block mapping or list
    whose indentation goes wrong, the problem mark is the offending line and the context only the
    mapping's first line — unless a quoted value ran on over lines into it: a quote left open on one line
    and closed by the next line's first quote reads as one value, and the text after it is what seems out
    of place; the line to fix is where that value began.
    """
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    if context is not None and str(getattr(exc, "context", "") or "").startswith(_STARTED_AT_CONTEXT):
        return int(context.line) + 1
    if problem is not None:
        opened = _quoted_value_running_into(text, int(problem.index))
        return (opened if opened is not None else int(problem.line)) + 1
    if context is not None:
        return int(context.line) + 1
    return 0


def _quoted_value_running_into(text: str, index: int) -> int | None:
    """The 0-based first line of a quoted scalar that spans lines and ends just before ``index``, if any."""
    last: yaml.Token | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= index:
                break
            last = token
    except yaml.YAMLError:
        pass  # the scan stops at the same error; the tokens before it are what we need
    if (isinstance(last, yaml.ScalarToken) and last.style in ("'", '"')
            and last.start_mark.line != last.end_mark.line):
        return int(last.start_mark.line)
    return None


def read_yaml_tree(text: str, file: str, *, document: str) -> tuple[YNode | None, list[PolicyProblem]]:
    """The tree of ``text`` (None for an empty document) and the YAML-level problems found in it
    (duplicate keys, tags, and — with no tree — sizes beyond the limits). ``file`` names the file in
    problems; ``document`` says what it should be ("a policy") in the limits' messages.

    Raises ``YamlSyntaxError`` when ``text`` is not one well-formed YAML document.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        parts = [p for p in (exc.context, exc.problem) if p]
        raise YamlSyntaxError(_yaml_error_line(exc, text), "; ".join(parts) if parts else "invalid YAML") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(_yaml_error_line(exc, text), str(exc)) from None
    except RecursionError:
        raise YamlSyntaxError(0, "nested too deeply to read") from None
    if node is None:
        return None, []
    builder = _TreeBuilder(file, document)
    try:
        tree = builder.build(node)
    except _TooBig as exc:
        return None, [*builder.problems, PolicyProblem(file, exc.line, "", exc.message)]
    return tree, builder.problems
