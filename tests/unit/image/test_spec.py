"""`scm image build` arguments are checked before any long work starts."""

from __future__ import annotations

import pytest

from scm.image.errors import ImageSpecError
from scm.image.spec import GIB, make_spec, parse_size

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1aM6tmmXPHIjTt0vVDmYEOTIdE2KoZuuE4c1vlzW2i op@laptop"


@pytest.mark.parametrize(("text", "size"), [("4G", 4 * GIB), ("4GiB", 4 * GIB), ("512M", 1 << 29)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_good_spec(tmp_path):
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    spec = make_spec("sgx", "trixie", "8G", tmp_path / "g.qcow2", "ops", key, ("htop",))
    assert spec.release.kernel_suite == "trixie"
    assert spec.ssh_key == KEY
    assert make_spec("tdx", "bookworm", "4G", tmp_path / "g.raw").release.kernel_suite == (
        "bookworm-backports"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tdx", "buster", "4G"), "unknown release 'buster'"),
        (("sev", "bookworm", "4G"), "unknown TEE 'sev'"),
        (("tdx", "bookworm", "1G"), "too small"),
        (("tdx", "bookworm", "lots"), "not a size"),
        (("tdx", "bookworm", "99999999999999T"), "too large: scm builds images of at most 64T"),
    ],
)
def test_bad_arguments(tmp_path, args, message):
    with pytest.raises(ImageSpecError, match=message):
        make_spec(*args, tmp_path / "g.qcow2")


@pytest.mark.parametrize("user", ["root", "nobody", "_apt"])
def test_a_system_account_is_not_a_login_user(tmp_path, user):
    key = tmp_path / "id.pub"
    key.write_text(KEY + "\n")
    with pytest.raises(ImageSpecError, match=f"user name '{user}' is a system account"):
        make_spec("tdx", "bookworm", "4G", tmp_path / "g.qcow2", user, key)


def test_existing_output_is_never_overwritten(tmp_path):
    out = tmp_path / "g.qcow2"
    out.write_text("precious")
    with pytest.raises(ImageSpecError, match="exists"):
        make_spec("tdx", "bookworm", "4G", out)
    assert out.read_text() == "precious"


def test_ssh_key_problems(tmp_path):
    out = tmp_path / "g.qcow2"
    with pytest.raises(ImageSpecError, match="does not exist"):
        make_spec("tdx", "bookworm", "4G", out, "ops", tmp_path / "missing.pub")
    private = tmp_path / "id"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    with pytest.raises(ImageSpecError, match="private key"):
        make_spec("tdx", "bookworm", "4G", out, "ops", private)
    with pytest.raises(ImageSpecError, match="go together"):
        make_spec("tdx", "bookworm", "4G", out, "ops", None)
    good = tmp_path / "id.pub"
    good.write_text(KEY)
    with pytest.raises(ImageSpecError, match="not a valid Linux user"):
        make_spec("tdx", "bookworm", "4G", out, "Root!", good)
