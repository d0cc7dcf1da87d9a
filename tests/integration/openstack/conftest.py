"""nova and ironic each need a pytest process of their own.

- nova's test base monkey-patches the process with eventlet at import; collected beside
  the asyncio and subprocess tests of other domains, it makes them hang. `make test` runs
  nova_functional in a second pytest run with SCM_NOVA_SUITE=1.
- nova and ironic register conflicting oslo.config options and pick different
  oslo.service backends at import, so the ironic suite runs in its own interpreter
  (test_ironic_suite.py).
"""

import os

IRONIC_SUITE_ENV = "SCM_IRONIC_SUITE"
NOVA_SUITE_ENV = "SCM_NOVA_SUITE"

collect_ignore = [] if os.environ.get(IRONIC_SUITE_ENV) else ["ironic_plugins"]
if not os.environ.get(NOVA_SUITE_ENV):
    collect_ignore.append("nova_functional")
