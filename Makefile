# Common tasks. `make check` = format + lint + types; `make test` = the whole suite on both databases.
PY := .venv/bin/python

.PHONY: setup check format test demo

setup:
	bash scripts/setup.sh

check: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy shared services gateway checkup

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh
