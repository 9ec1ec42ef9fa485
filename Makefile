# One command each: `make demo` runs the demo end to end, `make test` runs every test.
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench screenshots clean

# compileall: bytecode for the editable sources, as `pip install .` writes it. The suite
# starts podium as a child process hundreds of times; where PYTHONDONTWRITEBYTECODE is set,
# each would recompile ~110 modules from source (~0.1 s a start).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q pipeline connectors orchestrator jobs podium
	touch $@

demo: $(BIN)/.installed
	$(BIN)/podium demo

test: $(BIN)/.installed typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# mypy reads the installed layout (podium.pipeline lives in ./pipeline, and the editable
# install maps it with an import hook mypy cannot follow): a tree of links mirrors it.
typecheck: $(BIN)/.installed
	rm -rf build/typecheck && mkdir -p build/typecheck/podium
	for f in podium/*; do ln -s ../../../$$f build/typecheck/podium/; done
	for d in pipeline connectors orchestrator jobs; do ln -s ../../../$$d build/typecheck/podium/$$d; done
	$(BIN)/mypy build/typecheck/podium

# The status page's screenshots in docs/screenshots/, from its browser test.
screenshots: $(BIN)/.installed
	PODIUM_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_status_browser.py

bench: $(BIN)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build podium.db podium.db-wal podium.db-shm .pytest_cache .ruff_cache .mypy_cache
