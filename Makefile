# seminar-ops: the doors a person uses. Needs only python3 (3.11+) and make; every
# target installs what it is missing first. POSIX make (recipes run with sh -e).
.POSIX:
.SUFFIXES:

PYTHON = python3
UV_VERSION = 0.13.9
TOOLS = .tools
VENV = .venv
# Never let uv fetch an interpreter: the system python3 is the one we use.
UV = UV_PYTHON_DOWNLOADS=never $(TOOLS)/bin/uv
# The stamp is inside the venv, so deleting .venv also forgets that it was synced.
SYNCED = $(VENV)/.synced
# `--no-sync`: the stamp already decided whether a sync is due (keeps warm runs fast).
RUN = $(UV) run --frozen --no-sync
STACK = $(VENV)/bin/python -m seminarops_devtools.devstack
PYTEST_ARGS =

help:
	@echo "make up       start broker, database and the four services (idempotent)"
	@echo "make down     stop what 'make up' started (the database files stay)"
	@echo "make status   what runs"
	@echo "make token    ROLE=participant SUB=p-1: a development JWT the services of 'make up' accept"
	@echo "make demo     load a multi-year demo season into the running stack (idempotent)"
	@echo "make test     lint, then the whole test suite against a real broker and database"
	@echo "make lint     ruff check, ruff format --check, mypy --strict"
	@echo "make bench    benchmarks/run.py"
	@echo "make soak     30 minutes at 100 requests/s (about 200 events/s) through every service, watched (not in CI)"
	@echo "make chaos    the fault suite (tests/chaos), the whole default stack's restarts included"
	@echo "make chaos-full  the fault suite at ten times the load (not in CI)"
	@echo "make compose-secrets  TLS certificates and passwords for docker-compose.yml (git-ignored; kept if present)"
	@echo "make docs     regenerate docs/asyncapi.json and docs/openapi/ from the code"
	@echo "make sync     install uv $(UV_VERSION) in $(TOOLS)/ and the locked environment in $(VENV)/"
	@echo "make clean    'make down', then DELETE .run/ (the broker's log, the database, logs) and caches"

sync: $(SYNCED)

$(TOOLS)/bin/uv:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "seminar-ops needs Python 3.11+ as $(PYTHON)" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS) || \
		{ echo "'$(PYTHON) -m venv' failed (Debian/Ubuntu: install python3-venv)" >&2; exit 1; }
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(TOOLS)/bin/uv uv.lock
	$(UV) sync --frozen
	touch $(SYNCED)

up: $(SYNCED)
	@$(STACK) up

down: $(SYNCED)
	@$(STACK) down

# Exit code 3 means "not everything runs": an answer, not a failure of make.
status: $(SYNCED)
	@$(STACK) status || test $$? -eq 3

# ROLE: operator, platform or participant (several: comma-separated); SUB: the participant id.
ROLE = participant
SUB = p-1
token: $(SYNCED)
	@$(VENV)/bin/python -m seminarops_devtools.tokens --role "$(ROLE)" --sub "$(SUB)"
# Through the public doors only (HTTP APIs, the inbound topic); a second run adds nothing.
demo: $(SYNCED)
	@$(VENV)/bin/python -m seminarops_devtools.demo

lint: $(SYNCED)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy shared/src devtools/src services/*/src

# pytest exits 5 when it collected nothing; a suite that ran nothing has not passed.
test: lint
	@rc=0; $(RUN) pytest -m "not heavy" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; fi; \
	exit $$rc

bench: $(SYNCED)
	$(RUN) python benchmarks/run.py

# Half an hour of steady mixed traffic, watched minute by minute (not in CI).
soak: $(SYNCED)
	$(RUN) python benchmarks/soak.py $(SOAK_ARGS)

FLOOD_TOOL := tests/chaos/flood/node_modules/.package-lock.json
$(FLOOD_TOOL): tests/chaos/flood/package-lock.json
	npm ci --prefix tests/chaos/flood --no-audit --no-fund

chaos: $(SYNCED) $(FLOOD_TOOL)
	$(RUN) pytest -m chaos tests/chaos $(PYTEST_ARGS)

# The fault suite at ten times the load (not in CI: about 18 minutes on 2 cores).
chaos-full: $(SYNCED) $(FLOOD_TOOL)
	CHAOS_LOAD=full $(RUN) pytest -m chaos tests/chaos $(PYTEST_ARGS)

# docker-compose.yml's local CA, node certificates, passwords and replica-set key file,
# in deploy/tls/generated/ and deploy/secrets/generated/ (git-ignored). Idempotent;
# rotation: docs/security.md.
compose-secrets:
	deploy/tls/make-certs.sh
	deploy/secrets/make-secrets.sh

docs: $(SYNCED)
	$(RUN) python -m seminarops_devtools.apidocs write

clean:
	if [ -x $(VENV)/bin/python ]; then $(STACK) down; fi
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache .hypothesis
	@echo "removed .run/: the broker's log, the database files and the logs are gone"
	find . -path ./$(VENV) -prune -o -path ./$(TOOLS) -prune -o \
		-name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f $(SYNCED)

.PHONY: help sync up down status token demo lint test bench chaos chaos-full soak compose-secrets docs clean
