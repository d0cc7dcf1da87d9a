"""The guest image gets only GUEST_REQUIREMENTS (and what they require) beside scm itself.

The boot test (tests/integration/image, `make test-images`) finds a missing wheel only after
building and booting an image; this runs the guest's two commands here, in an interpreter
that refuses to import any third-party module the guest would not have.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scm.image.customize import GUEST_REQUIREMENTS

HOST = Path(__file__).parents[2] / "fixtures" / "hosts" / "tdx-host" / "root"

# The guest has these wheels and what they require; importing anything else fails, as it
# would there (the standard library and scm itself are always present).
_ONLY_GUEST_MODULES = """
import importlib.abc, sys
allowed = set(sys.argv[1].split(",")) | set(sys.stdlib_module_names) | {"scm"}
class GuestOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in allowed:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, GuestOnly())
sys.argv = ["scm", *sys.argv[2:]]
from scm.cli.main import main
main()
"""


def _guest_modules() -> str:
    """Top-level import names of GUEST_REQUIREMENTS and everything they require here."""
    wanted, seen = list(GUEST_REQUIREMENTS), set()
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    modules = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in seen for d in distributions)
    }
    return ",".join(sorted(modules))


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "--format", "json", "--root", str(HOST)],
        ["attest", "quote", "--report-data", "0" * 128],
    ],
    ids=["inspect", "attest-quote"],
)
def test_guest_commands_need_no_module_beyond_the_guest_wheels(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ONLY_GUEST_MODULES, _guest_modules(), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "internal error" not in done.stderr, done.stderr
    assert "ModuleNotFoundError" not in done.stderr, done.stderr
    if args[0] == "inspect":
        assert done.returncode == 0, done.stderr
    else:  # no TEE here, as in the TCG guest the boot test starts: one clean line
        assert done.stderr.startswith("scm: error: no TEE quote interface"), done.stderr
