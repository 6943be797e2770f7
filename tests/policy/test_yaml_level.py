"""YAML-level problems: syntax, duplicate keys, tags, alias bombs, encodings, missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from govgate.errors import PolicyError
from govgate.files import load_policy
from tests.policy.texts import BASE, line_of, load, problems, replace


def test_yaml_syntax_error_is_one_problem_with_its_line() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: [true\n")
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("policy.yaml:")
    assert "YAML syntax error" in found[0]
    line = int(found[0].split(":")[1])
    assert line >= line_of(text, "insecure: [true")


@pytest.mark.parametrize(("old", "new", "marker"), [
    # A key without its ":": PyYAML notices on the next line; the line to fix is the key's.
    ("  insecure: true\n", "  insecure\n", "insecure"),
    ("geoip:\n", "geoip\n", "geoip"),
    # A quote never closed: PyYAML notices at the end of the file; the line to fix is where it opened.
    ('  listen: "127.0.0.1:8443"\n', '  listen: "127.0.0.1:8443\n', "listen"),
    ("  public_hosts: [portal.example.gov.cn]\n", "  public_hosts: 'portal.example.gov.cn\n", "public_hosts"),
    # A bracket never closed: where it opened.
    ("  office: [10.0.0.0/8]\n", "  office: [10.0.0.0/8\n", "office"),
    ("  - {id: ls-phone, account: lisi, token: lisiEnrolmentTokenNumber02}\n",
     "  - {id: ls-phone, account: lisi, token: lisiEnrolmentTokenNumber02\n", "ls-phone"),
    # An indentation gone wrong: the line that is out of place, not the mapping's first line.
    ('  upstream: "http://127.0.0.1:8080"\n', ' upstream: "http://127.0.0.1:8080"\n', "upstream"),
    ('  upstream: "http://127.0.0.1:8080"\n', '  upstream: "http://127.0.0.1:8080" x\n', "upstream"),
])
def test_a_yaml_syntax_error_names_the_line_to_fix(old: str, new: str, marker: str) -> None:
    text = replace(BASE, old, new)
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"policy.yaml:{line_of(text, marker)}: YAML syntax error"), found[0]


def test_tab_indentation_is_a_syntax_error_on_its_line() -> None:
    text = replace(BASE, "  insecure: true", "\tinsecure: true")
    found = problems(text)
    assert found == [p for p in found if p.startswith(f"policy.yaml:{line_of(text, 'insecure')}: YAML")]
    assert found


def test_duplicate_key_is_an_error_naming_the_first_line() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  insecure: false\n")
    found = problems(text)
    assert found == [f"policy.yaml:{line_of(text, 'insecure: false')}: gateway.insecure: duplicate key 'insecure' "
                     f"(first at line {line_of(text, 'insecure: true')}); expected each key once"]


def test_duplicate_network_names_are_an_error() -> None:
    text = replace(BASE, "  office: [10.0.0.0/8]\n", "  office: [10.0.0.0/8]\n  office: [192.168.0.0/16]\n")
    assert any("duplicate key 'office'" in p and p.startswith(f"policy.yaml:{line_of(text, '192.168')}:")
               for p in problems(text))


def test_arbitrary_python_tags_are_refused_not_constructed() -> None:
    text = BASE + "login: {max_failures: !!python/object/apply:os.system [echo pwned]}\n"
    found = problems(text)
    assert any(p.startswith(f"policy.yaml:{line_of(text, 'python')}: login.max_failures: unsupported YAML tag")
               for p in found)


def test_local_tags_and_merge_keys_are_refused() -> None:
    text = BASE + "session: !custom {idle_timeout: 5m}\n"
    assert any("unsupported YAML tag '!custom'" in p for p in problems(text))
    text = BASE + "login: &l {max_failures: 5}\nsession: {<<: *l}\n"
    assert any("merge keys" in p for p in problems(text))


def test_alias_bomb_is_one_problem_not_a_hang() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    found = problems(bomb)
    assert any("more than" in p and "values" in p for p in found)


def test_recursive_alias_is_one_problem() -> None:
    assert problems("version: 1\nx: &a [*a]\n") == [
        "policy.yaml:2: an alias refers to a value that contains it; expected no recursive aliases"]


def test_deep_nesting_is_one_problem() -> None:
    found = problems("version: 1\nx: " + "[" * 100 + "]" * 100 + "\n")
    assert found == ["policy.yaml:2: values are nested more than 64 deep; expected a policy of ordinary shape"]


def test_a_large_but_ordinary_policy_loads() -> None:
    cidrs = "".join(f"    - 10.{i // 256}.{i % 256}.0/24\n" for i in range(10_000))
    text = BASE.replace("  office: [10.0.0.0/8]\n", "  office:\n" + cidrs)
    (office,) = load(text).networks
    assert len(office.cidrs) == 10_000


def test_empty_file_says_what_was_expected() -> None:
    assert problems("") == ["policy.yaml:1: the file is empty; expected a mapping starting with 'version: 1'"]
    assert problems("# only a comment\n") == [
        "policy.yaml:1: the file is empty; expected a mapping starting with 'version: 1'"]


def test_a_list_at_the_top_is_not_a_policy() -> None:
    found = problems("- version: 1\n")
    assert found[0].startswith("policy.yaml:1: expected a mapping with keys version, gateway")


def test_several_documents_are_a_syntax_error() -> None:
    found = problems(BASE + "---\nversion: 1\n")
    assert len(found) == 1
    assert "single document" in found[0]


def test_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(BASE.encode() + b"# \xff\xfe bad\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path, check_files=False)
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{path}:{BASE.count(chr(10)) + 1}: expected UTF-8 text")


def test_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'nope.yaml'}: cannot read the policy file")


def test_every_problem_is_listed_at_once_in_file_order() -> None:
    text = replace(BASE, '  listen: "127.0.0.1:8443"', '  listen: "127.0.0.1"')
    text = replace(text, "  office: [10.0.0.0/8]", "  office: [10.0.0.1/8]")
    text += "session: {idle_timout: 5m}\naudit: {retention_days: 30}\n"
    found = problems(text)
    assert len(found) == 4
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)
    assert [p.split(": ")[1] for p in found] == ["gateway.listen", "networks.office[0]", "session.idle_timout",
                                                 "audit.retention_days"]
