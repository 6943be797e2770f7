"""The pure core: plain functions of (request facts, policy, now).

Nothing under ``govgate.core`` imports mitmproxy or redis (a test checks this), calls
``datetime.now()`` or blocks on the network: the callers pass ``now`` and the facts in.
"""
