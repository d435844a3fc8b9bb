# The two commands: `make demo` (the main job) and `make test` (the whole test suite).
# `make demo`: the contact sheet and speed table of the transforms, then the digits study
# (examples/digits_study.py: train none/IPMix/PixMix/AugMix, evaluate each, compare; resumable).
# Both create or reuse .venv and install the project with its dev extra into it, with the exact
# versions of requirements.lock (what the tests and the README's numbers were made with):
#   make install LOCK=            install the newest releases pyproject.toml allows instead
#   make lock                     refresh requirements.lock from the newest releases (then run make test)
#   make install TORCH=cpu        take torch/torchvision from PyTorch's CPU index (no CUDA: ~1 GB, not ~6 GB)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCK ?= requirements.lock
TORCH ?=
CONSTRAINTS := $(if $(LOCK),-c $(LOCK),)
CPU_INDEX := https://download.pytorch.org/whl/cpu
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint bench lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) $(if $(LOCK),with the versions of $(LOCK),with the newest allowed releases) (first time: a few minutes)"
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install -q $(CONSTRAINTS) --index-url $(CPU_INDEX) torch torchvision)
	$(PY) -m pip install -q $(CONSTRAINTS) -e ".[dev]"
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

# A fresh environment with the newest releases pyproject.toml allows, frozen into requirements.lock.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -e ".[dev]"
	{ echo "# Exact versions for make install/demo/test (pip constraints). Refresh: make lock."; \
	  echo "# Made on $$(uname -sm), $$(.lock-venv/bin/python -V)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK) && rm -rf .lock-venv
