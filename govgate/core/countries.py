"""ISO 3166-1 alpha-2: the country codes GeoIP databases return and grants and ``home_countries`` name.

Art. 19 (第十九条): overseas access is opened by whitelist for set times, devices or accounts — a grant
naming a code no database ever returns (``UK`` for the United Kingdom, a user-assigned ``ZZ``) would be
silently dead, so the policy validator refuses codes that are not assigned, and suggests the code meant
for the usual confusions. The table is the 249 officially assigned codes (ISO 3166 Maintenance Agency), and XK.
"""

from __future__ import annotations

_TABLE = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
# XK (Kosovo) is user-assigned, but GeoIP databases (MaxMind) return it, so a grant may name it.
ASSIGNED = frozenset(_TABLE.split()) | {"XK"}

# Codes people write that ISO does not assign to a country, and the code they meant.
MEANT = {"UK": "GB", "EL": "GR", "EN": "GB", "KO": "KR", "JA": "JP", "DA": "DK", "SW": "SE"}


def country_problem(code: str) -> str | None:
    """Why ``code`` (upper case, two letters) is not an assigned ISO 3166-1 alpha-2 country code, or None."""
    if code in ASSIGNED:
        return None
    meant = MEANT.get(code)
    if meant is not None:
        return f"{code!r} is not an ISO 3166-1 country code; did you mean {meant!r}?"
    if code in ("AA", "ZZ") or code.startswith("X") or "QM" <= code <= "QZ":
        return f"{code!r} is a user-assigned code, not a country; expected an assigned ISO 3166-1 code like GB"
    return f"{code!r} is not an assigned ISO 3166-1 country code; expected one like GB, JP or US"
