"""GeoIP country lookup against MaxMind's real test databases (and their broken variants), opened by the
files layer or from bytes."""

from __future__ import annotations

import io
import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path

import maxminddb
import pytest

from govgate.core.geoip import CountryLookup, GeoIPDatabaseError, country_of_record, is_always_home
from govgate.errors import GovGateError
from govgate.files import open_country_lookup
from tests.policies import GEOIP_DIR

ip = ipaddress.ip_address


def expected_from_json(name: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str | None]]:
    """(first address of each network, ISO code) from MaxMind's source JSON for a test database."""
    out = []
    for entry in json.loads((GEOIP_DIR / name).read_text(encoding="utf-8")):
        for cidr, record in entry.items():
            net = ipaddress.ip_network(cidr, strict=False)
            code = (record.get("country") or {}).get("iso_code") or (record.get("registered_country") or {}).get(
                "iso_code")
            out.append((net.network_address, code))
            out.append((net.broadcast_address, code))
    return out


@pytest.fixture(scope="module")
def lite() -> CountryLookup:
    return open_country_lookup(GEOIP_DIR / "GeoLite2-Country-Test.mmdb")


def test_country_database_agrees_with_its_source_json(lite: CountryLookup) -> None:
    expected = expected_from_json("GeoLite2-Country-Test.json")
    assert len(expected) > 100
    for address, code in expected:
        assert lite.country(address) == code, address


def test_geoip2_country_database_agrees_with_its_source_json() -> None:
    lookup = open_country_lookup(GEOIP_DIR / "GeoIP2-Country-Test.mmdb")
    for address, code in expected_from_json("GeoIP2-Country-Test.json"):
        assert lookup.country(address) == code, address


def test_known_addresses_have_their_countries(lite: CountryLookup) -> None:
    assert lite.country(ip("81.2.69.142")) == "GB"
    assert lite.country(ip("216.160.83.56")) == "US"
    assert lite.country(ip("2001:218::1")) == "JP"


def test_ipv4_mapped_address_has_the_country_of_its_ipv4_address(lite: CountryLookup) -> None:
    assert lite.country(ip("::ffff:81.2.69.142")) == "GB"


def test_unknown_address_has_no_country(lite: CountryLookup) -> None:
    assert lite.country(ip("1.1.1.1")) is None
    assert lite.country(ip("10.0.0.1")) is None


def test_city_database_gives_countries_too() -> None:
    city = open_country_lookup(GEOIP_DIR / "GeoIP2-City-Test.mmdb")
    assert city.country(ip("81.2.69.142")) == "GB"
    assert city.country(ip("2001:218::1")) == "JP"
    assert "City" in city.database_type


def test_registered_country_is_used_when_country_is_absent() -> None:
    # Neither test database has such a record; the record reader is tested on its own.
    assert country_of_record({"registered_country": {"iso_code": "fr"}}) == "FR"
    assert country_of_record({"country": {"iso_code": "GB"}, "registered_country": {"iso_code": "FR"}}) == "GB"
    assert country_of_record({"continent": {"code": "EU"}}) is None
    assert country_of_record({"country": {"iso_code": ""}, "registered_country": "junk"}) is None
    assert country_of_record([1, 2]) is None


def test_network_with_a_continent_only_has_no_country(lite: CountryLookup) -> None:
    assert lite.country(ip("2a02:d500::1")) is None


def test_database_with_a_corrupt_data_section_is_refused_at_load() -> None:
    with pytest.raises(GeoIPDatabaseError, match="Broken-Double-Format"):
        open_country_lookup(GEOIP_DIR / "GeoIP2-City-Test-Broken-Double-Format.mmdb")


def test_database_with_a_bad_node_count_is_refused_at_load() -> None:
    with pytest.raises(GovGateError, match="not a valid MaxMind DB"):
        open_country_lookup(GEOIP_DIR / "GeoIP2-City-Test-Invalid-Node-Count.mmdb")


def test_missing_database_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(GeoIPDatabaseError, match="not found"):
        open_country_lookup(tmp_path / "nope.mmdb")


def test_a_text_file_is_not_a_database(tmp_path: Path) -> None:
    fake = tmp_path / "fake.mmdb"
    fake.write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fake\.mmdb"):
        open_country_lookup(fake)


def test_a_lookup_is_built_from_a_reader_opened_elsewhere_even_from_bytes() -> None:
    data = (GEOIP_DIR / "GeoLite2-Country-Test.mmdb").read_bytes()
    lookup = CountryLookup(maxminddb.open_database(io.BytesIO(data), maxminddb.MODE_FD), "in-memory copy")
    assert lookup.country(ip("81.2.69.142")) == "GB"
    assert "in-memory copy" in repr(lookup)
    lookup.close()


def test_lookup_keeps_working_from_a_copied_file(tmp_path: Path) -> None:
    copy = tmp_path / "geo.mmdb"
    shutil.copy(GEOIP_DIR / "GeoLite2-Country-Test.mmdb", copy)
    lookup = open_country_lookup(copy)
    assert lookup.country(ip("81.2.69.142")) == "GB"
    lookup.close()


_REWRITE_IN_PLACE = """
import ipaddress, sys
from pathlib import Path
from govgate.files import open_country_lookup
path = Path(sys.argv[1])
lookup = open_country_lookup(path)
good = path.read_bytes()
for rewrite in (b"", good[: len(good) // 3], b"\\0" * len(good)):
    path.write_bytes(rewrite)  # truncated first, as cp, curl -o and wget -O write
    print(lookup.country(ipaddress.ip_address(sys.argv[2])), flush=True)
"""


@pytest.mark.parametrize("database", ["GeoLite2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb"])
def test_a_database_rewritten_in_place_under_the_lookup_changes_nothing(tmp_path: Path, database: str) -> None:
    # Found in review: the reader mapped the live file, and a truncated file killed the gateway with SIGBUS on the
    # next lookup (no log line, no audit record). The lookup reads its own copy. In a child process: a SIGBUS
    # there is a failed test, not a dead test run.
    copy = tmp_path / "geo.mmdb"
    shutil.copy(GEOIP_DIR / database, copy)
    done = subprocess.run([sys.executable, "-c", _REWRITE_IN_PLACE, str(copy), "81.2.69.142"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.split()) == (0, ["GB", "GB", "GB"]), done.stderr[-2000:]


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.1", "192.168.9.9", "127.0.0.1", "169.254.3.4",
                                     "100.64.1.1", "::1", "fe80::1", "fd12:3456::1", "fc00::1", "::ffff:10.0.0.1"])
def test_private_loopback_link_local_and_ula_addresses_are_always_home(address: str) -> None:
    assert is_always_home(ip(address))


@pytest.mark.parametrize("address", ["81.2.69.142", "8.8.8.8", "2001:218::1", "172.32.0.1", "192.169.0.1"])
def test_public_addresses_are_not_always_home(address: str) -> None:
    assert not is_always_home(ip(address))
