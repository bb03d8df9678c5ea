# VideoMAE: the two set-up commands are `make train` and `make test`.
# Both create .venv when it is missing and install the project (editable, with the dev extra).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train demo test test-slow test-all lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project into it

train: $(STAMP)  ## pretrain tiny VideoMAE on the generated video set (CPU, a few minutes)
	$(BIN)/python train.py $(ARGS)

demo: $(STAMP)  ## pretrained vs from-scratch tiny VideoMAE, 3 seeds, on the generated set (CPU, ~16 min); MASKS="0.75 0.9 0.95" for the masking-ratio mode
	$(BIN)/python -m videomae.demo $(if $(MASKS),--masks $(MASKS)) $(ARGS)

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
