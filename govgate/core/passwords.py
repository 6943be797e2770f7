"""Password hashing (Argon2id), verification, the dummy hash, and the weak-password rules (Art. 30).

Art. 30 (第三十条): staff log in with strong identity authentication; passwords are one factor of it.

Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``) made by the ``cryptography``
package's Argon2id. A verification reads the parameters from the stored string, so hashes made
with older parameters keep working; a hash is only ever made with today's, so ``govgate account
passwd`` renews an old one (nothing rehashes at login). Parameters (docs/accounts.md): 19 MiB of
memory, 2 passes, 1 lane, 16-byte salt, 32-byte hash: OWASP's recommended Argon2id setting, about
20 ms per verification on the 2-core reference machine, so a flood of logins cannot exhaust memory
or CPU as quickly as 64 MiB would.

Both ``hash_password`` and ``verify_password`` cost tens of milliseconds of CPU: the gateway calls
them through ``asyncio.to_thread``, never on the event loop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int
    iterations: int
    lanes: int
    salt_bytes: int = 16
    hash_bytes: int = 32


# OWASP Password Storage Cheat Sheet, Argon2id option "m=19456 (19 MiB), t=2, p=1".
PARAMETERS = Argon2Parameters(memory_kib=19456, iterations=2, lanes=1)

MIN_LENGTH = 12
MAX_LENGTH = 256  # longer inputs are refused before hashing: no CPU spent on megabyte "passwords"

_PHC = re.compile(
    r"\$argon2id\$v=19\$m=(?P<m>\d{1,8}),t=(?P<t>\d{1,4}),p=(?P<p>\d{1,3})\$(?P<salt>[A-Za-z0-9+/]{11,})\$(?P<hash>[A-Za-z0-9+/]{16,})"
)


def _kdf(params: Argon2Parameters, salt: bytes) -> Argon2id:
    return Argon2id(
        salt=salt,
        length=params.hash_bytes,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )


def _bytes(pw: str) -> bytes:
    # "surrogatepass": a form field decoded with surrogate escapes must not crash the login; such a
    # password simply matches nothing that was ever set through the CLI.
    return pw.encode("utf-8", errors="surrogatepass")


def hash_password(pw: str) -> str:
    """A fresh PHC-encoded Argon2id hash of ``pw`` with a random salt."""
    return _kdf(PARAMETERS, os.urandom(PARAMETERS.salt_bytes)).derive_phc_encoded(_bytes(pw))


# A tampered accounts file must not turn one login into gigabytes of memory or minutes of CPU: hashes
# with parameters beyond these are not ours, and never verified.
MAX_MEMORY_KIB = 262_144  # 256 MiB
MAX_ITERATIONS = 10
MAX_LANES = 8
MAX_ENCODED_LENGTH = 200  # our PHC strings are ~100 characters


def parameters_of(encoded: str) -> Argon2Parameters | None:
    """The Argon2id parameters written in a PHC string; None if it is not one we accept (or too costly)."""
    if len(encoded) > MAX_ENCODED_LENGTH:
        return None
    m = _PHC.fullmatch(encoded)
    if m is None:
        return None
    params = Argon2Parameters(memory_kib=int(m["m"]), iterations=int(m["t"]), lanes=int(m["p"]))
    if not (8 <= params.memory_kib <= MAX_MEMORY_KIB and 1 <= params.iterations <= MAX_ITERATIONS
            and 1 <= params.lanes <= MAX_LANES):
        return None
    return params


def is_password_hash(encoded: str) -> bool:
    """True if ``encoded`` looks like a hash this module made (for the accounts-file parser)."""
    return parameters_of(encoded) is not None


def verify_password(pw: str, encoded: str) -> bool:
    """True if ``pw`` matches ``encoded``. The comparison inside Argon2id's verify is constant-time.

    Fails closed: a malformed hash, or a password longer than ``MAX_LENGTH``, is simply "no match"
    (the long password is hashed anyway against the dummy parameters so the answer takes as long).
    """
    if len(pw) > MAX_LENGTH:
        _burn(_bytes(pw[:MAX_LENGTH]))
        return False
    if parameters_of(encoded) is None:
        # Not a hash we would make (or absurdly costly): no match, after the same work as a real check.
        _burn(_bytes(pw))
        return False
    try:
        Argon2id.verify_phc_encoded(_bytes(pw), encoded)
    except (InvalidKey, ValueError, TypeError):
        return False
    return True


def _burn(data: bytes) -> None:
    """Do one verification's work against the dummy hash and throw the result away."""
    # InvalidKey is the expected outcome: this call exists only to spend the same time.
    with contextlib.suppress(InvalidKey):
        Argon2id.verify_phc_encoded(data, dummy_hash())


@functools.cache
def dummy_hash() -> str:
    """A valid hash of a random password nobody knows, with today's parameters: made on the first call (one
    hash's work; the gateway calls this at start), the same string afterwards.

    Art. 30: an unknown account name is verified against it, so unknown account and wrong password
    cost the same work and the answer's timing does not tell which accounts exist.
    """
    return hash_password(secrets.token_urlsafe(32))


# -- weak passwords ------------------------------------------------------------------------------

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Bases of the most common passwords (lists published after leaks, Chinese sites included). A
# password is refused when, lower-cased and with digits and symbols trimmed from both ends, it is one
# of these, or when it is one of these with only digits/symbols added.
_COMMON_BASES = _words(
    """
    password passw0rd passwd pass admin administrator root qwerty qwertyuiop qwertyuiopasdfghjkl
    asdfghjkl asdf zxcvbnm zxcvbnmasdfghjkl qazwsx qazwsxedc qweasd qweasdzxc abc abcd abcde abcdef
    abcdefg abcdefgh abcdefghijkl iloveyou iloveu woaini woaiwojia letmein welcome welcomeback
    monkey dragon master sunshine princess football baseball superman batman trustno1 shadow
    michael jennifer hello helloworld whatever changeme changeit default secret login test tester
    guest user username zhongguo china beijing shanghai wangyi tianya baidu taobao huawei xiaomi
    aini woshishui nihao qq zhang wang li liu chen zhangsan lisi wangwu gov govcn zhengfu
    yiqierjiu aaaaaa aaaaaaaa qwe123 qwer1234 asdfgh zaq12wsx
    """
)
_COMMON_WHOLE = _words(
    """
    123456789012 1234567890123 12345678901234 111111111111 000000000000 123123123123 147258369147
    1qaz2wsx3edc 1q2w3e4r5t6y 1qazxsw23edc qwertyuiop12 qwertyuiop123 password1234 password12345
    abc123456789 a1b2c3d4e5f6 5201314520131 woaini1314520 iloveyou1234 admin1234567 administrator1
    """
)
_LEET = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s", "5": "s", "7": "t"})
_TRIM = "0123456789!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~ "


def _character_classes(pw: str) -> set[str]:
    classes: set[str] = set()
    for ch in pw:
        if ch.isascii() and ch.islower():
            classes.add("lower-case letters")
        elif ch.isascii() and ch.isupper():
            classes.add("upper-case letters")
        elif ch.isascii() and ch.isdigit():
            classes.add("digits")
        else:
            classes.add("symbols or other characters")
    return classes


def password_problems(pw: str, account: str) -> list[str]:
    """Why ``pw`` is too weak for ``account``; an empty list means it is acceptable.

    Art. 30 (第三十条): strong identity authentication. The reasons are shown to the operator as is.
    """
    problems: list[str] = []
    if len(pw) < MIN_LENGTH:
        problems.append(f"it must be at least {MIN_LENGTH} characters long (it has {len(pw)})")
    if len(pw) > MAX_LENGTH:
        problems.append(f"it must be at most {MAX_LENGTH} characters long")
    if pw != pw.strip():
        problems.append("it must not begin or end with white space")
    if any(not ch.isprintable() for ch in pw):
        problems.append("it must not contain control characters")
    lowered = pw.lower()
    name = account.lower()
    if len(name) >= 3 and (name in lowered or lowered in name):
        problems.append("it must not contain the account name")
    elif len(name) >= 3 and name[::-1] in lowered:
        problems.append("it must not contain the account name backwards")
    classes = _character_classes(pw)
    if pw and len(classes) < 2:
        problems.append(
            f"it uses only {next(iter(classes))}: mix at least two of lower-case letters, upper-case letters, "
            "digits and symbols"
        )
    if pw and len(set(lowered)) < 5:
        problems.append("it has too few different characters")
    if re.search(r"(.)\1{3}", pw):
        problems.append("it repeats one character four or more times in a row")
    core = lowered.strip(_TRIM)
    if lowered in _COMMON_WHOLE or core in _COMMON_BASES or core.translate(_LEET) in _COMMON_BASES:
        problems.append("it is one of the most commonly used passwords (or one with only digits or symbols added)")
    elif _is_sequence(lowered):
        problems.append("it is a keyboard or alphabet sequence")
    return problems


_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)


def _is_sequence(lowered: str) -> bool:
    """The whole password is a run from a well-known sequence (forwards or backwards)."""
    for seq in _SEQUENCES:
        for candidate in (seq, seq[::-1]):
            if lowered in candidate * 2:
                return True
    return False
