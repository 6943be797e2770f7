"""`govgate device …`: the device CA, client certificates as PKCS#12, enrolment approval, revocation, the list.

# Art. 19 (第十九条): staff functions only from allowed IP ranges or devices.
# Art. 30 (第三十条): bind accounts to terminals; electronic certificates are encouraged.

    govgate device ca init                      make the device CA (once; never over an existing one)
    govgate device issue ID --account NAME [--days N] [--out FILE.p12] [--password-stdin] [--legacy]
    govgate device revoke ID                    the running gateway stops accepting it within a second
    govgate device approve ID [--days N]        an enrolled browser becomes a device
    govgate device list [--json]                id, account, kind, expiry, last seen, state

Every action writes its audit record (``admin.device.*``) before anything is printed, so a closed output
pipe can never lose it. The registry (``devices_file``) is updated under a lock and atomically; devices
written by hand in policy.yaml are listed too (kind ``policy``) and are changed there, not here.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from govgate.core import device_certs
from govgate.core.audit_event import AuditEvent
from govgate.core.device_registry import DeviceKind, DeviceRegistry, DeviceState, RegisteredDevice
from govgate.core.policy.model import Policy
from govgate.errors import DeviceError, GovGateError

ARTICLE = "Art. 19"
DEFAULT_DAYS = 365
MIN_P12_PASSWORD = 10
LAST_SEEN_DAYS = 31  # how far back `list` looks in the audit log


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    device = sub.add_parser("device", parents=[common], help="device CA, client certificates, enrolled browsers")
    commands = device.add_subparsers(dest="device_command", metavar="ACTION", required=True)

    ca = commands.add_parser("ca", parents=[common], help="the device CA")
    ca_commands = ca.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    init = ca_commands.add_parser("init", parents=[common], help="make the device CA (never over an existing one)")
    init.add_argument("--name", default="GovGate device CA", help="the CA's common name")
    init.set_defaults(func=run_ca_init)

    issue = commands.add_parser("issue", parents=[common], help="issue a client certificate as a PKCS#12 file")
    issue.add_argument("id", metavar="ID", help="the device id (letters, digits, . _ -)")
    issue.add_argument("--account", required=True, help="the account the device belongs to")
    issue.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"validity in days (default {DEFAULT_DAYS})")
    issue.add_argument("--out", type=Path, help="the .p12 file to write (default: ID.p12 here; never overwritten)")
    issue.add_argument("--password-stdin", action="store_true", help="read the .p12 password from one line of stdin")
    issue.add_argument("--legacy", action="store_true",
                       help="3DES/SHA-1 protection for old systems that refuse the AES one (weaker: hand it over "
                            "on a trusted channel)")
    issue.set_defaults(func=run_issue)

    revoke = commands.add_parser("revoke", parents=[common], help="revoke a device (takes effect within a second)")
    revoke.add_argument("id", metavar="ID")
    revoke.set_defaults(func=run_revoke)

    approve = commands.add_parser("approve", parents=[common], help="approve an enrolled browser")
    approve.add_argument("id", metavar="ID")
    approve.add_argument("--days", type=int, default=DEFAULT_DAYS,
                         help=f"the approval lasts this many days (default {DEFAULT_DAYS})")
    approve.set_defaults(func=run_approve)

    lst = commands.add_parser("list", parents=[common], help="every device: kind, account, expiry, last seen, state")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    lst.set_defaults(func=run_list)


# -- shared steps ------------------------------------------------------------------------------------------------

def _policy(args: argparse.Namespace) -> tuple[Policy, datetime]:
    from govgate.files import load_policy

    policy = load_policy(args.policy, check_files=False)
    return policy, datetime.now(policy.gateway.timezone)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _record(policy: Policy, now: datetime, action: str, device_id: str | None, account: str | None,
            **extra: str | int | bool | None) -> None:
    """Art. 20: the audit record of an admin action, written before anything is printed."""
    from govgate.audit.admin import record_admin_event

    event = AuditEvent(event=f"admin.device.{action}", time=now, device=device_id, account=account, decision="ok",
                       article=ARTICLE, extra={"operator": _operator(), **extra})
    try:
        record_admin_event(policy, event)
    except GovGateError as exc:
        raise DeviceError(f"the {action} was done, but its audit record could not be written: {exc}") from None


def _local(when: datetime, now: datetime) -> str:
    """A certificate's end in the policy's time zone (``gateway.timezone``), to the minute."""
    return when.astimezone(now.tzinfo).isoformat(timespec="minutes")


def _update(policy: Policy, change: object) -> DeviceRegistry:
    from govgate.devices_file import update_registry

    return update_registry(policy.devices_file, change)  # type: ignore[arg-type]


# -- ca init -----------------------------------------------------------------------------------------------------

def run_ca_init(args: argparse.Namespace) -> int:
    from govgate.device_ca import create_ca

    policy, now = _policy(args)
    files, cert = create_ca(policy, args.name, now)
    fingerprint = device_certs.fingerprint_text(device_certs.fingerprint(cert))
    _record(policy, now, "ca_init", None, None, certificate_sha256=fingerprint, folder=str(files.folder))
    print(f"device CA made: {files.cert} (key: {files.key}, mode 0600 — keep it off this machine's backups "
          "you do not control)")
    print(f"  SHA-256: {fingerprint}")
    print(f"  valid until {_local(cert.not_valid_after_utc, now)}")
    print("The running gateway asks browsers for certificates from this CA and accepts only those that chain to "
          "it (and to gateway.tls.client_ca, if set).")
    return 0


# -- issue -------------------------------------------------------------------------------------------------------

def _p12_password(device_id: str, from_stdin: bool) -> bytes:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        from govgate.cli.account import _have_terminal

        if not _have_terminal():
            raise DeviceError("no terminal to ask for the .p12 password: use --password-stdin")
        password = getpass.getpass(f"Password to protect {device_id}.p12 with: ")
        if getpass.getpass("Repeat it: ") != password:
            raise DeviceError("the two passwords differ")
    if len(password) < MIN_P12_PASSWORD:
        raise DeviceError(f"the .p12 password must have at least {MIN_P12_PASSWORD} characters (it protects the "
                          "device's private key in transit)")
    return password.encode("utf-8")


def run_issue(args: argparse.Namespace) -> int:
    from govgate.accounts_file import load_accounts
    from govgate.device_ca import load_ca, write_new_file

    policy, now = _policy(args)
    device_id: str = args.id
    account: str = args.account
    if not 1 <= args.days <= 3650:
        raise DeviceError("--days must be from 1 to 3650")
    if load_accounts(policy.accounts_file).get(account) is None:
        raise DeviceError(f"no account named {account!r} (`govgate account list` shows them)")
    if policy.device(device_id) is not None:
        raise DeviceError(f"device {device_id!r} is listed in {policy.source}: choose another id")
    ca_key, ca_cert = load_ca(policy)
    out: Path = args.out or Path(f"{device_id}.p12")
    if out.exists():
        raise DeviceError(f"{out} exists already; it is never overwritten")
    password = _p12_password(device_id, args.password_stdin)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = device_certs.issue(ca_key, ca_cert, key, device_id, account, now, days=args.days)
    digest = device_certs.fingerprint(cert)
    registered = RegisteredDevice(id=device_id, account=account, kind=DeviceKind.CERTIFICATE,
                                  state=DeviceState.ACTIVE, created=now, cert_sha256=digest,
                                  serial=f"{cert.serial_number:x}",
                                  expires=cert.not_valid_after_utc.astimezone(now.tzinfo).date())
    _update(policy, lambda reg: reg.with_new(registered, frozenset(d.id for d in policy.devices)))
    write_new_file(out, device_certs.pkcs12_bundle(device_id, key, cert, ca_cert, password, legacy=args.legacy),
                   0o600)
    fingerprint = device_certs.fingerprint_text(digest)
    _record(policy, now, "issue", device_id, account, certificate_sha256=fingerprint,
            expires=registered.expires.isoformat() if registered.expires else None, legacy=bool(args.legacy))
    print(f"device {device_id} of {account}: {out} (PKCS#12, password-protected, mode 0600)")
    print(f"  SHA-256: {fingerprint}")
    print(f"  valid until {_local(cert.not_valid_after_utc, now)} (as `govgate device list` shows it)")
    print("Install it on the device: Windows and macOS open the .p12 (double-click, enter the password); iOS and "
          "Android: send it over a trusted channel and open it in Settings; Firefox: Settings > Certificates > "
          "Your Certificates > Import. Then delete the file and tell its password only to the device's owner.")
    return 0


# -- revoke, approve ----------------------------------------------------------------------------------------------

def run_revoke(args: argparse.Namespace) -> int:
    policy, now = _policy(args)
    if policy.device(args.id) is not None:
        raise DeviceError(f"device {args.id!r} is written in {policy.source}: remove it there")
    registry = _update(policy, lambda reg: reg.revoked(args.id, now))
    device = registry.get(args.id)
    assert device is not None
    _record(policy, now, "revoke", device.id, device.account, kind=device.kind.value)
    print(f"device {device.id} of {device.account} revoked; the running gateway refuses it within a second")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    policy, now = _policy(args)
    if not 1 <= args.days <= 3650:
        raise DeviceError("--days must be from 1 to 3650")
    expires: date = now.date() + timedelta(days=args.days)
    registry = _update(policy, lambda reg: reg.approved(args.id, now, expires))
    device = registry.get(args.id)
    assert device is not None
    _record(policy, now, "approve", device.id, device.account, expires=expires.isoformat(), label=device.label)
    print(f"browser {device.id} of {device.account} ({device.label or 'no name'}) approved until "
          f"{expires.isoformat()}")
    return 0


# -- list --------------------------------------------------------------------------------------------------------

def last_seen(policy: Policy, ids: set[str], now: datetime) -> dict[str, str]:
    """When each device last reached a staff path, from the audit log's access records of the last month."""
    from govgate.audit.log_dir import list_log_files

    seen: dict[str, str] = {}
    folder = policy.audit.dir
    try:
        names = sorted(list_log_files(folder), reverse=True)
    except OSError:
        return seen
    oldest = (now - timedelta(days=LAST_SEEN_DAYS)).date().isoformat()
    for name in names:
        if name < f"audit-{oldest}":
            break
        try:
            lines = (folder / name).read_bytes().splitlines()
        except OSError:
            continue
        for raw in reversed(lines):
            if b'"device":' not in raw or b'"device":null' in raw:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            device = record.get("device")
            if record.get("event") == "access" and device in ids and device not in seen:
                seen[device] = str(record.get("time", ""))[:16]
        if len(seen) == len(ids):
            break
    return seen


def run_list(args: argparse.Namespace) -> int:
    from govgate.devices_file import load_registry

    policy, now = _policy(args)
    registry = load_registry(policy.devices_file)
    rows: list[dict[str, str]] = []
    for d in registry:
        state = d.state.value
        if d.state is DeviceState.ACTIVE and d.expires is not None and now.date() > d.expires:
            state = "expired"
        rows.append({"id": d.id, "account": d.account, "kind": d.kind.value,
                     "expires": d.expires.isoformat() if d.expires else "-", "state": state,
                     "label": d.label or ""})
    for p in policy.devices:
        expired = p.expires is not None and now.date() > p.expires
        rows.append({"id": p.id, "account": p.account, "kind": "policy",
                     "expires": p.expires.isoformat() if p.expires else "-",
                     "state": "expired" if expired else "listed", "label": ""})
    seen = last_seen(policy, {r["id"] for r in rows}, now)
    for row in rows:
        row["last_seen"] = seen.get(row["id"], "-")
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    header = ("ID", "ACCOUNT", "KIND", "EXPIRES", "LAST SEEN", "STATE")
    table = [header, *((r["id"], r["account"], r["kind"], r["expires"], r["last_seen"], r["state"]) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    if not rows:
        print("(no devices: `govgate device ca init`, then `govgate device issue ID --account NAME`)")
    return 0
