# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo lint typecheck serve bench dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest
	$(PY) -m ruff check src tests benchmarks notebooks
	$(PY) -m ruff format --check src tests benchmarks notebooks
	$(PY) -m mypy --strict src

demo: $(STAMP)
	$(VENV)/bin/hfrag demo

serve: $(STAMP)
	$(VENV)/bin/hfrag serve --port 8080

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[all,dev,bench]"
	$(PY) benchmarks/report.py

# The sdist and wheel in dist/ (python -m build), checked with twine.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache
