# cytosae task runner. The README's two commands are `make figures` and `make test`.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default
EXTRAS  ?= notebooks,tests,lint
NBVAL   := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
LINTED  := cytosae tests benchmarks notebooks/*.py

.PHONY: help install figures test test-browser unit unit-fast nbval lint format refresh-notebooks \
        sync-notebooks constraints bench clean-runs

help:
	@echo "make figures            regenerate every figure (profile=$(PROFILE)) into figures/"
	@echo "make test               unit tests + nbval over every committed notebook"
	@echo "make unit | make nbval  either half of the test suite"
	@echo "make unit-fast          the unit tests without the slow tier (the edit loop, < 2 min)"
	@echo "make test-browser       the latent explorer in a real browser (Voila + Debian's Chromium)"
	@echo "make lint | make format ruff check + format check | apply ruff's fixes and formatting"
	@echo "make refresh-notebooks  re-execute notebooks in place (maintainers; default profile)"
	@echo "make constraints        re-pin constraints.txt to what pip resolves today (then refresh)"
	@echo "make bench              run the benchmark scripts"

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

figures: $(BIN)/.installed
	$(BIN)/cytosae notebooks --profile $(PROFILE)

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests notebooks $(NBVAL)

test-browser: $(BIN)/.installed
	.ci/install-browser
	$(BIN)/python -m pytest tests/browser

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests

unit-fast: $(BIN)/.installed
	$(BIN)/python -m pytest tests -m "not slow" -q

nbval: $(BIN)/.installed
	$(BIN)/python -m pytest notebooks $(NBVAL)

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/cytosae notebooks --check-clean

format: $(BIN)/.installed
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

sync-notebooks: $(BIN)/.installed
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

refresh-notebooks: $(BIN)/.installed
	$(BIN)/cytosae notebooks --profile default --inplace
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb

constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q -e ".[$(EXTRAS)]"
	{ sed -n '/^#/p' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-constraints

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_synth.py --n 100
	$(BIN)/python benchmarks/bench_extract.py --n 32 --n-small 16 --repeats 2 --stages
	$(BIN)/python benchmarks/bench_extract.py --n 32 --n-small 16 --repeats 2 --layer 1 --stages
	$(BIN)/python benchmarks/bench_sae.py --quick
	$(BIN)/python benchmarks/bench_encode.py
	$(BIN)/python benchmarks/bench_explorer.py

clean-runs:
	rm -rf runs
