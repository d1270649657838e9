# Bastion developer commands. Each target first makes .venv match pyproject.toml.
#   make run    embedded PostgreSQL + filesystem broker (unless DATABASE_URL / CELERY_BROKER_URL are set),
#               migrate, seed the demo, then web + worker + beat on http://127.0.0.1:8000 (PORT=… to change)
#   make test   the whole test suite (local PostgreSQL/Redis when they answer, embedded PostgreSQL otherwise)
#   make lint   ruff check and ruff format --check
#   make fmt    ruff format and ruff check --fix

.PHONY: run test lint fmt venv seed clean-data

venv:
	@bash scripts/bootstrap.sh

run: venv
	@.venv/bin/python scripts/run.py

test: venv
	@bash scripts/test.sh $(ARGS)

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

fmt: venv
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

seed: venv
	@.venv/bin/python scripts/run.py --setup-only

# Stops the embedded PostgreSQL and deletes .data (database, broker queue, collected static files).
clean-data: venv
	@.venv/bin/python scripts/devdb.py stop
	rm -rf .data
