"""Argument parsing for `govgate`: each sub-command lives in its own module with ``add_parser``.

Every command accepts ``-p/--policy`` (default ``./policy.yaml``). Exit codes: 0 success, 1 the
thing checked is wrong (invalid policy, broken audit chain), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from govgate.errors import GovGateError
from govgate.log_lines import configure_logging

# Each module defines `add_parser(sub, common)`; the parser it adds sets `func(args) -> int`.
COMMAND_MODULES = ("run", "check", "explain", "demo", "account", "device", "schema", "audit")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-p", "--policy", type=Path, default=argparse.SUPPRESS, help="policy file (default: ./policy.yaml)"
    )
    parser = argparse.ArgumentParser(
        prog="govgate",
        description="GovGate: access-control gateway for government staff portals (互联网政务应用安全管理规定).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"govgate.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"govgate.cli.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub, common)
    return parser


def run_cli(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    if not hasattr(args, "policy"):
        args.policy = Path("policy.yaml")
    configure_logging(logging.INFO)  # times with their offset, in gateway.timezone once a policy is loaded
    try:
        code: int = args.func(args)
    except GovGateError as exc:
        print(f"govgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`govgate account add ... | head -1`): the work is done, say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141
    return code
