"""`govgate run [-p policy.yaml] [--workers N|auto]`: start the gateway; refuse an invalid policy with every error
listed. With ``--workers`` above 1 this process becomes the parent of N gateway processes (``govgate/workers.py``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from govgate.core.durations import parse_duration
from govgate.errors import PolicyError
from govgate.workers import START_TIMEOUT, parse_workers


def quiet_mitmproxy(verbose: bool) -> None:
    # The gateway never prints per-request lines unless asked (`--verbose`).
    logging.getLogger("mitmproxy").setLevel(logging.DEBUG if verbose else logging.WARNING)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="start the gateway")
    p.add_argument("--verbose", action="store_true", help="log every connection and request (debugging only)")
    p.add_argument("--sample-upstream", action="store_true",
                   help="also start the built-in sample portal on the policy's upstream address (for trials)")
    p.add_argument("--workers", type=parse_workers, default=1, metavar="N|auto",
                   help="gateway processes sharing the listen address (auto: one per CPU; default 1). "
                        "More than one needs state.redis")
    p.add_argument("--worker-start-timeout", type=_start_timeout, default=START_TIMEOUT, metavar="DURATION",
                   help="with --workers: how long a worker may take to listen before it is killed "
                        "(its stacks printed first; default 60s)")
    p.set_defaults(func=run)


def _start_timeout(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _invalid(policy_path: Path, exc: PolicyError) -> int:
    print(f"govgate: {policy_path}: the policy is invalid; nothing was started:", file=sys.stderr)
    for problem in exc.problems:
        print(str(problem), file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from govgate.workers import become_worker, current_worker

    role = current_worker()
    if args.workers > 1 and role is None:
        return run_workers(args)
    if role is not None:
        become_worker(role)
    from govgate.live_runtime import LiveRuntime
    from govgate.serve import serve

    quiet_mitmproxy(args.verbose)
    policy_path: Path = args.policy
    try:
        runtime = LiveRuntime.load(policy_path)
    except PolicyError as exc:
        return _invalid(policy_path, exc)
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


def run_workers(args: argparse.Namespace) -> int:
    """The parent of ``args.workers`` gateway processes: checks what they need, reserves their addresses,
    starts them and keeps them running (``govgate/workers.py``; ``docs/operations.md``)."""
    from govgate.files import load_policy
    from govgate.workers import STOP_MARGIN_SECONDS, Supervisor, reserve_address

    policy_path: Path = args.policy
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        return _invalid(policy_path, exc)
    if not policy.state.redis_url:
        # Locks, sessions and used TOTP codes (Art. 30) must be seen by every process: docs/state.md.
        print(f"govgate: --workers {args.workers} needs the shared store: set state.redis in {policy_path} "
              "(the in-process memory store cannot be shared between processes); nothing was started",
              file=sys.stderr)
        return 2
    gw = policy.gateway
    wanted = [("listen", gw.listen), ("redirect", gw.redirect_listen), ("metrics", policy.metrics.listen)]
    reserved = []
    try:
        for name, address in wanted:
            if address is not None:
                reserved.append((name, reserve_address(address.host, address.port)))
    except OSError as exc:
        for _, sock in reserved:
            sock.close()
        print(f"govgate: cannot listen on {address}: {exc.strerror or exc}; nothing was started", file=sys.stderr)
        return 1
    from govgate.live_runtime import keep_policy

    keep_policy(policy, None)  # Art. 20: kept once here, before N workers would all write the same text
    command = [sys.executable, "-m", "govgate", "run", "-p", str(policy_path)]
    if args.verbose:
        command.append("--verbose")
    supervisor = Supervisor(command, args.workers, upstream=gw.upstream,
                            stop_timeout=gw.drain_timeout.total_seconds() + STOP_MARGIN_SECONDS,
                            ports=[(name, sock.getsockname()[1]) for name, sock in reserved],
                            start_timeout=args.worker_start_timeout)

    async def main() -> int:
        portal = None
        if args.sample_upstream:
            from urllib.parse import urlsplit

            from govgate.sample_portal import start_sample_portal

            up = urlsplit(gw.upstream)
            portal = await start_sample_portal(up.hostname or "127.0.0.1", up.port or 80)
        try:
            return await supervisor.run()
        finally:
            if portal is not None:
                portal.close()

    try:
        return asyncio.run(main())
    finally:
        for _, sock in reserved:
            sock.close()
