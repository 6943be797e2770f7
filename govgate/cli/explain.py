"""`govgate explain`: dry-run one request through the policy and show every check that decided it.

    govgate explain -p policy.yaml --ip 81.2.69.142 --account zhangsan --path /oa/ [--json]

``--account A`` means "a valid session for A exists": its groups, disabled flag and expiry come from
the accounts file when there is one (``--groups a,b`` overrides the groups, or stands in for an
account the file does not hold yet). ``--device D`` is an allowlisted device id, as if its client
certificate or enrolment cookie had been presented. The country comes from the policy's GeoIP
database (``--country`` overrides it). Exit 0 whatever the decision, 2 on bad arguments (bad address,
bad time, unknown device or account), 1 when the policy is invalid.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from govgate.accounts_file import load_accounts
from govgate.core.accounts import Account
from govgate.core.decide import AccountFacts, Decision, RequestFacts, compile_policy, decide, whereabouts
from govgate.core.devices import device_expired
from govgate.core.grants import grant_shortfalls
from govgate.core.hosts import split_host_port
from govgate.core.networks import unmapped
from govgate.core.policy.model import Allow, IPAddress, Policy
from govgate.core.wall_time import wall_time
from govgate.errors import GovGateError, PolicyError
from govgate.files import open_country_lookup

GRANTS_SHOWN = 20  # in the text output; --json lists every grant


class BadArgument(Exception):
    """A command-line value explain cannot use (exit 2)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("explain", parents=[common], help="dry-run one request through the policy",
                       description="Dry-run one request: the decision, the matching rule and every check.")
    p.add_argument("--ip", required=True, help="client address (IPv4 or IPv6)")
    p.add_argument("--account", help="a valid session for this account exists")
    p.add_argument("--groups", help="the account's groups, comma-separated (overrides the accounts file)")
    p.add_argument("--device", help="an allowlisted device id the request comes from")
    p.add_argument("--host", help="Host header (default: the first gateway.public_hosts name)")
    p.add_argument("--path", default="/", help="request path, query allowed (default: /)")
    p.add_argument("--method", default="GET", help="request method (default: GET)")
    p.add_argument("--at", help="time of the request, ISO 8601 (default: now); without offset: gateway.timezone")
    p.add_argument("--country", help="override the GeoIP country (ISO code, or 'none' for unknown)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=explain)


def parse_ip(text: str) -> IPAddress:
    try:
        return unmapped(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise BadArgument(f"--ip: not an IP address: {text!r}") from None


def parse_at(text: str | None, policy: Policy) -> datetime:
    tz = policy.gateway.timezone
    if text is None:
        return wall_time(datetime.now(tz), tz)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadArgument(f"--at: not an ISO 8601 time: {text!r} (e.g. 2026-12-05T10:00)") from None
    # As the gateway's clock reads it (govgate.core.wall_time): a time without an offset is on the zone's wall clock.
    return wall_time(value.replace(tzinfo=tz) if value.tzinfo is None else value, tz)


def _accounts_record(policy: Policy, name: str) -> tuple[bool, Account | None]:
    """(an accounts file exists, its record for ``name`` or None)."""
    if not policy.accounts_file.exists():
        return False, None
    return True, load_accounts(policy.accounts_file).get(name)


def account_facts(args: argparse.Namespace, policy: Policy,
                  owned: frozenset[str]) -> tuple[AccountFacts | None, str | None]:
    """The account's facts, and — when they do not come from the accounts file — why not (for the report)."""
    if not args.account:
        if args.groups:
            raise BadArgument("--groups needs --account")
        return None, None
    name = args.account.strip()
    groups = frozenset(g.strip() for g in args.groups.split(",") if g.strip()) if args.groups else None
    have_file, record = _accounts_record(policy, name)
    if record is None:
        if have_file and groups is None:
            raise BadArgument(f"--account: unknown account {name!r} in {policy.accounts_file} "
                              "(give --groups to explain it anyway)")
        # Nothing says whether such an account is enabled, expired or exists at all: say so, never "enabled".
        unknown = (f"there is no accounts file ({policy.accounts_file})" if not have_file
                   else f"{policy.accounts_file} has no account {name!r}")
        facts = AccountFacts(name=name, groups=groups or frozenset(), disabled=False, expires=None,
                             locked_until=None, devices=owned)
        return facts, unknown
    return AccountFacts(
        name=name,
        groups=groups if groups is not None else frozenset(record.groups),
        disabled=record.disabled,
        expires=record.expires,
        locked_until=None,  # lockouts live in the state store, not in the policy or accounts file
        devices=owned,
    ), None


def _country(args: argparse.Namespace, policy: Policy, ip: IPAddress) -> str | None:
    if args.country is not None:
        code: str = str(args.country).strip().upper()
        if code in ("", "NONE", "-"):
            return None
        if len(code) != 2 or not code.isalpha():
            raise BadArgument(f"--country: not an ISO 3166-1 alpha-2 code: {args.country!r}")
        return code
    lookup = open_country_lookup(policy.geoip.database)
    try:
        found: str | None = lookup.country(ip)
        return found
    finally:
        lookup.close()


def _in_prefix(path: str, prefix: str) -> bool:
    bare = path.split("?", 1)[0]
    return bare == prefix or bare.startswith(prefix + "/")


def explain(args: argparse.Namespace) -> int:
    from govgate.files import load_policy

    policy_path: Path = args.policy
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        print(f"govgate: {policy_path}: the policy is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 1
    try:
        report = build_report(args, policy)
    except BadArgument as exc:
        print(f"govgate explain: {exc}", file=sys.stderr)
        return 2
    except GovGateError as exc:  # the GeoIP database or accounts file cannot be read
        print(f"govgate explain: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(render_text(report))
    return 0


def build_report(args: argparse.Namespace, policy: Policy) -> dict[str, Any]:
    compiled = compile_policy(policy)
    ip = parse_ip(args.ip)
    now = parse_at(args.at, policy)
    method = args.method.strip().upper()
    if not method.isalpha():
        raise BadArgument(f"--method: not an HTTP method: {args.method!r}")
    path = args.path if args.path.startswith("/") else "/" + args.path
    host = (args.host or (policy.gateway.public_hosts[0] if policy.gateway.public_hosts else "")).strip()
    if host and split_host_port(host) is None:
        raise BadArgument(f"--host: not a host name or IP literal with an optional :port: {args.host!r} "
                          "(the gateway answers such a Host with 400)")

    device_id: str | None = None
    notes: list[str] = []
    if args.device:
        device = compiled.devices.by_id(args.device.strip())
        if device is None:
            raise BadArgument(f"--device: unknown device {args.device!r} (not in the policy's devices)")
        if device_expired(device, now):
            notes.append(f"device '{device.id}' expired on {device.expires}: it is not recognised")
        else:
            device_id = device.id
    owned = compiled.devices.owned_by(args.account.strip()) if args.account else frozenset()
    account, account_unknown = account_facts(args, policy, owned)
    if account is not None and account_unknown is not None:
        notes.append(f"account '{account.name}': {account_unknown}, so whether it exists, is enabled or has "
                     f"expired is not known; explained as an enabled account with the groups given "
                     f"({', '.join(sorted(account.groups)) or 'none'})")
    country = _country(args, policy, ip)

    request = {"client": str(ip), "country": country, "host": host, "method": method, "path": path,
               "device": device_id, "account": account.name if account else None,
               "groups": sorted(account.groups) if account else None, "at": now.isoformat()}
    base: dict[str, Any] = {"policy": str(policy.source), "request": request, "notes": notes}
    if _in_prefix(path, policy.gateway.prefix):
        return {**base, "decision": "gate-page", "allowed": True, "status": 200, "reason": None, "article": None,
                "rule": None, "grant": None, "checks": [{"name": "prefix", "passed": True,
                                           "detail": f"{path} is one of the gate's own pages "
                                                     f"(under {policy.gateway.prefix}): served to every client"}]}
    facts = RequestFacts(client=ip, country=country, host=host, path=path, method=method, device=device_id,
                         account=account)
    decision = decide(facts, compiled, now)
    report = {**base, **decision_dict(decision, policy)}
    if account is not None and account_unknown is not None:
        for check in report["checks"]:
            if check["name"] == "account" and check["passed"]:
                check["detail"] = (f"account '{account.name}': not known ({account_unknown}); "
                                   "taken as enabled for this explanation")
    overseas, _where = whereabouts(ip, country.upper() if country else None, compiled)
    if overseas and decision.rule is not None and decision.rule.allow is Allow.STAFF:
        # Art. 19: from abroad a grant is the way in; say, for each grant, which of its conditions failed.
        report["grants_checked"] = [
            {"index": g.index, "line": g.line, "reason": g.reason,
             "failed": grant_shortfalls(g, account.name if account else None, device_id, country, now,
                                        policy.gateway.timezone, before_login=account is None)}
            for g in compiled.grants.grants]
    return report


def decision_dict(decision: Decision, policy: Policy) -> dict[str, Any]:
    rule = decision.rule
    grant = decision.grant
    return {
        "decision": decision.outcome.value,
        "allowed": decision.allowed,
        "status": decision.status,
        "reason": decision.reason.value if decision.reason else None,
        "article": decision.article,
        "rule": None if rule is None else {"name": rule.name, "index": rule.index, "line": rule.line,
                                           "allow": rule.allow.value, "file": str(policy.source)},
        "grant": None if grant is None else {"index": grant.index, "line": grant.line, "reason": grant.reason,
                                             "from": grant.start.isoformat(), "until": grant.end.isoformat()},
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in decision.checks],
    }


def render_text(report: dict[str, Any]) -> str:
    req = report["request"]
    headline = {"forward": "FORWARD to the portal", "refuse": "REFUSE (403)", "login": "LOGIN (303 to the login page)",
                "gate-page": "GATE PAGE (served by the gate)"}[report["decision"]]
    if report["reason"]:
        headline += f"  reason: {report['reason']}"
    if report["article"]:
        headline += f"  [{report['article']}]"
    lines = [f"decision: {headline}"]
    lines.append(f"request:  {req['method']} {req['host']}{req['path']}  from {req['client']} "
                 f"(country: {req['country'] or 'unknown'})  at {req['at']}")
    if req["account"]:
        lines.append(f"account:  {req['account']} (groups: {', '.join(req['groups']) or 'none'})")
    else:
        lines.append("account:  none (no session)")
    lines.append(f"device:   {req['device'] or 'none'}")
    rule = report["rule"]
    if rule:
        where = f"{rule['file']}:{rule['line']}"
        lines.append(f"rule:     #{rule['index']} '{rule['name']}' ({where}): allow {rule['allow']}")
    else:
        lines.append("rule:     none")
    lines.append("checks:")
    width = max((len(c["name"]) for c in report["checks"]), default=0)
    for c in report["checks"]:
        mark = "✓" if c["passed"] else "✗"
        lines.append(f"  {mark} {c['name']:<{width}}  {c['detail']}")
    grants = report.get("grants_checked")
    if grants is not None:
        lines.append("grants:" if grants else "grants:   none in the policy (from abroad only a grant lets staff in)")
        for g in grants[:GRANTS_SHOWN]:
            head = f"  #{g['index']} (line {g['line']}, {g['reason']})"
            if not g["failed"]:
                lines.append(f"  ✓ {head.strip()}: admits this request")
            for failed in g["failed"]:
                lines.append(f"  ✗ {head.strip()}: {failed}")
        if len(grants) > GRANTS_SHOWN:
            lines.append(f"  … {len(grants) - GRANTS_SHOWN} more grants (--json lists them all)")
    lines.extend(f"note:     {n}" for n in report["notes"])
    return "\n".join(lines)
