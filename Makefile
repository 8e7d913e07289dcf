# labctl — make lab (bring the seed lab up) and make test (every test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SEED := topologies/nat-t-two-clients.yaml
PYTEST_ARGS ?=
FLEET_CLIENTS ?= 1000
SCALE_CLIENTS ?= 10 50 200
INTEROP_ROUNDS ?= 3
BENCH_REFERENCE ?=

.PHONY: help deps install images lab down test unit e2e matrix bench bench-report lint schema clean

help:
	@echo "make lab    install, build images, bring the seed lab up and show its state"
	@echo "make test   unit + integration + end-to-end tests (JUnit XML in reports/)"
	@echo "make matrix every scenario for each gateway x client implementation (slow; not in make test)"
	@echo "make bench  benchmarks, results in bench/results/, the README performance table"
	@echo "make down   remove the seed lab"

deps:
	@scripts/host-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: deps $(VENV)/.installed

# strongswan too: make test's interop lab runs on it (built here, not inside a test's timeout)
images: install
	$(PY) -m labctl images build base node vpn strongswan

lab: images
	$(PY) -m labctl up $(SEED)
	@scripts/show-lab.sh $(PY) $(SEED)

down: install
	$(PY) -m labctl down $(SEED)

test: images
	@mkdir -p reports
	$(PY) -m pytest tests -ra --durations=40 --junitxml=reports/junit.xml $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests/unit -q

e2e: images
	@mkdir -p reports
	$(PY) -m pytest tests/e2e -ra --junitxml=reports/junit-e2e.xml $(PYTEST_ARGS)

# The seed scenarios for {ours, strongswan} gateways x {ours, strongswan, vpnc} clients:
# a fresh lab per case and combination (hours on a 2-core machine), so not in `make test`.
# Combinations a topology cannot express are reported "not applicable" with the reason.
matrix: images
	@mkdir -p reports/matrix
	$(PY) -m labctl images build strongswan
	$(PY) -m labctl test --matrix topologies --report-dir reports/matrix $(MATRIX_ARGS)

bench: images
	@mkdir -p bench/results
	$(PY) bench/bench_lab.py --out bench/results/lab.json
	$(PY) bench/bench_ike.py $(if $(BENCH_REFERENCE),--compare $(BENCH_REFERENCE)) --out bench/results/ike.json
	$(PY) bench/bench_esp.py --out bench/results/esp.json
	$(PY) bench/bench_vpn.py --out bench/results/vpn.json
	$(PY) bench/bench_tcp.py --repeat 3 --out bench/results/tcp.json
	$(PY) bench/bench_interop.py --rounds $(INTEROP_ROUNDS) --out bench/results/interop.json
	/usr/bin/python3 bench/bench_dataplane_paths.py --out bench/results/dataplane_paths.json
	$(PY) bench/bench_scale.py --clients $(SCALE_CLIENTS) $(if $(BENCH_REFERENCE),--compare $(BENCH_REFERENCE)) --out bench/results/scale.json
	$(PY) bench/bench_fleet.py --clients $(FLEET_CLIENTS) --out bench/results/fleet.json
	$(PY) bench/report.py --readme README.md

bench-report: install
	$(PY) bench/report.py --readme README.md

lint: install
	$(VENV)/bin/ruff check labctl tests bench
	$(VENV)/bin/ruff format --check labctl tests bench
	$(VENV)/bin/mypy

schema: install
	$(PY) -m labctl schema > topologies/labctl.schema.json

clean:
	rm -rf $(VENV) reports .pytest_cache
