# The two commands: `make demo` (the main job) and `make test` (the whole test suite).
# `make demo`: the contact sheet and speed table of the transforms, then the digits study
# (examples/digits_study.py: train none/IPMix/PixMix/AugMix, evaluate each, compare; resumable).
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
	$(PY) examples/digits_study.py --out demo_out/study

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/transforms.py
