# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench tune clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m triton_ops demo

test: setup
	$(PY) -m pytest -n 2

bench: setup
	$(PY) -m bench --quick --out out/bench.csv

clean:
	rm -rf $(VENV) out .pytest_cache
