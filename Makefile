# Two commands matter: `make run` (set up everything and start the app) and `make test` (the whole suite
# against real services). Everything else is a convenience.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-postgres lint bench-ingest bench-retrieval clean

setup: $(VENV)/.installed
	@scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	scripts/setup-venv.sh
	@touch $@

run: setup
	scripts/run.sh

test: setup
	@scripts/system-deps.sh --browser
	$(BIN)/python -m pytest

# The same suite against a throwaway PostgreSQL (installed with apt-get if missing) in a temporary directory, the
# app's workers connecting as a role that does not own the audit table (scripts/test-postgres.sh).
test-postgres: setup
	@scripts/system-deps.sh --browser
	scripts/test-postgres.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy docs_app workers
	$(BIN)/lint-imports

bench-ingest: setup
	$(BIN)/python bench/ingest.py --pdfs ../shared/data/legal/cuad_pdf --limit 50

bench-retrieval: setup
	$(BIN)/python bench/retrieval.py --pdfs ../shared/data/legal/cuad_pdf \
		--queries ../shared/data/legal/cuad_queries_dev.jsonl --docs 60

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
