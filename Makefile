# Everything needed on a fresh Debian 12 machine that has only Python.
#   make run    install if needed, then run scm's main job (scm up)
#   make inspect  install if needed, then print this host's SGX/TDX report
#   make test   install if needed, then lint, type-check and run every test

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
EXTRAS   := dev,openstack
# Debian packages scm needs, one per line in apt-packages.txt.
APT_PACKAGES := $(shell grep -v '^\#' apt-packages.txt 2>/dev/null)
# .proto files the project wrote; their Python modules are generated at install into src/.
PROTOS := $(shell find protos -name '*.proto' 2>/dev/null)

.PHONY: install apt venv test test-images lint typecheck unit run inspect bench constraints clean

install: apt $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt apt-packages.txt $(PROTOS) shims/nova-scm-libvirt/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "scm needs Python 3.11 or newer"; exit 1; }
	@test -x $(BIN)/python || { echo "creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing scm (editable, extras $(EXTRAS)) and $$(grep -c '^[A-Za-z0-9]' constraints.txt) pinned" \
	  "Python packages from constraints.txt into $(VENV): a few minutes on a fresh machine"
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	@echo "installing the nova.virt shim (shims/nova-scm-libvirt) and linking nova's etc/nova"
	@# OpenStack: the nova.virt shim for scm's driver, and nova's etc/nova where nova's own
	@# code looks for it (next to site-packages; pip puts it under the venv's prefix).
	$(BIN)/pip install -q --disable-pip-version-check --no-deps ./shims/nova-scm-libvirt
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  mkdir -p $$site/etc && ln -sfn $$(pwd)/$(VENV)/etc/nova $$site/etc/nova
	@if [ -n "$(PROTOS)" ]; then \
	  echo "generating gRPC modules from $(PROTOS)"; \
	  $(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=src --pyi_out=src \
	    --grpc_python_out=src $(PROTOS); \
	fi
	touch $(STAMP)
	@echo "installed: $(BIN)/scm ($$($(BIN)/scm --version)); Debian packages: $(APT_PACKAGES)"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# nova's tests monkey-patch the process with eventlet, so they get a pytest run of their own.
unit: install
	$(BIN)/pytest -q
	SCM_NOVA_SUITE=1 $(BIN)/pytest -q tests/integration/openstack/nova_functional

test: lint typecheck unit

# Builds TDX and SGX guest images and boots one under QEMU (several minutes; CI runs it too).
test-images: install
	$(BIN)/pytest -q -m image tests/integration/image

# scm up: the SDS server, the local CA and a real Envoy serving TLS (Ctrl-C stops it all).
run: install
	$(BIN)/scm up

# The host report: what can this machine do for SGX and TDX?
inspect: install
	$(BIN)/scm inspect

bench: install
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS),bench]'
	@for b in bench/*.py; do echo "== $$b"; PYTHONPATH=. $(BIN)/python $$b || exit 1; done

# Re-pin constraints.txt to what the venv holds now.
constraints: install
	{ echo "# Exact versions of everything scm installs (make constraints regenerates it)."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v -E '^(scm|pip)=='; } > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
