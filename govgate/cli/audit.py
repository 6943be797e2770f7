"""`govgate audit verify | backup | export-key | show | policy | report`: check, copy, hand over and read the
tamper-evident log (Art. 20), and answer an auditor's questions from it.

Art. 20 (第二十条): access logs kept at least one year, backed up, integrity assured.

- ``verify``: exit 0 printing the record count and time range; exit 1 printing the first broken record as
  ``file:line: what``.
- ``backup DEST``: copy the log (and the kept policy texts) up to a consistent point into the folder DEST,
  verify the copy; safe from cron while the gateway writes.
- ``export-key FILE``: the public key that checks the log (for an auditor), mode 0644, never over a file.
- ``show``: the records matching filters (AND; several ``--event`` are OR), checked as they are read.
- ``policy --at TIME``: the exact policy text in force then, and its SHA-256.
- ``report``: the evidence per article over a period, as a self-contained HTML page or a text summary.

``--dir`` defaults to the policy's ``audit.dir`` and ``--key-file`` to its ``gateway.key_file``; with both
no policy is needed (an auditor with a copy of the log and the exported key). Exit codes: 0 done, 1 the
log does not verify (or ``--strict`` refused it), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from govgate.audit.backup import backup_dir
from govgate.audit.history import PolicyTexts, scan_log
from govgate.audit.key_file import export_key, load_audit_key
from govgate.audit.progress import on_terminal, progress_bar
from govgate.audit.show import (
    CsvRows,
    Format,
    Shown,
    ShowResult,
    Table,
    find_records,
    format_row,
    json_line,
    printable,
    problems_summary,
)
from govgate.audit.verify import log_size, verify_dir
from govgate.core.audit_chain import VerifyReport
from govgate.core.audit_keys import AuditKey, verify_key_of
from govgate.core.audit_query import GrantFilter, RecordFilter, parse_client, parse_when
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.errors import AuditChainBroken, GovGateError
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

    export = commands.add_parser(
        "export-key", parents=[common],
        help="write the public key that checks the log (for an auditor; it cannot sign, decrypt or write records)")
    export.add_argument("file", type=Path, metavar="FILE")
    export.set_defaults(func=run_export_key)

    show = commands.add_parser(
        "show", parents=[common],
        help="print the records matching filters (AND; several --event are OR), checked as they are read")
    with_source(show)
    show.add_argument("--since", metavar="7d|ISO", help="from this time (a duration: that long ago; ISO without an "
                                                        "offset: gateway.timezone)")
    show.add_argument("--until", metavar="ISO", help="up to this time (inclusive)")
    show.add_argument("--event", action="append", default=[], metavar="GLOB",
                      help="event type, a glob (login.*, admin.*); repeat for several (OR)")
    show.add_argument("--account", help="account name")
    show.add_argument("--client", type=_client_arg, help="client address or CIDR")
    show.add_argument("--country", type=_country_arg, metavar="CC", help="GeoIP country of the client (ISO code)")
    show.add_argument("--overseas", action="store_true",
                      help="clients overseas by the policy in force at the record's time (Art. 19)")
    show.add_argument("--decision", help="allow, refuse, login, ok, ...")
    show.add_argument("--rule", help="name of the access rule")
    show.add_argument("--grant", nargs="?", const="any", metavar="N|WORDS",
                      help="admitted by an overseas grant: any, the grant of index N, or one whose reason has WORDS")
    how = show.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_const", dest="format", const=Format.JSON,
                     help="JSON Lines: the records as written (a record that fails verification carries _verify)")
    how.add_argument("--csv", action="store_const", dest="format", const=Format.CSV,
                     help="CSV with a header row, for spreadsheets")
    how.add_argument("--table", action="store_const", dest="format", const=Format.TABLE,
                     help="a table (the default on a terminal)")
    how.add_argument("--lines", action="store_const", dest="format", const=Format.LINES,
                     help="one key=value line per record (the default when not on a terminal)")
    show.add_argument("--strict", action="store_true",
                      help="print nothing (exit 1) if the part of the log read does not verify")
    show.set_defaults(func=run_show)

    report = commands.add_parser(
        "report", parents=[common],
        help="the evidence per article (15, 19, 20, 25, 29, 30) over a period: an HTML page (--out) or a summary")
    with_source(report)
    report.add_argument("--since", default="30d", metavar="30d|ISO", help="from this time (default: 30 days ago)")
    report.add_argument("--until", metavar="ISO", help="up to this time (default: now)")
    report.add_argument("--out", type=Path, metavar="FILE.html", help="write the report as one self-contained HTML "
                                                                       "page (without: a text summary)")
    report.set_defaults(func=run_report)

    policy = commands.add_parser("policy", parents=[common],
                                 help="print the exact policy text in force at a time, and its SHA-256")
    with_source(policy)
    policy.add_argument("--at", required=True, metavar="ISO-TIME", help="the time (gateway.timezone without an "
                                                                        "offset; a duration: that long ago)")
    policy.add_argument("--raw", action="store_true",
                        help="print only the text, byte for byte (the SHA-256 and period go to stderr)")
    policy.add_argument("--strict", action="store_true", help="print nothing (exit 1) if the log does not verify")
    policy.set_defaults(func=run_policy)


def _client_arg(text: str) -> object:
    try:
        return parse_client(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address or CIDR: {text!r}") from None


def _country_arg(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 2 or not code.isalpha() or not code.isascii():
        raise argparse.ArgumentTypeError(f"not a two-letter country code: {text!r}")
    return code


@dataclass(frozen=True, slots=True)
class _Source:
    directory: Path
    key: AuditKey
    tz: ZoneInfo
    policy: Policy | None  # the policy (-p), when the command could read it
    own_log: bool  # the directory is the policy's own audit.dir (not a copy named with --dir)


DEFAULT_TZ = "Asia/Shanghai"


def _source(args: argparse.Namespace) -> _Source:
    directory: Path | None = args.dir
    key_file: Path | None = args.key_file
    if directory is not None and key_file is not None:
        # An auditor with a copy of the log and a key: no policy is needed (one is used for its timezone if present).
        key = load_audit_key(key_file)
        policy = _policy_if_readable(args.policy)
        tz = policy.gateway.timezone if policy is not None else _zone(getattr(key, "timezone", None))
        own = policy is not None and directory.resolve() == policy.audit.dir.resolve()
        return _Source(directory, key, tz, policy, own)
    policy = load_policy(args.policy, check_files=False)
    key = load_audit_key(key_file) if key_file is not None else load_key_file(policy.gateway.key_file, create=False)
    chosen = directory or policy.audit.dir
    return _Source(chosen, key, policy.gateway.timezone, policy, chosen.resolve() == policy.audit.dir.resolve())


def _policy_if_readable(path: Path) -> Policy | None:
    if not path.is_file():
        return None
    try:
        return load_policy(path, check_files=False)
    except GovGateError:
        return None


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ValueError, KeyError):
        return ZoneInfo(DEFAULT_TZ)


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


def _checked_with(key: AuditKey) -> str:
    if isinstance(key, GatewayKeys):
        return "gateway key: MACs and signatures"
    return f"exported audit key {key.key_id}: signatures"


def run_verify(args: argparse.Namespace) -> int:
    src = _source(args)
    try:
        with progress_bar(log_size(src.directory), "audit verify") as progress:
            report = verify_dir(src.directory, src.key, progress=progress)
    except AuditChainBroken as exc:
        return _broken(src.directory, exc)
    print(f"OK {src.directory}: {_describe(report)} [checked with the {_checked_with(src.key)}]")
    return 0


def run_backup(args: argparse.Namespace) -> int:
    src = _source(args)
    dest: Path = args.dest
    try:
        with progress_bar(log_size(src.directory) * 2, "audit backup") as progress:
            report = backup_dir(src.directory, dest, src.key, progress=progress)
    except AuditChainBroken as exc:
        return _broken(dest, exc)
    print(f"backed up to {dest} and verified: {_describe(report)}")
    if src.own_log and src.policy is not None and isinstance(src.key, GatewayKeys):
        # Art. 20 (第二十条): backups made are evidence too (`audit report` lists them). Written after the copy, into
        # the log itself (never into a copy), so the next backup carries it.
        from govgate.audit.admin import record_admin_event
        from govgate.core.audit_event import AuditEvent

        record_admin_event(src.policy, AuditEvent(
            event="audit.backup", time=datetime.now(src.tz), decision="ok", article="Art. 20",
            extra={"dest": str(dest.resolve()), "records": report.count, "last_seq": report.last_seq,
                   "files": report.files}))
    return 0


def run_export_key(args: argparse.Namespace) -> int:
    """Art. 20: the key an auditor checks the log with, which cannot sign, decrypt or write records that verify."""
    policy = load_policy(args.policy, check_files=False)
    keys = load_key_file(policy.gateway.key_file, create=False)
    out: Path = args.file
    tz = policy.gateway.timezone
    export_key(keys, out, timezone=tz.key, now=datetime.now(tz))
    key = verify_key_of(keys)
    print(f"wrote the audit verification key {key.key_id} to {out} (public: it checks the log's signatures; it "
          "cannot sign cookies or links, decrypt TOTP secrets, or write records that verify)")
    print(f"an auditor runs: govgate audit verify --key-file {out.name} --dir COPY-OF-{policy.audit.dir.name}")
    return 0


def _when(text: str, src: _Source, option: str) -> datetime:
    try:
        return parse_when(text, datetime.now(src.tz), src.tz)
    except ValueError as exc:
        raise _BadArgument(f"{option}: expected a duration (7d, 12h, 30m) or an ISO 8601 time, got {text!r} ({exc})") \
            from None


class _BadArgument(Exception):
    pass


def run_show(args: argparse.Namespace) -> int:
    src = _source(args)
    try:
        since = _when(args.since, src, "--since") if args.since else None
        until = _when(args.until, src, "--until") if args.until else None
    except _BadArgument as exc:
        print(f"govgate audit show: {exc}", file=sys.stderr)
        return 2
    flt = RecordFilter(
        events=tuple(args.event), account=args.account, client=args.client, country=args.country,
        overseas=args.overseas, decision=args.decision, rule=args.rule,
        grant=GrantFilter.parse(args.grant) if args.grant is not None else None, since=since, until=until,
    )
    fmt: Format = args.format or (Format.TABLE if on_terminal(sys.stdout) else Format.LINES)
    out = sys.stdout
    if fmt is Format.TABLE:
        table = Table(out, src.tz)
        emit = table.row
    elif fmt is Format.CSV:
        rows = CsvRows(out)
        emit = rows.row
    else:
        def emit(shown: Shown) -> None:
            text = json_line(shown) if fmt is Format.JSON else printable(format_row(shown.record)) + (
                f"  !! {shown.problem}" if shown.problem else "")
            out.write(text + "\n")

    result = ShowResult()
    with progress_bar(log_size(src.directory) * 2, "audit show") as progress:
        find_records(src.directory, src.key, flt, src.tz, fallback=src.policy, progress=progress,
                     strict=args.strict, each=emit, result=result)
    out.flush()
    if result.refused:
        for line in problems_summary(result, src.directory):
            print(line, file=sys.stderr)
        print("govgate audit show: the log does not verify; nothing shown (--strict)", file=sys.stderr)
        return 1
    if result.marked:
        print(f"govgate audit show: {result.marked} of {result.shown} record(s) shown fail verification (marked); "
              "the log's problems:", file=sys.stderr)
        for line in problems_summary(result, src.directory):
            print("  " + line, file=sys.stderr)
    elif result.scan is not None and result.scan.findings:
        print("govgate audit show: note: the log has problems outside the records shown:", file=sys.stderr)
        for line in problems_summary(result, src.directory):
            print("  " + line, file=sys.stderr)
    if result.unjudged:
        print(f"govgate audit show: --overseas: {result.unjudged} record(s) could not be judged (no kept policy for "
              "their time; give the policy then in force with -p)", file=sys.stderr)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Art. 15, 19, 20, 25, 29, 30: the evidence over a period, from the log itself."""
    from govgate.audit.report import build_report
    from govgate.pages.audit_report import render_html, render_text

    src = _source(args)
    now = datetime.now(src.tz)
    try:
        since = _when(args.since, src, "--since") if args.since else None
        until = _when(args.until, src, "--until") if args.until else now
    except _BadArgument as exc:
        print(f"govgate audit report: {exc}", file=sys.stderr)
        return 2
    with progress_bar(log_size(src.directory), "audit report") as progress:
        report = build_report(src.directory, src.key, since, until, now=now, fallback=src.policy, progress=progress)
    out: Path | None = args.out
    if out is None:
        sys.stdout.write(render_text(report))
        sys.stdout.flush()
    else:
        out.write_text(render_html(report), encoding="utf-8")
        print(f"wrote {out}: {report.evidence.records} records from {report.since.isoformat() if report.since else '-'}"
              f" to {report.until.isoformat() if report.until else '-'}; the log "
              + ("verifies" if report.verified else "DOES NOT verify"))
    if not report.verified:
        for finding in report.findings[:5]:
            print(f"{src.directory / finding.file}:{finding.line}: {finding.what}", file=sys.stderr)
        print("govgate audit report: the log does not verify (see the report's Art. 20 section, or govgate audit "
              "verify)", file=sys.stderr)
        return 1
    return 0


def run_policy(args: argparse.Namespace) -> int:
    """Art. 20: the exact policy text in force at a time, from the kept copies the records name."""
    src = _source(args)
    try:
        at = _when(args.at, src, "--at")
    except _BadArgument as exc:
        print(f"govgate audit policy: {exc}", file=sys.stderr)
        return 2
    with progress_bar(log_size(src.directory), "audit policy") as progress:
        scan = scan_log(src.directory, src.key, progress=progress)
    if scan.findings:
        for line in problems_summary(ShowResult(scan=scan), src.directory):
            print(line, file=sys.stderr)
        if args.strict:
            print("govgate audit policy: the log does not verify; nothing printed (--strict)", file=sys.stderr)
            return 1
        print("govgate audit policy: warning: the log does not verify (problems above)", file=sys.stderr)
    period = scan.timeline.in_force(at)
    when = at.isoformat()
    if period is None:
        first = scan.timeline.periods[0].start.isoformat() if scan.timeline.periods else None
        print(f"govgate audit policy: no policy was in force at {when}: "
              + (f"the first load in the log is at {first}" if first else "the log records no policy load"),
              file=sys.stderr)
        return 1
    if period.stopped and period.end is not None and period.end <= at:
        print(f"govgate audit policy: the gateway was stopped at {period.end.isoformat()} and not started again "
              f"before {when}; the policy in force until then was {period.sha256} (audit policy --at "
              f"{period.start.isoformat()})", file=sys.stderr)
        return 1
    text = PolicyTexts(src.directory).text(period)
    if text is None:
        why = "its text was not kept (the log is older than kept policy texts)" if period.text_name is None else \
            f"its kept text {period.text_name} is missing or does not match its hash"
        print(f"govgate audit policy: the policy in force at {when} has SHA-256 {period.sha256}, but {why}",
              file=sys.stderr)
        return 1
    until = period.end.isoformat() if period.end is not None else "the end of the log"
    about = (f"# policy in force at {when}\n# sha256: {period.sha256}\n"
             f"# {period.event} at {period.start.isoformat()} (in force until {until}) from {period.file}\n"
             f"# kept as {src.directory / (period.text_name or '')}\n")
    if args.raw:
        print(about, end="", file=sys.stderr)
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(about)
        sys.stdout.flush()
        sys.stdout.buffer.write(text)
    sys.stdout.flush()
    return 0
