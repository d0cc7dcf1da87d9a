"""nova and ironic cannot share a process: both register conflicting oslo.config options and
pick different oslo.service backends at import. The ironic suite runs in its own interpreter
(test_ironic_suite.py); the main run leaves its directory alone."""

import os

IRONIC_SUITE_ENV = "SCM_IRONIC_SUITE"

collect_ignore = [] if os.environ.get(IRONIC_SUITE_ENV) else ["ironic_plugins"]
