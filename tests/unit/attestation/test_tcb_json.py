"""TCB Info levels are converted lazily, but every level is still checked when it is parsed.

The real TCB Info of a case is edited in its last level, which matching never reaches for
that case's platform: parsing must still refuse it, as it did when every level was built.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from scm.attestation import tcb, tcb_json
from scm.attestation.errors import CollateralError
from tests.attestation_cases import case

SGX = "sgx_v3_processor_cfg_swhardening"  # 11 levels, v3


def _edited_last_level(edit: Any) -> str:
    doc = json.loads(case(SGX).collateral.tcb_info)
    edit(doc["tcbLevels"][-1])
    return json.dumps(doc)


def test_collateral_statuses_are_the_ones_the_decoder_accepts() -> None:
    assert set(get_args(tcb_json.Status)) == set(tcb.COLLATERAL_STATUSES)


def test_levels_are_built_only_when_matching_reaches_them() -> None:
    info = tcb.parse_tcb_info(case(SGX).collateral.tcb_info)
    assert isinstance(info.levels, tcb.TcbLevels)
    assert info.levels._levels.count(None) == len(info.levels)
    first = info.levels[0]
    tcb.match_platform(info, first.sgx_components, first.pce_svn, None)
    assert info.levels._levels.count(None) == len(info.levels) - 1
    assert [level.status for level in info.levels][:1] == [first.status]


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("an unknown status", lambda level: level.update(tcbStatus="Fine")),
        ("15 SGX components", lambda level: level["tcb"]["sgxtcbcomponents"].pop()),
        ("17 SGX components", lambda level: level["tcb"]["sgxtcbcomponents"].append({"svn": 1})),
        ("an SVN that is not a number", lambda level: level["tcb"].update(pcesvn="11")),
        ("no TCB", lambda level: level.pop("tcb")),
    ],
)
def test_a_bad_level_that_matching_never_reaches_is_still_malformed(what: str, edit: Any) -> None:
    text = _edited_last_level(edit)
    with pytest.raises(CollateralError, match="TCB Info is malformed"):
        tcb.parse_tcb_info(text)


def test_an_unknown_tcb_info_version_is_malformed() -> None:
    doc = json.loads(case(SGX).collateral.tcb_info)
    doc["version"] = 4
    with pytest.raises(CollateralError, match="TCB Info is malformed"):
        tcb.parse_tcb_info(json.dumps(doc))


def test_a_v2_level_needs_all_sixteen_named_components() -> None:
    doc = json.loads(case(SGX).collateral.tcb_info)
    doc["version"] = 2
    for level in doc["tcbLevels"]:
        components = level["tcb"].pop("sgxtcbcomponents")
        for i, component in enumerate(components, 1):
            level["tcb"][f"sgxtcbcomp{i:02d}svn"] = component["svn"]
    v2 = tcb.parse_tcb_info(json.dumps(doc))
    v3 = tcb.parse_tcb_info(case(SGX).collateral.tcb_info)
    assert v2.version == 2
    assert list(v2.levels) == list(v3.levels)
    del doc["tcbLevels"][-1]["tcb"]["sgxtcbcomp16svn"]
    with pytest.raises(CollateralError, match="TCB Info is malformed"):
        tcb.parse_tcb_info(json.dumps(doc))
