"""The pure core: plain functions of (request facts, policy, now).

Nothing under ``govgate.core`` imports mitmproxy or redis, reads or writes files, calls
``datetime.now()`` or blocks on the network (tests check the first three): the callers pass ``now``,
the facts and the files' bytes in. The files layer (``govgate.files``, ``govgate.accounts_file``)
does the reading and writing.
"""
