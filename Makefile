# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Every install is pinned by a constraints file per Airflow line (scripts/resolve_constraints.sh
# writes them): .venv is the newest line, .venvs/airflow-X.Y the older ones of the version matrix.
CONSTRAINTS := constraints/airflow-3.3.txt
COMPAT_VERSIONS ?= 2.11 3.0 3.1 3.2
COMPAT_STAMPS := $(foreach v,$(COMPAT_VERSIONS),.venvs/airflow-$(v)/.installed-stamp)

.PHONY: install demo test lint unit test-e2e bench clean test-compat compat-install install-deployment \
	bench-deployment
.PRECIOUS: .venvs/airflow-%/.installed-stamp

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The CeleryExecutor deployment (Postgres + Redis) of the e2e tests and `make bench-deployment`: the
# celery provider, celery[redis] and psycopg2 go into .venv with the same constraints, pinned in
# requirements/deployment-celery.txt. `make install` alone does not bring them.
DEPLOY_REQUIREMENTS := requirements/deployment-celery.txt
DEPLOY_STAMP := $(VENV)/.deployment-stamp
$(DEPLOY_STAMP): $(STAMP) $(DEPLOY_REQUIREMENTS) $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -r $(DEPLOY_REQUIREMENTS)
	touch $(DEPLOY_STAMP)

install-deployment: $(DEPLOY_STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The whole suite: lint, unit, integration (emulator, S3 server, dag.test) and e2e (real deployment).
test: lint install-deployment
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-e2e: install-deployment
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## The example DAG end to end against the bundled emulator; videos land under ./demo-output/.
## The vendor's dialect: `make demo API=minimax` (ppinfra, novita or minimax; default ppinfra).
API ?= ppinfra
demo: install
	HAILUO_DEMO_API=$(API) $(BIN)/python scripts/demo.py

## The version matrix: unit and integration tests on each older Airflow line (COMPAT_VERSIONS), one
## virtualenv per line under .venvs/. e2e stays on the newest line (`make test`).
## One line only: `make test-compat COMPAT_VERSIONS=3.1`; `COMPAT_JOBS=1` runs the lines one at a time.
test-compat: compat-install
	MAKE="$(MAKE)" bash scripts/test_compat.sh $(COMPAT_VERSIONS)

compat-install: $(COMPAT_STAMPS)

compat-%: .venvs/airflow-%/.installed-stamp
	.venvs/airflow-$*/bin/python -m pytest tests/unit tests/integration $(PYTEST_ARGS)

# A changed constraints file or pyproject rebuilds the line's virtualenv from nothing.
.venvs/airflow-%/.installed-stamp: pyproject.toml constraints/airflow-%.txt
	rm -rf .venvs/airflow-$*
	$(PYTHON) -m venv .venvs/airflow-$*
	.venvs/airflow-$*/bin/python -m pip install --quiet --upgrade pip
	.venvs/airflow-$*/bin/python -m pip install --quiet -c constraints/airflow-$*.txt -e ".[dev]"
	touch $@

bench: install
	$(BIN)/python benchmarks/run_all.py

## A real CeleryExecutor deployment (Postgres, Redis, two triggerers, an 8-slot worker) runs N videos
## through the example DAG; Airflow's CPU per video by component (~15 min for N=50).
N ?= 50
bench-deployment: install-deployment
	$(BIN)/python benchmarks/bench_deployment.py --videos $(N) --append-results

clean:
	rm -rf $(VENV) .venvs demo-output .pytest_cache .mypy_cache .ruff_cache
