# The two commands: `make demo` (the main job) and `make test` (the whole test suite).
# `make demo`: the contact sheet and speed table of the transforms, then the digits study
# (examples/digits_study.py: train none/IPMix/PixMix/AugMix, evaluate each, compare; resumable).
# Both create or reuse .venv and install the project with its dev extra into it, with the exact
# versions of requirements.lock (what the tests and the README's numbers were made with).
# `make test` also builds the documentation site strictly, with the tools of docs/requirements.txt in
# their own environment .venv-docs (versions in docs/requirements.lock; see that file's header for why apart).
#   make install LOCK=            install the newest releases pyproject.toml allows instead
#   make lock                     refresh both lock files from the newest releases (then run make test)
#   make install TORCH=cpu        take torch/torchvision from PyTorch's CPU index (no CUDA: ~1 GB, not ~6 GB)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DOCS_VENV ?= .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed-stamp
LOCK ?= requirements.lock
DOCS_LOCK := $(if $(LOCK),docs/requirements.lock,)
TORCH ?=
CPU_INDEX := https://download.pytorch.org/whl/cpu
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg
export DISABLE_MKDOCS_2_WARNING := true
export NO_MKDOCS_2_WARNING := 1
export ROBUST_MIX_MKDOCS := $(abspath $(DOCS_VENV))/bin/mkdocs

.PHONY: install docs-env demo test docs lint bench lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) $(if $(LOCK),the versions of $(LOCK),the newest allowed releases) (first time: a few minutes)"
	$(if $(filter cpu,$(TORCH)),$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) --index-url $(CPU_INDEX) torch torchvision)
	$(PY) -m pip install -q $(if $(LOCK),-c $(LOCK)) -e ".[dev]"
	touch $(STAMP)

$(DOCS_STAMP): docs/requirements.txt $(DOCS_LOCK)
	test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q $(if $(DOCS_LOCK),-c $(DOCS_LOCK)) -r docs/requirements.txt
	touch $(DOCS_STAMP)

install: $(STAMP)

docs-env: $(DOCS_STAMP)

demo: install
	$(PY) -m albumentations_ipmix.demo --out demo_out
	$(PY) benchmarks/transforms.py --images 200
	$(PY) examples/digits_study.py --out demo_out/study

test: install docs-env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(ROBUST_MIX_MKDOCS) build --strict --quiet --site-dir $(abspath $(DOCS_VENV))/site
	$(PY) -m pytest -n 2 --dist loadfile -q

docs: docs-env
	$(ROBUST_MIX_MKDOCS) build --strict --site-dir site

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: install
	$(PY) benchmarks/transforms.py

# Fresh environments with the newest releases the ranges allow, frozen into the two lock files.
lock:
	rm -rf .lock-venv .lock-venv-docs && $(PYTHON) -m venv .lock-venv && $(PYTHON) -m venv .lock-venv-docs
	.lock-venv/bin/python -m pip install -q -e ".[dev]"
	.lock-venv-docs/bin/python -m pip install -q -r docs/requirements.txt
	{ echo "# Exact versions for make install/demo/test (pip constraints). Refresh: make lock."; \
	  echo "# Made on $$(uname -sm), $$(.lock-venv/bin/python -V)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	{ echo "# Exact versions of the documentation tools (.venv-docs). Refresh: make lock."; \
	  .lock-venv-docs/bin/python -m pip freeze; } > docs/requirements.lock.new
	mv requirements.lock.new requirements.lock && mv docs/requirements.lock.new docs/requirements.lock
	rm -rf .lock-venv .lock-venv-docs
