"""`govgate schema`: print the JSON Schema (draft 2020-12) of policy.yaml, for editors and CI."""

from __future__ import annotations

import argparse
import json

from govgate.core.policy.schema import policy_json_schema


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("schema", parents=[common], help="print the JSON Schema of policy.yaml")
    p.set_defaults(func=print_schema)


def print_schema(args: argparse.Namespace) -> int:
    print(json.dumps(policy_json_schema(), indent=2, ensure_ascii=False))
    return 0
