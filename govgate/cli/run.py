"""`govgate run [-p policy.yaml]`: start the gateway; refuse an invalid policy with every error listed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from govgate.errors import PolicyError


def quiet_mitmproxy(verbose: bool) -> None:
    # The gateway never prints per-request lines unless asked (`--verbose`).
    logging.getLogger("mitmproxy").setLevel(logging.DEBUG if verbose else logging.WARNING)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="start the gateway")
    p.add_argument("--verbose", action="store_true", help="log every connection and request (debugging only)")
    p.add_argument("--sample-upstream", action="store_true",
                   help="also start the built-in sample portal on the policy's upstream address (for trials)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from govgate.live_runtime import LiveRuntime
    from govgate.serve import serve

    quiet_mitmproxy(args.verbose)
    policy_path: Path = args.policy
    try:
        runtime = LiveRuntime.load(policy_path)
    except PolicyError as exc:
        print(f"govgate: {policy_path}: the policy is invalid; nothing was started:", file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 1
    confdir = runtime.policy.gateway.key_file.parent / "mitmproxy"

    async def main() -> None:
        portal = None
        if args.sample_upstream:
            from urllib.parse import urlsplit

            from govgate.sample_portal import start_sample_portal

            up = urlsplit(runtime.policy.gateway.upstream)
            portal = await start_sample_portal(up.hostname or "127.0.0.1", up.port or 80)
        try:
            await serve(runtime, confdir=confdir)
        finally:
            if portal is not None:
                portal.close()

    asyncio.run(main())
    return 0
