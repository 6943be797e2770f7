"""`govgate audit verify | backup | show`: check, copy and read the tamper-evident log (Art. 20).

Art. 20 (第二十条): access logs kept at least one year, backed up, integrity assured.

- ``verify [--dir D]``: exit 0 printing the record count and time range; exit 1 printing the first
  broken record as ``file:line: what``.
- ``backup DEST [--dir D]``: copy closed files and the current one up to a consistent point into
  the folder DEST, verify the copy; safe from cron while the gateway writes.
- ``show [--account A] [--client IP|CIDR] [--decision D] [--event E] [--since T] [--until T] [--json]``.

``--dir`` defaults to the policy's ``audit.dir``. With ``--key-file`` (and ``--dir``) no policy is
needed, for an auditor checking a backup on another machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from govgate.audit.backup import backup_dir
from govgate.audit.show import RecordFilter, find_records, format_row, parse_client, parse_time
from govgate.audit.verify import verify_dir
from govgate.core.audit_chain import VerifyReport
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken
from govgate.files import load_key_file, load_policy


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", parents=[common], help="verify, back up or read the audit log (Art. 20)")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    def with_source(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dir", type=Path, help="audit directory (default: the policy's audit.dir)")
        parser.add_argument("--key-file", type=Path, help="gateway key file (default: the policy's gateway.key_file)")

    verify = commands.add_parser(
        "verify", parents=[common], help="check every record and the links between files; exit 1 on tamper"
    )
    with_source(verify)
    verify.set_defaults(func=run_verify)

    backup = commands.add_parser("backup", parents=[common], help="copy the log into the folder DEST and verify it")
    backup.add_argument("dest", type=Path, metavar="DEST")
    with_source(backup)
    backup.set_defaults(func=run_backup)

    show = commands.add_parser("show", parents=[common], help="print records matching filters")
    with_source(show)
    show.add_argument("--account", help="account name")
    show.add_argument("--client", type=_client_arg, help="client address or CIDR")
    show.add_argument("--decision", help="allow, refuse, ...")
    show.add_argument("--event", help="event type; a prefix with a trailing '*' (login*)")
    show.add_argument("--since", help="ISO time (gateway.timezone without an offset)")
    show.add_argument("--until", help="ISO time (gateway.timezone without an offset)")
    show.add_argument("--json", action="store_true", help="print the records as JSON Lines")
    show.set_defaults(func=run_show)


def _client_arg(text: str) -> object:
    try:
        return parse_client(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address or CIDR: {text!r}") from None


@dataclass(frozen=True, slots=True)
class _Source:
    directory: Path
    keys: GatewayKeys
    algorithm: AuditAlgorithm | None
    tz: ZoneInfo


def _source(args: argparse.Namespace) -> _Source:
    directory: Path | None = args.dir
    key_file: Path | None = args.key_file
    if directory is not None and key_file is not None:
        return _Source(directory, load_key_file(key_file, create=False), None, ZoneInfo("Asia/Shanghai"))
    policy = load_policy(args.policy, check_files=False)
    keys = load_key_file(key_file or policy.gateway.key_file, create=False)
    return _Source(directory or policy.audit.dir, keys, policy.audit.algorithm, policy.gateway.timezone)


def _describe(report: VerifyReport) -> str:
    if report.count == 0:
        return "no records"
    span = f"{report.first_time.isoformat() if report.first_time else '?'} – "
    span += report.last_time.isoformat() if report.last_time else "?"
    files = f"{report.files} file{'s' if report.files != 1 else ''}"
    return f"{report.count} records in {files}, {span} (seq {report.first_seq}–{report.last_seq})"


def _broken(directory: Path, exc: AuditChainBroken) -> int:
    print(f"{directory / exc.file}:{exc.line}: {exc.what}")
    print("govgate: the audit log has been tampered with (first broken record above)", file=sys.stderr)
    return 1


def run_verify(args: argparse.Namespace) -> int:
    src = _source(args)
    try:
        report = verify_dir(src.directory, src.keys, src.algorithm)
    except AuditChainBroken as exc:
        return _broken(src.directory, exc)
    print(f"OK {src.directory}: {_describe(report)}")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    src = _source(args)
    dest: Path = args.dest
    try:
        report = backup_dir(src.directory, dest, src.keys, src.algorithm)
    except AuditChainBroken as exc:
        return _broken(dest, exc)
    print(f"backed up to {dest} and verified: {_describe(report)}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    src = _source(args)
    try:
        since = parse_time(args.since, src.tz) if args.since else None
        until = parse_time(args.until, src.tz) if args.until else None
    except ValueError as exc:
        print(f"govgate audit show: bad time: {exc}", file=sys.stderr)
        return 2
    flt = RecordFilter(
        account=args.account,
        client=args.client,
        decision=args.decision,
        event=args.event,
        since=since,
        until=until,
    )
    for name, lineno, record in find_records(src.directory, flt, src.tz):
        try:
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) if args.json else format_row(record)
        except (ValueError, RecursionError):
            # An edited line `show` cannot render (it does not check the chain; `verify` names it).
            print(f"{src.directory / name}:{lineno}: unreadable record (see govgate audit verify)", file=sys.stderr)
            continue
        # Lone surrogates (from "\ud800" escapes in an edited line) cannot be printed as UTF-8: escape them.
        print(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    return 0
