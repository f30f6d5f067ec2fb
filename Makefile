# A newcomer's two commands: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: install demo test lint format soak bench clean

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

## make demo: the demo CRM with the Xero sandbox and a worker on http://127.0.0.1:8000
demo: install
	$(PY) -m crm_demo.demo prepare
	$(PY) -m crm_demo.demo run

## make test: the whole suite on SQLite, or on PostgreSQL when DATABASE_URL is set
test: install
	$(PY) -m pytest -n auto --maxprocesses=4

## make soak: the chaos soak, full length: worker clusters on PostgreSQL and Redis push
## SOAK_INVOICES invoices through lost answers, 429 storms, killed workers and a broker outage
SOAK_INVOICES ?= 2000
SOAK_MAX_SECONDS ?= 900
soak: install
	SOAK_INVOICES=$(SOAK_INVOICES) SOAK_MAX_SECONDS=$(SOAK_MAX_SECONDS) $(PY) -m pytest -m soak tests/soak

## make bench: the benchmarks against the sandbox at Xero's limits, on PostgreSQL (DATABASE_URL)
## and Redis (REDIS_URL); each writes its section and its rows of the Targets table in
## docs/benchmarks.md (about 12 minutes)
bench: install
	@test -n "$(DATABASE_URL)" -a -n "$(REDIS_URL)" || { echo "make bench measures the production shape: set DATABASE_URL (PostgreSQL) and REDIS_URL"; exit 1; }
	$(PY) -m benchmarks.targets --reset
	$(PY) -m benchmarks.lifecycle
	$(PY) -m benchmarks.burst
	$(PY) -m benchmarks.save_overhead
	$(PY) -m benchmarks.big_history
	$(PY) -m benchmarks.contact_import --contacts 20000
	$(PY) -m benchmarks.unreachable
	$(PY) -m benchmarks.sync

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var build dist *.egg-info .pytest_cache .ruff_cache
