"""What `scm up` says when Envoy refuses to start: the reason, on one line."""

from __future__ import annotations

from scm.sds.proxy import envoy_failure

REJECTED_BOOTSTRAP = """\
[2026-11-23 07:50:24.880][2644][info][main] [source/server/server.cc:430] starting
[2026-11-23 07:50:24.883][2644][critical][main] [server.cc:449] error initializing config
node {
  id: "scm-up"
}
: Proto constraint validation failed (ListenerValidationError: value must be less than 65536)
[2026-11-23 07:50:24.884][2644][info][main] [source/server/server.cc:1001] exiting
"""


def test_the_reason_of_a_multi_line_critical_record():
    assert envoy_failure(REJECTED_BOOTSTRAP) == (
        "Proto constraint validation failed (ListenerValidationError: value must be less than "
        "65536)"
    )


def test_a_one_line_critical_record_loses_only_its_prefix():
    log = "[2026-11-23 07:50:24.883][7][critical][main] [source/server/server.cc:449] bind failed\n"
    assert envoy_failure(log) == "bind failed"


def test_no_critical_record():
    assert envoy_failure("[2026-11-23 07:50:24.880][7][info][main] [x.cc:1] fine\n") is None
