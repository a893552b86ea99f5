# drivesim: two commands on a fresh machine: `make install`, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TORCH_VERSION ?= 2.13.0
PYTEST_WORKERS ?= 2

.PHONY: install test test-slow lint demo bench docs screenshots clean

install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU torch wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install torch==$(TORCH_VERSION)
	$(PY) -m pip install -e '.[dev]'

test:
	SDL_VIDEODRIVER=dummy MPLBACKEND=Agg $(BIN)/pytest -n $(PYTEST_WORKERS) -q

test-slow:
	SDL_VIDEODRIVER=dummy MPLBACKEND=Agg $(BIN)/pytest -q -m slow

lint:
	$(BIN)/ruff check drivesim carla_bridge tests

demo:
	$(BIN)/drivesim demo --out outputs/demo

bench:
	$(PY) -m drivesim.cli.bench_all --out benchmarks/results.md

# docs/cli.md: the CLI reference, generated from the typer app (tests/test_cli_reference.py checks it is current).
docs:
	$(PY) -m drivesim.cli.reference --out docs/cli.md

# README pictures: the three viewer modes, then the BEV and front camera side by side.
screenshots:
	$(PY) -m drivesim.viewer.screenshots --out docs/images
	$(PY) -m drivesim.sensors.preview --out docs/images

clean:
	rm -rf outputs runs results .pytest_cache
