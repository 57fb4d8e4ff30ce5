# The four commands. Each one creates/refreshes .venv with the machine's python3 first, so a fresh
# clone needs nothing else: `make test`, `make demo`, `make lint`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Exact versions of every dependency (dev and bench extras), resolved from PyPI for CPython 3.11 on
# linux x86_64 by `make lock`; installs take pyproject.toml's ranges narrowed to these pins.
LOCK := requirements.lock
PIP_VERSION := 26.3
UV_VERSION := 0.13.9

.PHONY: venv system-deps test demo lint format bench lock clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests run for real: promtool and the Prometheus server (the exporter's
# exposition, the alert rules and a real scrape of `ingmon serve`) and chromium (the dashboard's
# browser tests, driven by playwright; no browser download). Installed with apt-get when
# missing, as root (CI) or through a password-less sudo; otherwise one line says what to run.
SYSTEM_PACKAGES := prometheus chromium
system-deps:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
		&& command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "make: missing Debian packages: run 'sudo apt-get install $(SYSTEM_PACKAGES)'" >&2; exit 1; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }

# The unit tests and the notebooks' smoke run in one pytest: pyproject.toml's testpaths include
# notebooks/ and addopts --nbval-lax, which executes each notebooks/*.ipynb cell by cell.
test: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The demo ends on the live workbench: the local exchange in real time (3 symbols, 14 days backfilled
# into ./data), scored and backtested, then `ingmon worker` (a tick every 20 s) and `ingmon serve` on
# http://localhost:8080/dashboard (DEMO_PORT=… to change; logs in data/logs/) until Ctrl-C stops all.
DEMO_PORT ?= 8080
demo: venv
	$(BIN)/ingmon demo --serve --port $(DEMO_PORT)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

# --no-config: the lock comes from PyPI alone, whatever indexes pip or uv are configured with here.
# Needs only uv, not the installed venv, so it also works after pyproject.toml outgrew the old pins.
lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --no-config --quiet \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command 'make lock' --output-file $(LOCK)

$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
