"""The JSON Schema and the validator agree: every key the validator accepts is in the schema, and back."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

import pytest
import yaml

from govgate.core.policy import schema as table
from govgate.core.policy.schema import policy_json_schema
from tests.policy.test_valid_policies import FULL
from tests.policy.texts import BASE, load, problems


def json_of_yaml(text: str) -> Any:
    """What an editor plugin sees: the YAML as JSON (dates as ISO strings)."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, datetime | date):
            return v.isoformat()
        return v
    return plain(yaml.safe_load(text))


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """A small JSON Schema checker for the keywords our schema uses (no extra package needed)."""
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [*errors, f"{path}: not an integer"]
        if value < schema.get("minimum", value):
            errors.append(f"{path}: below minimum")
    elif kind is not None and not isinstance(value, checks[kind]):
        return [*errors, f"{path}: not {kind}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, str) and value == "" and schema.get("minLength"):
        errors.append(f"{path}: empty")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        for name, item in value.items():
            if name in props:
                errors += schema_errors(item, props[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{name}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                if "propertyNames" in schema and not re.search(schema["propertyNames"]["pattern"], name):
                    errors.append(f"{path}.{name}: bad name")
                errors += schema_errors(item, schema["additionalProperties"], f"{path}.{name}")
    return errors


def keys_used(value: Any, obj: table.Obj | table.MapOf | table.ListOf | Any, path: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(obj, table.ListOf) and isinstance(value, list):
        for item in value:
            out |= keys_used(item, obj.item, path + "[]")
    elif isinstance(obj, table.Obj) and isinstance(value, dict):
        for name, item in value.items():
            out.add(f"{path}.{name}")
            out |= keys_used(item, obj.key(name).value, f"{path}.{name}")
    return out


def all_keys(obj: table.Obj | Any, path: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(obj, table.ListOf):
        return all_keys(obj.item, path + "[]")
    if isinstance(obj, table.Obj):
        for key in obj.keys:
            out.add(f"{path}.{key.name}")
            out |= all_keys(key.value, f"{path}.{key.name}")
    return out


def test_schema_is_json_with_draft_2020_12_and_descriptions() -> None:
    schema = policy_json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict) and node.get("type") == "object" and "properties" in node:
            assert node["additionalProperties"] is False, where
            for name, prop in node["properties"].items():
                assert prop.get("description"), f"{where}.{name} has no description"
                walk(prop, f"{where}.{name}")
        if isinstance(node, dict) and isinstance(node.get("items"), dict):
            walk(node["items"], where + "[]")
    walk(schema, "")


def test_the_full_policy_uses_every_key_of_the_table_and_loads() -> None:
    assert keys_used(json_of_yaml(FULL), table.POLICY) == all_keys(table.POLICY)
    load(FULL)  # so the validator accepts every key the schema names


def test_valid_policies_satisfy_the_schema() -> None:
    schema = policy_json_schema()
    assert schema_errors(json_of_yaml(FULL), schema) == []
    assert schema_errors(json_of_yaml(BASE), schema) == []


@pytest.mark.parametrize("section", ["", "gateway", "gateway.tls", "state", "geoip", "login", "session",
                                     "outbound", "audit", "metrics", "overseas", "devices[0]", "access[0]",
                                     "overseas.grants[0]"])
def test_a_key_missing_from_the_schema_is_refused_by_the_validator_and_the_schema(section: str) -> None:
    data = json_of_yaml(FULL)
    node = data
    for part in filter(None, re.split(r"\.|\[(\d+)\]", section)):
        node = node[int(part)] if part.isdigit() else node[part]
    node["surprise"] = 1
    text = yaml.safe_dump(data, allow_unicode=True)
    assert any(p.split(": ")[1] == (f"{section}.surprise" if section else "surprise") and "unknown key" in p
               for p in problems(text))
    assert any(e.endswith(".surprise: not allowed") for e in schema_errors(data, policy_json_schema()))


def test_allowed_keys_of_every_section_equal_the_schema_properties() -> None:
    schema = policy_json_schema()
    props: Any = schema["properties"]
    for key in table.POLICY.keys:
        if isinstance(key.value, table.Obj):
            assert list(props[key.name]["properties"]) == list(key.value.names())
    assert list(props["access"]["items"]["properties"]) == list(table.RULE.names())
    assert list(props["overseas"]["properties"]["grants"]["items"]["properties"]) == list(table.GRANT.names())


def test_docs_describe_every_key_of_the_table() -> None:
    from tests.policy.texts import REPO

    doc = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    missing = [path for path in sorted(all_keys(table.POLICY))
               if f"`{path.rsplit('.', 1)[-1]}`" not in doc and f".{path.rsplit('.', 1)[-1]}`" not in doc]
    assert missing == []


# -- the schema file shipped for editors, checked by a real JSON Schema validator ---------------------

def _repo() -> Any:
    from tests.policy.texts import REPO

    return REPO


def _validator() -> Any:
    import jsonschema

    schema = json.loads((_repo() / "docs" / "policy.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_shipped_schema_file_is_what_govgate_schema_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from govgate.cli.main import run_cli

    assert run_cli(["schema"]) == 0
    printed = capsys.readouterr().out
    shipped = (_repo() / "docs" / "policy.schema.json").read_text(encoding="utf-8")
    assert shipped == printed, "regenerate it: .venv/bin/govgate schema > docs/policy.schema.json"


def test_the_sample_policy_names_the_schema_for_editors() -> None:
    sample = (_repo() / "policy.yaml").read_text(encoding="utf-8")
    first = sample.splitlines()[0]
    assert first == "# yaml-language-server: $schema=docs/policy.schema.json"
    assert (_repo() / "docs" / "policy.schema.json").is_file()  # relative to the sample's folder


@pytest.mark.parametrize("name", ["the shipped sample", "the full test policy"])
def test_a_policy_loaded_by_pyyaml_satisfies_the_schema(name: str) -> None:
    # What a CI script does: yaml.safe_load (YAML 1.1: unquoted dates become date objects), then validate.
    text = (_repo() / "policy.yaml").read_text(encoding="utf-8") if name == "the shipped sample" else FULL
    data = yaml.safe_load(text)
    assert any(isinstance(v, date) for v in _leaves(data)), "the test needs an unquoted date"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(data)]
    assert errors == []


def test_the_same_policy_as_an_editor_sees_it_satisfies_the_schema() -> None:
    # YAML 1.2 (editors): the dates are strings.
    for text in ((_repo() / "policy.yaml").read_text(encoding="utf-8"), FULL):
        assert [e.message for e in _validator().iter_errors(json_of_yaml(text))] == []


@pytest.mark.parametrize(("where", "value"), [
    (("overseas", "grants", 0, "until"), 5),
    (("overseas", "grants", 0, "until"), "next week"),
    (("overseas", "grants", 0, "from"), ["2026-12-01"]),
    (("devices", 0, "expires"), "2027-6-30x"),
    (("devices", 0, "expires"), True),
])
def test_dates_of_the_wrong_shape_are_refused_by_the_schema(where: tuple[str | int, ...], value: object) -> None:
    data = yaml.safe_load(FULL)
    node = data
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    assert [list(e.absolute_path) for e in _validator().iter_errors(data)] == [list(where)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_the_complete_example_in_docs_policy_loads_and_satisfies_the_schema() -> None:
    doc = (_repo() / "docs" / "policy.md").read_text(encoding="utf-8")
    section = doc[doc.index("## A complete example"):]
    text = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    policy = load(text)
    assert [rule.name for rule in policy.access] == ["public site", "finance", "office system", "the rest"]
    assert keys_used(json_of_yaml(text), table.POLICY) >= {f".{k.name}" for k in table.POLICY.keys}  # every section
    assert [e.message for e in _validator().iter_errors(yaml.safe_load(text))] == []
    assert [e.message for e in _validator().iter_errors(json_of_yaml(text))] == []
