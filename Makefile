# cytosae task runner. The README's two commands are `make figures` and `make test`.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default
NBVAL   := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: help install figures test unit nbval refresh-notebooks sync-notebooks bench clean-runs

help:
	@echo "make figures            regenerate every figure (profile=$(PROFILE)) into figures/"
	@echo "make test               unit tests + nbval over every committed notebook"
	@echo "make unit | make nbval  either half of the test suite"
	@echo "make refresh-notebooks  re-execute notebooks in place (maintainers; default profile)"
	@echo "make bench              run the benchmark scripts"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[notebooks,tests]"
	touch $@

install: $(BIN)/.installed

figures: $(BIN)/.installed
	$(BIN)/cytosae notebooks --profile $(PROFILE)

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests notebooks $(NBVAL)

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests

nbval: $(BIN)/.installed
	$(BIN)/python -m pytest notebooks $(NBVAL)

sync-notebooks: $(BIN)/.installed
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

refresh-notebooks: $(BIN)/.installed
	$(BIN)/cytosae notebooks --profile default --inplace
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_synth.py --n 100
	$(BIN)/python benchmarks/bench_extract.py --n 32 --n-small 16 --repeats 2 --stages
	$(BIN)/python benchmarks/bench_extract.py --n 32 --n-small 16 --repeats 2 --layer 1 --stages
	$(BIN)/python benchmarks/bench_sae.py --quick
	$(BIN)/python benchmarks/bench_encode.py

clean-runs:
	rm -rf runs
