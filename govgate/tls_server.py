"""The gateway's own TLS server context (Art. 29, 第二十九条: access must use secure connections).

``ServerTls.load(policy)`` reads ``gateway.tls.cert`` (one PEM file: private key and certificate chain in
any order) and ``gateway.tls.client_ca`` once per policy load — in the reload thread, never per
connection — and builds one OpenSSL context to Mozilla's "intermediate" profile, which
``govgate/addons/tls.py`` hands to every client connection:

- TLS 1.2 and 1.3 only; TLS 1.2 offers only forward-secret AEAD suites with ECDHE (no DHE at all, so no
  weak or oversized finite-field groups); the client chooses the cipher order (no server preference);
- key exchange groups X25519, P-256, P-384 (not X448 or P-521);
- signature algorithms without DSA, SHA-1 or SHA-224, also in the CertificateRequest sent to browsers;
- session resumption: a server-side session cache (session IDs in TLS 1.2, stateful tickets in TLS 1.3:
  no ticket key that would need rotating) under one session-id context, so a returning browser skips
  the full handshake;
- a client certificate is asked for (device identity, Art. 30) and, with ``client_ca``, the CA names are
  sent; the handshake accepts any certificate: ``govgate/addons/tls.py`` verifies it once per connection.

Errors (unreadable file, no private key, key and certificate that do not match) are ``PolicyError``s
naming the file, so a bad certificate is refused like any bad policy and the last good one stays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto

from govgate.core.policy.model import Policy
from govgate.errors import PolicyError, PolicyProblem
from govgate.regular_file import read_regular

logger = logging.getLogger(__name__)

# Mozilla "intermediate" (https://ssl-config.mozilla.org, guideline 5.7), without the DHE suites.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
TLS13_CIPHERS = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
GROUPS = "X25519:P-256:P-384"
SIGALGS = ":".join((
    "ECDSA+SHA256", "ECDSA+SHA384", "ECDSA+SHA512", "ed25519", "ed448",
    "rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pss_rsae_sha512",
    "rsa_pss_pss_sha256", "rsa_pss_pss_sha384", "rsa_pss_pss_sha512",
    "RSA+SHA256", "RSA+SHA384", "RSA+SHA512",
))
SESSION_ID_CONTEXT = b"govgate/v1"
SESSION_TIMEOUT_SECONDS = 24 * 3600  # Mozilla: ssl_session_timeout 1d

type PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class ServerTls:
    """One loaded certificate and the context built from it; replaced whole on reload."""

    context: SSL.Context
    leaf: x509.Certificate
    client_cas: tuple[x509.Certificate, ...]  # from gateway.tls.client_ca: what device certificates chain to
    cert_sha256: str

    def connection(self) -> SSL.Connection:
        """A server-side connection for one client; the caller sets its app data (ALPN) and accept state."""
        return SSL.Connection(self.context)

    @classmethod
    def load(cls, policy: Policy, extra_cas: Sequence[x509.Certificate] = ()) -> ServerTls | None:
        """Blocking (reads the PEM files): call in a thread. None when the policy serves plain HTTP."""
        gw = policy.gateway
        if gw.insecure or gw.tls_cert is None:
            return None
        data = _read(gw.tls_cert, "gateway.tls.cert")
        key, leaf, chain = split_pem(data, str(gw.tls_cert))
        cas: list[x509.Certificate] = []
        if gw.client_ca is not None:
            ca_data = _read(gw.client_ca, "gateway.tls.client_ca")
            try:
                cas.extend(x509.load_pem_x509_certificates(ca_data))
            except ValueError as exc:
                raise _problem(gw.client_ca, "gateway.tls.client_ca", f"expected PEM CA certificates: {exc}") from None
        cas.extend(extra_cas)
        context = build_context(key, leaf, chain, request_client_cert=gw.request_client_cert, client_cas=cas)
        return cls(context=context, leaf=leaf, client_cas=tuple(cas),
                   cert_sha256=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest())


def build_context(key: PrivateKey, leaf: x509.Certificate, chain: Sequence[x509.Certificate], *,
                  request_client_cert: bool, client_cas: Sequence[x509.Certificate]) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    # No OP_CIPHER_SERVER_PREFERENCE: the client chooses (every offered suite is strong).
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
    ctx.set_cipher_list(TLS12_CIPHERS.encode())
    ctx.set_tls13_ciphersuites(TLS13_CIPHERS.encode())
    lib = SSL._lib  # type: ignore[attr-defined]
    if lib.SSL_CTX_set1_curves_list(ctx._context, GROUPS.encode()) != 1:
        raise RuntimeError(f"OpenSSL refused the key exchange groups {GROUPS}")
    if lib.SSL_CTX_set1_sigalgs_list(ctx._context, SIGALGS.encode()) != 1:
        raise RuntimeError("OpenSSL refused the signature algorithm list")
    ctx.set_session_id(SESSION_ID_CONTEXT)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    ctx.set_timeout(SESSION_TIMEOUT_SECONDS)
    ctx.use_certificate(leaf)
    ctx.use_privatekey(key)
    for cert in chain:
        ctx.add_extra_chain_cert(cert)
    ctx.check_privatekey()
    from mitmproxy.addons.tlsconfig import alpn_select_callback  # mitmproxy's HTTP/2 vs HTTP/1.1 choice

    ctx.set_alpn_select_callback(alpn_select_callback)
    if request_client_cert:
        # Art. 30: a client certificate identifies a device. The handshake accepts any certificate (a browser
        # without one, or with another, still reaches the public pages); govgate/addons/tls.py verifies it.
        ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
        if client_cas:
            for ca in client_cas:  # named in the certificate request (browsers offer what chains to them)
                ctx.add_client_ca(ca)
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    return ctx


def _accept_any(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    return True


def split_pem(data: bytes, file: str) -> tuple[PrivateKey, x509.Certificate, list[x509.Certificate]]:
    """The private key, the certificate it belongs to, and the rest of the chain, from one PEM file."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PolicyError([PolicyProblem(file, 0, "gateway.tls.cert", "expected PEM certificates; found none that "
                                                                      "parse")]) from None
    key = None
    for block in _pem_blocks(data, b"PRIVATE KEY"):
        try:
            loaded = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      | ed448.Ed448PrivateKey):
            key = loaded
            break
    if key is None:
        raise PolicyError([PolicyProblem(file, 0, "gateway.tls.cert", "expected an unencrypted private key "
                                                                      "(RSA, EC or Ed25519) in the PEM file")])
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = next((c for c in certs if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public), None)
    if leaf is None:
        raise PolicyError([PolicyProblem(file, 0, "gateway.tls.cert", "no certificate in the file belongs to its "
                                                                      "private key")])
    return key, leaf, [c for c in certs if c is not leaf]


def _pem_blocks(data: bytes, kind: bytes) -> list[bytes]:
    out: list[bytes] = []
    start = 0
    while True:
        begin = data.find(b"-----BEGIN ", start)
        if begin < 0:
            return out
        end_marker = data.find(b"-----END ", begin)
        if end_marker < 0:
            return out
        end = data.find(b"-----", end_marker + 9)
        if end < 0:
            return out
        block = data[begin:end + 5]
        if kind in block.split(b"\n", 1)[0]:
            out.append(block + b"\n")
        start = end + 5


def _read(path: Path, key: str) -> bytes:
    try:
        return read_regular(path)
    except OSError as exc:
        raise _problem(path, key, f"cannot read {path}: {exc.strerror or exc}") from None


def _problem(path: Path, key: str, message: str) -> PolicyError:
    return PolicyError([PolicyProblem(str(path), 0, key, message)])


def readable_by_others(path: Path) -> bool:
    """Whether users other than the file's owner may read it (group or world permission bits)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def warn_about_key_permissions(policy: Policy) -> list[str]:
    """Art. 29: a private key others can read is no secret. One warning per such file (logged at start)."""
    files = [("gateway.key_file", policy.gateway.key_file)]
    if policy.gateway.tls_cert is not None and not policy.gateway.insecure:
        files.append(("gateway.tls.cert", policy.gateway.tls_cert))
    warnings = []
    for key, path in files:
        if readable_by_others(path):
            message = (f"{path} ({key}) holds a private key and is readable by other users "
                       f"(mode {stat.S_IMODE(os.stat(path).st_mode):04o}); run: chmod 600 {path}")
            logger.warning("key.permissions %s", message)
            warnings.append(message)
    return warnings
