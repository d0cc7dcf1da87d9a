"""Eight scm processes racing to create the same thing: exactly one wins.

The state directory's lock makes check-and-create atomic across processes; the losers
exit non-zero with a one-line message saying the thing exists (or, past the lock's
timeout, who holds the lock), and what the winner made is whole.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cryptography import x509

from tests.crash_harness import SCM, scm_env

RACERS = 8


def _race(state: Path, *args: str) -> list[subprocess.CompletedProcess[str]]:
    env = scm_env(state)
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen([SCM, *args], stdout=pipe, stderr=pipe, env=env, text=True)
        for _ in range(RACERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _one_winner(results: list[subprocess.CompletedProcess[str]], lost: str) -> None:
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [r.stderr for r in results]
    for loser in results:
        if loser.returncode == 0:
            continue
        assert loser.stderr.count("\n") == 1, loser.stderr  # one line, no traceback
        assert lost in loser.stderr or "another scm process holds" in loser.stderr, loser.stderr


def _run(state: Path, *args: str) -> str:
    result = subprocess.run(
        [SCM, *args], capture_output=True, text=True, timeout=120, env=scm_env(state)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_eight_ca_init_on_a_fresh_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # Fresh: the racers also race to create the embedded token.
    _one_winner(_race(state, "ca", "init"), "a CA exists already")
    keys = json.loads(_run(state, "keys", "list", "--format", "json"))
    assert [k["label"] for k in keys] == ["scm-ca"]
    ca = x509.load_pem_x509_certificates((state / "ca" / "ca.pem").read_bytes())[0]
    _run(state, "keys", "generate", "w")
    csr = tmp_path / "w.csr"
    _run(
        state, "ca", "csr", "w", "--namespace", "n", "--service-account", "s", "--output", str(csr)
    )
    for _ in range(3):
        leaf = x509.load_pem_x509_certificates(
            _run(state, "ca", "issue", "--csr", str(csr)).encode()
        )[0]
        leaf.verify_directly_issued_by(ca)


def test_eight_keys_generate_of_one_label(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _run(state, "keys", "list")
    _one_winner(_race(state, "keys", "generate", "L"), "a key labelled 'L' exists already")
    keys = json.loads(_run(state, "keys", "list", "--format", "json"))
    assert [k["label"] for k in keys] == ["L"]
