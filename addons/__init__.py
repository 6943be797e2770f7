"""Scripts that load GovGate into a stock mitmproxy (``mitmdump -s addons/govgate.py``; see docs/operations.md).

The addons themselves are ``govgate.addons``, inside the package, so that installing GovGate puts nothing but
``govgate`` into site-packages; this folder is not installed.
"""
