"""GovGate as a mitmproxy script:

    mitmdump -s addons/govgate.py --set govgate_policy=policy.yaml

(or ``mitmweb``, or beside scripts of one's own; docs/operations.md, "Inside a stock mitmproxy"). It only hands
mitmproxy the ``GovGate`` addon (``govgate.addons.standalone``), from the environment GovGate is installed in.
"""

import os
import sys

# mitmproxy puts this script's folder first on sys.path while loading it (and leaves it there), and this file is
# called govgate.py: ``import govgate`` would find this file instead of the package. Take the folder out first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

from govgate.addons.standalone import GovGate  # noqa: E402

addons = [GovGate()]
