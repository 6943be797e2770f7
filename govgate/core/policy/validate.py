"""Validation: the YAML tree (with line numbers) to the frozen, typed ``Policy``, collecting every problem.

``build_policy`` is the one entry (``load.py`` calls it). It reads the top-level mapping against the
key table in ``schema.py`` (so ``govgate schema`` and this validator agree), then every section, in
this order:

1. ``version``, then ``gateway`` first of the rest: grant times are read in ``gateway.timezone``
   (``service_sections.py``);
2. ``state``; ``geoip``, ``networks``, ``groups``, ``accounts_file``, ``devices``, the ``access`` rules
   and the ``overseas`` grants, each given the names the earlier ones declared
   (``access_sections.py``; Art. 19, Art. 30);
3. ``login``, ``session``, ``outbound``, ``audit``, ``metrics`` (``service_sections.py``).

Every section reports into one collector, so the result lists every problem at once as
``file:line: key.path: message`` (Authelia style), each saying what was expected and what was found.
Values are normalised once, while read (``readers.py``): host names to lower-case ASCII (IDNA)
without a trailing dot, CIDRs to ``ipaddress`` networks, durations to ``timedelta``, grant times to
aware datetimes in ``gateway.timezone``, paths resolved against the policy's folder. The files the
policy names are not read here: the reading lists them for the files layer (``named_files.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from govgate.core.policy import access_sections, schema, service_sections
from govgate.core.policy.model import SCHEMA_VERSION, Policy
from govgate.core.policy.named_files import NamedFile
from govgate.core.policy.readers import Reader, Section, found
from govgate.core.yaml_tree import YNode, YScalar
from govgate.errors import PolicyError, PolicyProblem


@dataclass(frozen=True, slots=True)
class PolicyReading:
    """What validating one policy found: the policy (None when anything is wrong), every problem, and the
    files it names that the files layer must read and check before the policy is used."""

    policy: Policy | None
    problems: tuple[PolicyProblem, ...]
    named_files: tuple[NamedFile, ...] = ()

    def policy_or_error(self, more: list[PolicyProblem] | None = None) -> Policy:
        """The policy; or ``PolicyError`` listing every problem, with ``more`` (found in the named files)."""
        problems = [*self.problems, *(more or [])]
        if problems or self.policy is None:
            raise PolicyError(problems)
        return self.policy


def build_policy(tree: YNode, *, file: str, source: Path, sha256: str,
                 yaml_problems: list[PolicyProblem] | None = None) -> PolicyReading:
    """Validate the YAML tree into a ``Policy``: the reading holds it, or every problem found."""
    r = Reader(file, source)
    r.p.items.extend(yaml_problems or [])
    policy = _policy(r, tree, source, sha256)
    if r.p.items or policy is None:
        if not r.p.items:
            r.p.add(tree, "", "the policy is incomplete")  # defensive: every None above reported a problem
        policy = None
    return PolicyReading(policy, tuple(r.p.items), tuple(r.named_files))


def _policy(r: Reader, root: YNode, source: Path, sha256: str) -> Policy | None:
    top = r.section(root, schema.POLICY, "", 1)
    if top is None:
        return None
    version = _version(r, top)
    gateway = service_sections.gateway(r, top)
    state = service_sections.state(r, top)
    geoip = access_sections.geoip(r, top)
    networks = access_sections.networks(r, top)
    groups = access_sections.groups(r, top)
    accounts_file = r.path_value(top.get("accounts_file"), "accounts_file", "accounts.yaml")
    devices_file = r.path_value(top.get("devices_file"), "devices_file", "devices.yaml")
    devices = access_sections.devices(r, top)
    access = access_sections.access(r, top, networks, groups)
    grants = access_sections.grants(r, top, devices)
    login = service_sections.login(r, top)
    session = service_sections.session(r, top)
    outbound = service_sections.outbound(r, top)
    audit = service_sections.audit(r, top)
    metrics = service_sections.metrics(r, top)
    if r.p.items or gateway is None or geoip is None:
        return None
    return Policy(
        version=version,
        source=source,
        sha256=sha256,
        gateway=gateway,
        state=state,
        geoip=geoip,
        networks=networks,
        groups=tuple(groups) if groups is not None else None,
        accounts_file=accounts_file,
        devices_file=devices_file,
        devices=devices,
        access=access,
        grants=grants,
        login=login,
        session=session,
        outbound=outbound,
        audit=audit,
        metrics=metrics,
    )


def _version(r: Reader, top: Section) -> int:
    node = top.get("version")
    if node is None:
        return SCHEMA_VERSION  # reported as missing by section()
    if isinstance(node, YScalar) and node.kind == "int" and node.value == SCHEMA_VERSION:
        return SCHEMA_VERSION
    r.p.add(node, "version", f"expected {SCHEMA_VERSION} (the only policy schema version); found {found(node)}")
    return SCHEMA_VERSION
