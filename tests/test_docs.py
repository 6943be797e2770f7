"""The documentation stands alone: every command and option is in docs/cli.md, every `docs/…` file the code and
the docs name exists, and nothing points outside the repository."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from govgate.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
CLI_DOC = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


COMMANDS = list(commands(build_parser()))


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_in_docs_cli(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    command = " ".join(path)
    assert f"govgate {command}" in CLI_DOC or f"`{command}" in CLI_DOC, f"docs/cli.md does not name {command!r}"
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"{option}" in CLI_DOC, f"docs/cli.md does not name {command} {option}"


def _texts() -> Iterator[tuple[Path, str]]:
    for pattern in ("README.md", "docs/*.md", "govgate/**/*.py", "scripts/*", "tests/**/*.py", "policy.yaml"):
        for path in sorted(REPO.glob(pattern)):
            if path.is_file() and path.suffix in ("", ".md", ".py", ".yaml"):
                yield path, path.read_text(encoding="utf-8", errors="replace")


def test_every_docs_file_named_exists() -> None:
    missing = sorted({f"{path.relative_to(REPO)}: {name}" for path, text in _texts()
                      for name in re.findall(r"docs/[\w./-]+\.(?:md|json|png)", text)
                      if not (REPO / name).exists()})
    assert missing == []


def test_nothing_points_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|CONTRACT\.md|contract §|/work/")
    found = sorted(f"{path.relative_to(REPO)}: {m.group()}" for path, text in _texts()
                   if path.name != "test_docs.py" for m in outside.finditer(text))
    assert found == []


def test_the_readme_opens_with_what_it_does_a_screenshot_and_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_screen = readme[:readme.index("## ", readme.index("## ") + 1)]  # up to the second section
    assert re.search(r"!\[[^\]]+\]\(docs/screenshots/[\w-]+\.png\)", first_screen)
    assert readme.index("scripts/setup && .venv/bin/govgate demo") < readme.index("scripts/test")
