from tests.keystores import label, raw_token, token_keystore, token_state_dir

__all__ = ["label", "raw_token", "token_keystore", "token_state_dir"]
