# VideoMAE: the two set-up commands are `make train` and `make test`.
# Both create .venv when it is missing and install the project (editable, with the dev extra)
# at the versions pinned in requirements-lock.txt (`make lock` re-resolves them).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements-lock.txt

.DEFAULT_GOAL := help
.PHONY: help install lock train demo test test-slow test-all lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Every package comes at its version in $(LOCK) (pip, torch and the indirect dependencies
# included); the install fails when .venv then holds a package the lock does not list at that
# version (a dependency added to pyproject.toml without `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@$(BIN)/python -m pip freeze --all --exclude-editable | grep -vxFf $(LOCK) > $(VENV)/unlocked.txt || true
	@if [ -s $(VENV)/unlocked.txt ]; then \
	  echo "error: .venv holds packages that $(LOCK) does not pin at these versions:"; \
	  cat $(VENV)/unlocked.txt; \
	  echo "run 'make lock' after changing the dependencies in pyproject.toml (or remove .venv)"; \
	  exit 1; fi
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project into it (versions from requirements-lock.txt)

lock:  ## re-resolve the dependencies of pyproject.toml into requirements-lock.txt (then run make test)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Every package the project installs, at the version its tests were run with."; \
	  echo "# Made by 'make lock' on $$(uname -s) $$(uname -m), Python $$(.lock-venv/bin/python -c 'import platform; print(platform.python_version())'), $$(date +%F)."; \
	  echo "# Used as pip constraints by 'make install' (see README, 'Dependencies')."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK)
	rm -rf .lock-venv

train: $(STAMP)  ## pretrain tiny VideoMAE on the generated video set (CPU, a few minutes)
	$(BIN)/python train.py $(ARGS)

demo: $(STAMP)  ## pretrained vs from-scratch tiny VideoMAE with 5 labeled videos per class, 3 seeds (CPU, ~13 min); CURVE=1: the label-efficiency curve (~1 h); MASKS="0.75 0.9 0.95": per masking ratio
	$(BIN)/python -m videomae.demo $(if $(CURVE),--curve) $(if $(MASKS),--masks $(MASKS)) $(ARGS)

test: $(STAMP)  ## run the test suite (excludes tests marked slow)
	$(BIN)/python -m pytest $(ARGS)

test-slow: $(STAMP)  ## run only the slow tests
	$(BIN)/python -m pytest -m slow $(ARGS)

test-all: $(STAMP)  ## run every test
	$(BIN)/python -m pytest -m 'slow or not slow' $(ARGS)

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## ruff autofix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove caches, the generated sets (synthetic, benchmark clips) and run folders (keeps .venv and real data)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info data/synthetic data/synthetic_demo data/benchmark_videos
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	find logs -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
