"""GovGate: an access-control gateway for government staff portals.

The package holds the pure core (``govgate.core``: policy, decisions, crypto helpers, link
rewriting, audit chain), the state store (``govgate.store``) and the command line
(``govgate.cli``). The mitmproxy glue lives in the top-level ``addons`` package.
"""

__version__ = "0.1.0"
