# DL Studio — `make run` serves the product (embedded default), `make test` runs the whole suite.
# Every install step lives here, so a fresh clone needs only python3, node/npm and make.

SHELL := /bin/bash
PORT ?= 8000
HOST ?= 127.0.0.1
# The runner may later drop to an unprivileged uid, which cannot execute an interpreter under
# root's home (pyenv): prefer the system Python for the environment.
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || command -v python3)
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test setup browser sandbox-tools worker lint format bench clean

run: setup sandbox-tools
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: setup browser sandbox-tools
	bash tests/run.sh

setup: $(VENV)/.synced node_modules/.installed static/dist/.built staticfiles/.collected

worker: setup sandbox-tools
	$(VENV)/bin/python manage.py trainingworker

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: setup
	$(PY) -m bench.epoch_overhead
	$(PY) -m bench.first_epoch
	$(PY) -m bench.upload_schema --megabytes 200
	$(PY) -m bench.runner_memory --rows 1000000
	$(PY) -m bench.websocket_fanout
	$(PY) -m bench.api_status_load
	$(PY) -m bench.two_workers
	if [ -n "$$REDIS_URL" ] && [ -n "$$DATABASE_URL" ]; then \
	  $(PY) -m bench.websocket_fanout --distributed && $(PY) -m bench.api_status_load --distributed; fi

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

static/dist/.built: node_modules/.installed static/build.mjs $(wildcard static/src/*.js static/src/lib/*.js)
	npm run build
	touch $@

staticfiles/.collected: static/dist/.built $(wildcard static/css/*) $(VENV)/.synced
	$(PY) manage.py collectstatic --noinput --verbosity 0
	touch $@

# Debian's Chromium for the browser test (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# bubblewrap for the runner's sandbox (README "Sandbox"). Never fatal: without it (no apt-get, not
# root, no network) training still runs, degraded, and each session's page says so.
sandbox-tools:
	@command -v bwrap >/dev/null || ! command -v apt-get >/dev/null || \
	  ( if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bubblewrap) >/dev/null 2>&1 ) || \
	  echo "note: bubblewrap could not be installed; the runner will run without its sandbox (README, Sandbox)"

clean:
	rm -rf $(VENV) .tools node_modules static/dist staticfiles
