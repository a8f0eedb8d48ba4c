# jaxcell: the two quick-start commands are `make demo` and `make test`.
# Each creates (or reuses) .venv and installs the project with what it needs.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.jaxcell-installed
JOBS   ?= 2

.PHONY: demo test test-slow test-all test-smoke docs bench bench-quick sbml-suite lint clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jaxcell needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

## Simulate the built-in default model (the French flag), print a summary, write PNG plots.
demo: $(STAMP)
	$(VENV)/bin/jaxcell demo --out demo-output

## The test suite (fast checks; slow ones are in test-slow).
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m "not slow" jaxcell tests

## A fast subset on the newest Python found (or SMOKE_PYTHON=...), in its own venv with
## only jaxcell's runtime dependencies at their newest releases: no pin is needed to stay
## green on the current JAX. Skipped, with a message, when no Python >= 3.12 is found.
SMOKE_VENV ?= .venv-smoke
SMOKE_PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 \
	$$(ls -d $$HOME/.pyenv/versions/3.1[2-9]* 2>/dev/null | sort -V -r | sed 's|$$|/bin/python3|'); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
SMOKE_TESTS ?= tests/test_simulate.py tests/test_scale_out.py
test-smoke:
	@if [ -z "$(SMOKE_PYTHON)" ]; then echo "test-smoke: no Python >= 3.12 found; skipped"; exit 0; fi; \
	set -e; $(SMOKE_PYTHON) --version; \
	test -x $(SMOKE_VENV)/bin/python || $(SMOKE_PYTHON) -m venv $(SMOKE_VENV); \
	$(SMOKE_VENV)/bin/python -m pip install --quiet --upgrade pip; \
	$(SMOKE_VENV)/bin/python -m pip install --quiet --upgrade -e . pytest==9.2.0 pytest-xdist==3.8.0; \
	$(SMOKE_VENV)/bin/python -c 'import jax, sys; print("smoke: Python", sys.version.split()[0], "jax", jax.__version__)'; \
	$(SMOKE_VENV)/bin/python -m pytest -n $(JOBS) -m "not slow" -p no:cacheprovider $(SMOKE_TESTS)

test-slow: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m slow tests

test-all: $(STAMP)
	$(PY) -m pytest -n $(JOBS) jaxcell tests

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[benchmark]"
	mkdir -p bench-results
	$(PY) benchmarks/ensemble.py --json bench-results/ensemble.json
	$(PY) benchmarks/compile_time.py --json bench-results/compile_time.json
	$(PY) benchmarks/sbml_import.py --json bench-results/sbml_import.json
	$(PY) benchmarks/work_precision.py --json bench-results/work_precision.json
	$(PY) benchmarks/tissue_scaling.py --json bench-results/tissue_scaling.json
	$(PY) benchmarks/discovery.py --json bench-results/discovery.json

bench-quick: $(STAMP)
	mkdir -p bench-results
	$(PY) benchmarks/ensemble.py --quick --json bench-results/ensemble.json
	$(PY) benchmarks/compile_time.py --quick --json bench-results/compile_time.json
	$(PY) benchmarks/sbml_import.py --quick --json bench-results/sbml_import.json
	$(PY) benchmarks/work_precision.py --quick --json bench-results/work_precision.json
	$(PY) benchmarks/tissue_scaling.py --quick --json bench-results/tissue_scaling.json
	$(PY) benchmarks/discovery.py --quick --json bench-results/discovery.json

## The SBML Test Suite semantic cases through jaxcell.io (all cases, JOBS workers).
SBML_SUITE ?= ../shared/data/sbml-test-suite
sbml-suite: $(STAMP)
	mkdir -p bench-results
	$(PY) benchmarks/sbml_suite.py --cases $(SBML_SUITE) --jobs $(JOBS) --json bench-results/sbml_suite.json

lint: $(STAMP)
	$(VENV)/bin/ruff check jaxcell tests benchmarks examples

clean:
	rm -rf demo-output bench-results site .pytest_cache
