"""Every kind of failure a user of GovGate can meet, one class each.

    GovGateError                      anything GovGate refuses or cannot do
     ├── PolicyError                  policy.yaml (or the accounts file) is invalid; carries every problem
     ├── AccountError                 an account command cannot be carried out (unknown, exists, weak password)
     ├── DeviceError                  a device/CA command cannot be carried out
     ├── KeyFileError                 gateway.key_file is missing, unreadable or malformed
     ├── StoreUnavailable             the state store (Redis) cannot be reached: staff paths fail closed
     ├── AuditWriteFailed             audit records cannot be written: staff paths fail closed (Art. 20)
     └── AuditChainBroken             `audit verify` found an edit, deletion, insertion or reordering

A refusal of a request is *not* an exception: it is a ``Decision`` (see ``govgate.core.decide``).
"""

from __future__ import annotations

from dataclasses import dataclass


class GovGateError(Exception):
    """Base class of every error GovGate reports to a person."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in a policy or accounts file, located as ``file:line: key.path: message``."""

    file: str
    line: int
    key_path: str
    message: str
    # A warning names something that is valid but probably not meant (a grant already over, or naming an
    # account that does not exist): `govgate check` prints it and still exits 0.
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        message = f"warning: {self.message}" if self.warning else self.message
        if self.key_path:
            return f"{where}: {self.key_path}: {message}"
        return f"{where}: {message}"


class PolicyError(GovGateError):
    """The policy (or accounts file) is invalid. ``problems`` lists every problem found, in file order."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.key_path))
        super().__init__("\n".join(str(p) for p in self.problems))


class AccountError(GovGateError):
    """An account command cannot be carried out."""


class DeviceError(GovGateError):
    """A device command cannot be carried out."""


class KeyFileError(GovGateError):
    """The gateway key file is missing, unreadable or malformed."""


class StoreUnavailable(GovGateError):
    """The state store cannot be reached (or answered too slowly). Staff paths fail closed with 503."""


class AuditWriteFailed(GovGateError):
    """Audit records cannot be written (disk full, permissions). Staff paths fail closed (Art. 20)."""


class AuditChainBroken(GovGateError):
    """The audit log was tampered with: ``file:line`` names the first broken record."""

    def __init__(self, file: str, line: int, what: str) -> None:
        self.file = file
        self.line = line
        self.what = what
        super().__init__(f"{file}:{line}: {what}")
