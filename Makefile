# The two commands: `make demo` (the main job) and `make test` (the whole test suite).
# Both create or reuse .venv and install the project with its dev extra into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m albumentations_ipmix.demo --out demo_out
	$(PY) benchmarks/transforms.py --images 200

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/transforms.py
