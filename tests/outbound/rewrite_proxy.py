"""A bare mitmproxy in reverse mode running only the OutboundLinks addon (on ``InProcessRuntime``), for the
end-to-end tests of the addon through a real proxy. It runs in a process of its own:

    python -m tests.outbound.rewrite_proxy PORT UPSTREAM_PORT      (from the repository root)
"""

from __future__ import annotations

import asyncio
import sys
import warnings


def run(port: int, upstream_port: int) -> None:
    # mitmproxy's imports trip DeprecationWarnings (pyasn1 via ldap3); this process's output is not looked at.
    warnings.simplefilter("ignore")
    from mitmproxy import options
    from mitmproxy.tools.dump import DumpMaster

    from govgate.addons.outbound_links import OutboundLinks
    from tests.runtime import InProcessRuntime

    async def main() -> None:
        opts = options.Options(listen_host="127.0.0.1", listen_port=port,
                               mode=[f"reverse:http://127.0.0.1:{upstream_port}"])
        master = DumpMaster(opts, with_termlog=False, with_dumper=False)
        master.addons.add(OutboundLinks(InProcessRuntime()))  # type: ignore[no-untyped-call]
        await master.run()

    asyncio.run(main())


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]))
