"""Where the SDS server's workload keys are made, and how a Secret refers to them.

``hsm`` mode: keys are generated in the PKCS#11 token (never extractable) and the
Secret names them for Envoy's private key provider. ``software`` mode: keys live in
process memory and the Secret carries them inline, for stock Envoy.
"""

from __future__ import annotations

from dataclasses import dataclass

from scm.errors import ConfigError
from scm.keys import Keystore, KeyType, SoftwareKeystore
from scm.sds.credentials import HsmKey, InlineKey, PrivateKeyRef

HSM = "hsm"
SOFTWARE = "software"
KEY_MODES = (HSM, SOFTWARE)


@dataclass(frozen=True)
class LeafKeys:
    """A keystore for workload keys and the key mode that says how Envoy reaches them."""

    keystore: Keystore
    mode: str
    token_label: str = ""
    # The token, in software mode too: keys of hsm-mode records are retired from it.
    token: Keystore | None = None

    def __post_init__(self) -> None:
        if self.mode not in KEY_MODES:
            raise ConfigError(f"key mode {self.mode!r} is not one of {', '.join(KEY_MODES)}")
        if (self.mode == SOFTWARE) != isinstance(self.keystore, SoftwareKeystore):
            raise ConfigError(f"{self.mode} key mode cannot use keystore {self.keystore!r}")

    def reference(self, label: str, key_type: KeyType) -> PrivateKeyRef:
        """What the Secret carries for the key ``label``."""
        if isinstance(self.keystore, SoftwareKeystore):  # software mode, checked above
            return InlineKey(self.keystore.private_key_pem(label))
        return HsmKey(label, self.token_label, key_type.value)

    def delete_if_present(self, label: str, mode: str | None = None) -> None:
        """Delete the key ``label`` of key mode ``mode`` (default: this one) if it exists."""
        keystore = self._keystore_of(mode or self.mode)
        if keystore is not None and keystore.find(label) is not None:
            keystore.delete(label)

    def _keystore_of(self, mode: str) -> Keystore | None:
        if mode == self.mode:
            return self.keystore
        return self.token if mode == HSM else None  # another run's in-memory keys are gone
