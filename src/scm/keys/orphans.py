"""Which keys in the token nothing uses: made by scm for a record that does not exist.

scm names the keys it makes for its own records: the CA's key (``ca.key_label``) and the
SDS server's workload keys (``sds-*``). Such a key that no record under the state
directory names is an orphan, left by an interrupted ``ca init`` or issuance, or by a
switch of key mode. Keys a user made or imported under other labels are the user's and
never orphans. Staging objects are the leftovers of interrupted changes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from scm.keys import staging
from scm.keys.model import KeyInfo

#: Label prefix of the SDS server's workload keys.
SDS_KEY_PREFIX = "sds-"


class KeyState(enum.Enum):
    IN_USE = "in use"
    USER = "user"  # not scm's to judge
    ORPHAN = "orphan"
    STAGING = "staging"


@dataclass(frozen=True)
class KeyClaims:
    """The labels scm's records name, and the labels scm makes keys under."""

    claimed: frozenset[str]
    ca_key_label: str

    def state(self, label: str) -> KeyState:
        if staging.is_staging(label):
            return KeyState.STAGING
        if label in self.claimed:
            return KeyState.IN_USE
        if label == self.ca_key_label or label.startswith(SDS_KEY_PREFIX):
            return KeyState.ORPHAN
        return KeyState.USER

    def leftovers(self, keys: Iterable[KeyInfo]) -> list[KeyInfo]:
        """Keys ``scm keys prune`` removes: orphans and staging keys."""
        return [k for k in keys if self.state(k.label) in (KeyState.ORPHAN, KeyState.STAGING)]
