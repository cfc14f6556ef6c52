# Two commands on a fresh machine: `make run` (set up + run the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast install bench ui clean data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/al-run

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# tf_al 0.1.1 runs in its own environment: it is the baseline, never a dependency.
TFAL := .venv-tfal
$(TFAL)/bin/python:
	$(PYTHON) -m venv $(TFAL)
	$(TFAL)/bin/python -m pip install --quiet tensorflow-cpu scipy scikit-learn tqdm
	$(TFAL)/bin/python -m pip install --quiet --no-deps tf-al==0.1.1

bench: $(STAMP) $(TFAL)/bin/python
	$(BIN)/python benchmarks/bench_round.py --json bench-results.json

# Offline datasets from Debian (Fashion-MNIST lands in /usr/share/datasets/fashion-mnist);
# not needed by `make test`. sudo only when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
data:
	$(SUDO) apt-get install -y dataset-fashion-mnist

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) $(TFAL) outputs multirun mlflow.db mlflow.db.lock mlruns mlartifacts
