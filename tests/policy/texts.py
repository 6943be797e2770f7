"""Policy texts and helpers shared by the policy tests: load from a string, find a line, list problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from govgate.core.policy.model import Policy
from govgate.errors import PolicyError
from govgate.files import load_policy

REPO = Path(__file__).resolve().parents[2]
GEOIP_DB = REPO / "geoip" / "GeoLite2-Country-Test.mmdb"
INVALID_DB = REPO / "tests" / "data" / "geoip" / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"
SOURCE = Path("policy.yaml")

# A small valid policy. Tests replace or append pieces and look the expected line up by its text.
BASE = """\
version: 1
gateway:
  listen: "127.0.0.1:8443"
  upstream: "http://127.0.0.1:8080"
  public_hosts: [portal.example.gov.cn]
  insecure: true
geoip:
  database: geoip/GeoLite2-Country-Test.mmdb
networks:
  office: [10.0.0.0/8]
devices:
  - {id: zs-laptop, account: zhangsan, token: zhangsanEnrolmentToken0001}
  - {id: ls-phone, account: lisi, token: lisiEnrolmentTokenNumber02}
access:
  - {name: public, paths: ["/"], allow: public}
  - {name: oa, paths: ["/oa/**"], allow: staff, networks: [office]}
"""


def load(text: str, *, check_files: bool = False, source: Path = SOURCE) -> Policy:
    return load_policy(source, data=text.encode("utf-8"), check_files=check_files)


def problems(text: str, *, check_files: bool = False, source: Path = SOURCE) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load(text, check_files=check_files, source=source)
    return [str(p) for p in info.value.problems]


def line_of(text: str, marker: str, nth: int = 0) -> int:
    """1-based line of the ``nth`` line containing ``marker``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if marker in line]
    assert len(hits) > nth, f"{marker!r} not in the text"
    return hits[nth]


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the text"
    return text.replace(old, new, 1)


def expect_problem(text: str, marker: str, key_path: str, *fragments: str, check_files: bool = False,
                   source: Path = SOURCE, file: str = "policy.yaml") -> str:
    """Assert one problem reads ``file:LINE: key_path: …`` (LINE: where ``marker`` is) and contains the
    fragments; return it."""
    found = problems(text, check_files=check_files, source=source)
    prefix = f"{file}:{line_of(text, marker)}: {key_path}: " if marker else f"{file}:"
    matching = [p for p in found if p.startswith(prefix)]
    assert matching, f"no problem starting with {prefix!r} in {found}"
    for problem in matching:
        if all(f in problem for f in fragments):
            return problem
    raise AssertionError(f"no problem {prefix!r} containing {fragments} in {matching}")
