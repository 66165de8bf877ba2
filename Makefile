# warmd: every target installs what it needs (venv, pip, Debian packages where missing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: venv system-deps bench-deps test demo bench chaos lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

# Install the Debian packages the tests and the demo use, only when a command is missing.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v memcached >/dev/null || missing="$$missing memcached"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v mkfs.ext4 >/dev/null || missing="$$missing e2fsprogs"; \
	command -v fsfreeze >/dev/null || missing="$$missing util-linux"; \
	command -v faketime >/dev/null || missing="$$missing faketime"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: venv system-deps
	$(BIN)/python -m pytest -q

demo: venv system-deps
	$(BIN)/warmd demo $(DEMO_ARGS)

# The peers each benchmark measures in the same run.
bench-deps: system-deps
	@missing=""; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v memcslap >/dev/null || missing="$$missing libmemcached-tools"; \
	command -v goaccess >/dev/null || missing="$$missing goaccess"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server etcd-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing benchmark peers:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

bench: venv bench-deps
	$(BIN)/pip install -q -e '.[test,bench]'
	@for b in bench/[a-z]*.py; do echo "== $$b"; $(BIN)/python $$b --quick || exit 1; done

chaos: venv system-deps
	$(BIN)/python -m chaos --nodes 5 --duration 120

lint: venv
	$(BIN)/ruff check warmd tests bench chaos

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
