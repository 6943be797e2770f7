"""The country of a client address (Art. 19's "outside the country"), from a MaxMind-format database.

``CountryLookup`` wraps a database reader that the files layer opened once (``govgate.files``:
memory-mapped, at configure time, never per request) and answers ``country(ip) -> "GB" | None`` from
``country.iso_code``, falling back to ``registered_country.iso_code``; it reads GeoLite2/GeoIP2 Country
and City databases alike. A database with a corrupt data section is refused when the lookup is built
(as a missing file or one that is not a MaxMind database is when it is opened), with a
``GeoIPDatabaseError`` naming the file.

``is_always_home(ip)`` owns the other half of the rule: private, loopback, link-local, unique-local
and carrier-grade-NAT addresses never leave the country, whatever the database says.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from govgate.core.networks import NetworkSet, unmapped
from govgate.core.policy.model import IPAddress
from govgate.errors import GovGateError

logger = logging.getLogger(__name__)

ALWAYS_HOME = NetworkSet(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918 private
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "::/128", "::1/128",  # unspecified, loopback
        "fe80::/10",  # link-local
        "fc00::/7",  # unique local (ULA)
    )
)

VALIDATE_RECORDS = 1000  # records decoded at load to find a corrupt data section early


class GeoIPDatabaseError(GovGateError, ValueError):
    """The GeoIP database is missing, unreadable or corrupt."""


def invalid_database(source: str, exc: Exception) -> GeoIPDatabaseError:
    """The error for a database at ``source`` that does not read as a MaxMind DB, saying why (``exc``)."""
    return GeoIPDatabaseError(f"{source}: not a valid MaxMind DB (.mmdb) file: {exc}")


def is_always_home(ip: IPAddress) -> bool:
    """Private, loopback, link-local, ULA and CGNAT addresses are always home (Art. 19: they never leave the
    country, whatever a database says)."""
    return ALWAYS_HOME.contains(ip)


def _iso(record: Any, key: str) -> str | None:
    part = record.get(key) if isinstance(record, dict) else None
    code = part.get("iso_code") if isinstance(part, dict) else None
    return code.upper() if isinstance(code, str) and code else None


def country_of_record(record: Any) -> str | None:
    """``country.iso_code``, else ``registered_country.iso_code`` (upper case), else None."""
    return _iso(record, "country") or _iso(record, "registered_country")


class CountryLookup:
    """Country of an address from one opened MaxMind database; ``source`` names it in errors and logs.

    The lookup owns ``reader`` from here on (``close`` closes it)."""

    def __init__(self, reader: maxminddb.Reader, source: str, *, cache_size: int = 4096) -> None:
        self.source = source
        self._reader = reader
        try:
            metadata = reader.metadata()
            self.database_type: str = str(metadata.database_type)
            # When the database was built (its metadata's build_epoch): how old the country data is (health).
            epoch = getattr(metadata, "build_epoch", None)
            self.built: datetime | None = (datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, int) and epoch > 0
                                           else None)
            # Decode a sample of records: a corrupt data section is refused now, not per request.
            for _ in itertools.islice(iter(reader), VALIDATE_RECORDS):
                pass
        except (InvalidDatabaseError, OSError, ValueError) as exc:
            raise invalid_database(source, exc) from exc
        self._cached = lru_cache(maxsize=cache_size)(self._lookup)

    def _lookup(self, ip: IPAddress) -> str | None:
        try:
            record = self._reader.get(ip)
        except (InvalidDatabaseError, ValueError) as exc:
            # Unknown, which the policy's `geoip.unknown` decides (overseas by default: fail closed).
            logger.warning("geoip.lookup_failed file=%s error=%s", self.source, exc)
            return None
        if record is None:
            return None
        return country_of_record(record)

    def country(self, ip: IPAddress) -> str | None:
        """ISO 3166-1 alpha-2 code (upper case) or None when the database does not know the address."""
        return self._cached(unmapped(ip))

    def close(self) -> None:
        self._reader.close()

    def __repr__(self) -> str:
        return f"CountryLookup({self.source!r}, {self.database_type})"
