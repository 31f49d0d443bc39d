# chatire: `make run` starts the daemon, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)
LISTEN ?= tcp:8000:interface=127.0.0.1
DB ?= sqlite:///chatire.db
BUS ?= memory://

.PHONY: run test lint typecheck pytest services browser tools bench soak ha docs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(VENV)/bin/python setup.py
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/twistd --help | grep chatire > /dev/null
	$(VENV)/bin/twistd -n --pidfile= chatire --listen '$(LISTEN)' --db '$(DB)' --bus '$(BUS)'

services:
	bash .ci/ensure-services

browser:
	bash .ci/ensure-browser

tools:
	bash .ci/ensure-nginx

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Three workers on two cores: the suite waits on real daemons, brokers, browsers and
# expiry timers more than it computes; a file's tests stay on one worker (its fixtures
# are shared).
pytest: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 3 --dist loadfile $(PYTEST_ARGS)

test: $(STAMP) services browser tools
	$(VENV)/bin/twistd --help | grep chatire > /dev/null
	$(MAKE) lint
	$(MAKE) pytest

bench: $(STAMP) services
	$(PY) -m pip install -q -r bench/requirements.txt
	timeout 3600 $(PY) -m bench all --short

# Refresh docs/screenshot.png from the browser suite's two-person chat (make test never
# writes into the tree).
docs: $(STAMP) browser
	CHATIRE_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(PY) -m pytest -q \
		tests/browser/test_ui.py::test_invite_live_chat_history_and_reconnect

soak: $(STAMP) services
	$(PY) -m pytest -q tests/soak --soak

# Failover on servers of its own (a RabbitMQ cluster, a PostgreSQL primary + standby, from
# Debian's packages under a temporary directory: never the machine's); adds its figures
# to docs/reliability.md. Not part of `make test`.
ha: $(STAMP)
	$(PY) -m pytest -q -s tests/ha --ha

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
