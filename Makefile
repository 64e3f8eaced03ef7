# `make demo` and `make test` set up everything they need (virtualenv, package, npm packages).
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
# The oldest supported Python (requires-python), beside the newest: make test runs the suite on both.
PYTHON_OLDEST ?= $(shell scripts/find-python --oldest)
VENV_OLDEST := .venv-oldest
BIN_OLDEST := $(VENV_OLDEST)/bin
INTEROP := tests/interop
BENCH_NODE := bench/node
DURATION ?=
# make demo PORT=5050 when 5000 is taken.
PORT ?=

.PHONY: demo cluster-demo dist test lint typecheck unit interop-deps system-deps bench bench-cluster bench-replay soak verify-figures sentinel-failover clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(BIN_OLDEST)/.installed: pyproject.toml
	@test -x $(BIN_OLDEST)/python || $(PYTHON_OLDEST) -m venv $(VENV_OLDEST)
	$(BIN_OLDEST)/python -m pip install --quiet --upgrade pip
	$(BIN_OLDEST)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(INTEROP)/node_modules/.installed: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: $(BIN)/.installed
	$(BIN)/intraday-live-server demo $(if $(PORT),--port $(PORT)) $(if $(DURATION),--duration $(DURATION))

# A cluster on this machine: a redis-server of its own on a free port (make system-deps installs
# it with apt-get; elsewhere: apt-get install redis-server, or brew install redis), three nodes,
# the simulated feed on one and the dashboard on another. Stops all it started; exits 1 if no
# event crossed the nodes.
cluster-demo: $(BIN)/.installed system-deps
	$(BIN)/intraday-live-server cluster-demo --nodes 3 $(if $(DURATION),--duration $(DURATION))

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

interop-deps: $(INTEROP)/node_modules/.installed

# chromium (browser tests) and redis-server (store tests), from Debian's packages.
system-deps:
	@scripts/install-system-deps

# The whole suite on the newest Python (with branch coverage, failing below
# [tool.coverage.report] fail_under in pyproject.toml) and on the oldest supported one, both at
# once (scripts/test-pythons): a race that one interpreter hides, the other shows.
test: $(BIN)/.installed $(BIN_OLDEST)/.installed interop-deps system-deps lint typecheck
	scripts/test-pythons $(BIN)/python $(BIN_OLDEST)/python

# The sdist and the wheel, into dist/ (install with: pip install 'dist/intraday_live-*.whl[server]').
dist: $(BIN)/.installed
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

# socket.io 4.8 and socket.io-client of the Node.js baseline: installed here, never by make test.
$(BENCH_NODE)/node_modules/.installed: $(BENCH_NODE)/package.json $(BENCH_NODE)/package-lock.json
	cd $(BENCH_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Ours against a Node.js socket.io server (bench/compare.py, docs/operations.md#benchmarks): an
# unpaced burst (CPU, throughput, memory), then 150 broadcasts a second, a load every server
# sustains (latency); then python-socketio on uvicorn against aiohttp (bench/fanout_transport.py).
bench: $(BIN)/.bench-installed $(BENCH_NODE)/node_modules/.installed
	$(BIN)/python bench/compare.py --clients 500 --messages 200 --rounds 3 --idle 5000 --inflight 16
	$(BIN)/python bench/compare.py --clients 500 --messages 400 --rounds 3 --idle 0 --inflight 16 --rate 150 --variants node,ours,ours-batch
	$(BIN)/python bench/fanout_transport.py --clients 500 --messages 200 --rounds 3

# Not part of make test: 1,000 connections x 10 msg/s for 10 minutes (SOAK_* variables shrink it).
soak: $(BIN)/.installed
	scripts/soak

# intraday-live verify's figures for docs/delivery.md (memory, Redis, no store; drops, restarts).
verify-figures: $(BIN)/.installed system-deps
	scripts/verify-figures
# Resume latency and replay throughput (Redis restart and memory-store proxy cut), and the
# store's cost on the fan-out path; starts its own redis-server (make system-deps).
# A cluster's fan-out: one node without Redis, one and two cluster nodes; the Redis hop's cost;
# RSS per connection of a cluster node at 5,000 (docs/cluster.md). Its own redis-server.
bench-cluster: $(BIN)/.bench-installed $(BENCH_NODE)/node_modules/.installed system-deps
	$(BIN)/python bench/cluster.py --clients 500 --messages 200 --rounds 3 --idle 5000

# Redis Sentinel failovers with real processes (a primary, a replica, three sentinels, the
# nodes), run on their own with the failover times printed (SIGKILL of the primary -> first
# broadcast answered 200); make test runs the same tests, silently.
sentinel-failover: $(BIN)/.installed system-deps
	REQUIRE_REDIS=1 $(BIN)/python -m pytest -s -q tests/cluster/test_sentinel.py

bench-replay: $(BIN)/.bench-installed system-deps
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) $(VENV_OLDEST) dist $(INTEROP)/node_modules $(BENCH_NODE)/node_modules .mypy_cache .ruff_cache .pytest_cache .coverage
