"""The ``scm`` command: one thin module per domain, no logic of its own."""
