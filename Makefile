# The two commands of README.rst:
#   examples/pingpong/run   runs the ping-pong example (calls `make venv`)
#   make test               installs what the suite needs, lints, then runs it
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the suite again, on the lowest versions setup.py allows (constraints/lowest.txt)
LOWEST ?= .venv-lowest

.PHONY: venv client node services test test-latest test-lowest lint bench docs clean

venv: $(VENV)/.installed client

# the socket.io-client bundle the package serves, fetched from the npm registry
# and checked against package-lock.json into tgext/socketio/static/ (git-ignored);
# nothing is fetched when it is there already (setup_client.py)
client:
	$(PYTHON) setup_client.py

$(VENV)/.installed: setup.py
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Python 3.10+ is needed; set PYTHON=python3.x")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing,pubsub,redis,metrics]'
	touch $@

node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# redis-server for the Redis tests (each test run starts its own on a free
# port), Chromium for the page tests and nginx for the load-balancer tests,
# from Debian when missing.
services:
	@command -v redis-server >/dev/null && command -v chromium >/dev/null \
	  && { command -v nginx >/dev/null || test -x /usr/sbin/nginx; } || { \
	  echo "installing redis-server, chromium and nginx with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    redis-server chromium nginx-light >/dev/null; }

# lint, then the two runs at once (their output each in one piece); each run
# on PYTEST_WORKERS processes (pytest-xdist): the tests mostly wait on sockets
# and timers, so two runs of two processes each keep the 2 cores busy
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL ?= -n $(PYTEST_WORKERS) --dist loadgroup

test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-latest test-lowest

# ruff with the rules of ruff.toml, on the newest versions' venv (ruff is in
# the [testing] extra); part of the test command, so CI enforces it
lint: venv
	$(BIN)/python -m ruff check tgext tests examples bench
	$(BIN)/python -m ruff format --check tgext

test-latest: venv node services
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# less the release's tests (they install PyPI's newest versions whatever
# venv runs them, so the newest versions' run covers them), plus the fuzz
# tests' whole corpus (2,000 examples per transport; 300 otherwise:
# tests/test_abuse.py), so the two runs take about as long
test-lowest: $(LOWEST)/.installed client node services
	TGEXT_SOCKETIO_FUZZ_EXAMPLES=2000 $(LOWEST)/bin/python -m pytest $(PYTEST_PARALLEL) -m "not release" $(PYTEST_ARGS)

$(LOWEST)/.installed: setup.py constraints/lowest.txt
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -c constraints/lowest.txt -e '.[testing,pubsub,redis,metrics]'
	touch $@

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# the documentation site, into docs/_build/html (tests/test_docs.py builds it too)
docs: venv
	$(BIN)/python -m sphinx -n -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) $(LOWEST) node_modules build dist *.egg-info docs/_build tgext/socketio/static
