# Two entry points: `make demo` (the main job) and `make test`. Both create .venv when needed.
# `make test` runs the suite on every core (pytest-xdist) without the tests marked slow;
# `make test-all` runs those too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# --dist loadgroup: tests sharing an expensive fixture run on one worker (tests/conftest.py);
# --durations: the slowest tests, so the 10-minute budget of `make test` can be watched.
PYTEST := $(BIN)/python -m pytest -q -rsx -n auto --dist loadgroup --durations=25

.PHONY: demo demo-eis test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rudi demo

demo-eis: $(STAMP)
	$(BIN)/rudi demo eis

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(PYTEST) -m "not slow"

test-all: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(PYTEST)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) rudi-demo rudi-demo-eis examples/*/.rudi .pytest_cache .ruff_cache
