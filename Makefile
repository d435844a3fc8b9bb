# The two commands: `make demo` (the main job) and `make test` (the whole test suite).
# `make demo`: the contact sheet and speed table of the transforms, then the digits study
# (examples/digits_study.py: train none/IPMix/PixMix/AugMix, evaluate each, compare; resumable).
# Both create or reuse .venv and install the project with its dev extra (and docs/requirements.txt) into it.
# `make test` also builds the documentation site strictly (any warning fails).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg
export DISABLE_MKDOCS_2_WARNING := true
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml docs/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q -r docs/requirements.txt  # apart: see the file's header
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m albumentations_ipmix.demo --out demo_out
	$(PY) benchmarks/transforms.py --images 200
	$(PY) examples/digits_study.py --out demo_out/study

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mkdocs build --strict --quiet --site-dir $(VENV)/site
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/transforms.py
