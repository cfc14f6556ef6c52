# Two commands on a fresh machine: `make run` (set up + run the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-order test-fast install bench bench-round bench-acquisition bench-baal bench-sweep bench-tracking bench-scale ui clean data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
# tensorflow-cpu (the dependency of earlier versions) would share its files with tensorflow.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet --yes tensorflow-cpu 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/al-run $(ARGS)

# The real Fashion-MNIST tests run where Debian's package can be installed (root + apt);
# elsewhere they skip and say why.
# Test files run in parallel, each whole on one worker (its module fixtures are made once); the
# tests of the real servers (PostgreSQL + MLflow, SLURM) share one worker, and the files that run
# processes are handed out first (tests/conftest.py). Jobs run in the test's process where only their results are
# checked; the tests of what only a process shows (exit codes, signals, launchers, servers)
# wait on al-run subprocesses. Each worker holds TensorFlow (about 1.5 GB), hence at most four.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(4, os.cpu_count() or 1))')
PARALLEL := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	@[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && $(MAKE) --no-print-directory data >/dev/null 2>&1 \
		|| echo "note: dataset-fashion-mnist not installed; its two tests will be skipped"
	$(BIN)/python -m pytest -q $(PARALLEL)

# make test's order: the seconds each unit took in a run of it (tests/unit_seconds.json; longest
# first balances the two workers); rerun when test files are added or change much
test-order: $(STAMP)
	$(BIN)/python -m pytest -q $(PARALLEL) --junitxml=.test-report.xml
	$(BIN)/python tests/conftest.py .test-report.xml > tests/unit_seconds.json && rm -f .test-report.xml

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PARALLEL)

# tf_al 0.1.1 runs in its own environment: it is the baseline, never a dependency.
TFAL := .venv-tfal
$(TFAL)/bin/python:
	$(PYTHON) -m venv $(TFAL)
	$(TFAL)/bin/python -m pip install --quiet tensorflow-cpu scipy scikit-learn tqdm
	$(TFAL)/bin/python -m pip install --quiet --no-deps tf-al==0.1.1

# scikit-activeml 1.0.1 (its numpy port of the BatchBALD reference) is the other baseline, in
# its own environment too.
SKAL := .venv-skactiveml
$(SKAL)/bin/python:
	$(PYTHON) -m venv $(SKAL)
	$(SKAL)/bin/python -m pip install --quiet scikit-activeml==1.0.1

bench: bench-round bench-acquisition bench-baal bench-sweep bench-tracking bench-scale

bench-round: $(STAMP) $(TFAL)/bin/python
	$(BIN)/python benchmarks/bench_round.py --json bench-results.json

# baal 2.1.0 (PyTorch) is the peer for round times, in its own environment: torch's CPU build
# where the registry has it (the default wheel pulls about 3 GB of CUDA libraries).
BAAL := .venv-baal
$(BAAL)/bin/python:
	$(PYTHON) -m venv $(BAAL)
	$(BAAL)/bin/python -m pip install --quiet "torch==2.13.0+cpu" "baal==2.1.0" \
		|| $(BAAL)/bin/python -m pip install --quiet torch "baal==2.1.0"

# Rounds against baal on the digits and Gal CNN protocols with the arithmetic floor, ours with
# the network built as Sequential, functional and subclassed Keras (about 12 minutes, most of it
# baal's CNN scoring), then digits again at one thread a side.
bench-baal: $(STAMP) $(BAAL)/bin/python
	$(BIN)/python benchmarks/bench_baal.py --json bench-baal.json
	$(BIN)/python benchmarks/bench_baal.py --only digits --threads 1 --json bench-baal-1-thread.json

# What a 9-job sweep spends per job beyond its rounds (ours and Hydra's), and what al-run's
# compose-once sweeper saves per job against Hydra's basic one; a local sweep's jobs (a process
# each) with an empty, a filled and no compile cache.
bench-sweep: $(STAMP)
	$(BIN)/python benchmarks/bench_sweep.py --json bench-sweep.json
	$(BIN)/python benchmarks/bench_sweep.py --launcher local --seeds 0 --cache --repeats 2
	$(BIN)/python benchmarks/bench_sweeper.py

# The shared tracking server under load (8, 32 and 128 jobs back to back, 128 at the Gal CNN
# round's pace, each also through two server restarts; about 35 minutes), then a 16-job SLURM
# sweep into it through a restart. Needs root for PostgreSQL and SLURM.
bench-tracking: $(STAMP)
	$(BIN)/python benchmarks/bench_tracking.py --json bench-tracking.json
	bash scripts/slurm_cluster.sh up >/dev/null
	$(BIN)/python benchmarks/slurm_sweep_restart.py

# Seconds a round and peak memory of every strategy at 10,000, 100,000 and 1,000,000 candidates
# (the largest holds a 3 GiB pool); what BatchBALD's cull changes in its batches on repeated digits;
# what ProbCover's sample and TypiClust's mini-batch k-means change in their picks.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py --json bench-scale.json
	$(BIN)/python benchmarks/cull_picks.py
	$(BIN)/python benchmarks/cold_start_picks.py

# BatchBALD against scikit-activeml and the GEMM floor (and on each family of arrays), the other
# selectors, and independent against consistent MC sampling.
bench-acquisition: $(STAMP) $(SKAL)/bin/python
	$(BIN)/python benchmarks/bench_batch_bald.py --families --json bench-batch-bald.json
	$(BIN)/python benchmarks/bench_selectors.py
	$(BIN)/python benchmarks/bench_sampling.py

# Offline data for fashion_mnist: Debian's package, in /usr/share/datasets/fashion-mnist;
# sudo only when not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
data:
	[ -d /usr/share/datasets/fashion-mnist ] || $(SUDO) apt-get install -y -q dataset-fashion-mnist \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist)

# The runs of al-run's experiment (its id read from the store), not MLflow's start page; without
# MLflow's GenAI job runner (8 processes that serve nothing here).
ui: $(STAMP)
	@$(BIN)/python -c "import mlflow; e = mlflow.MlflowClient('sqlite:///mlflow.db').get_experiment_by_name('al-experiments'); \
		print('Runs: http://127.0.0.1:5000/#/experiments/%s/runs?workflowType=machine_learning' % (e.experiment_id if e else '<none yet: run al-run first>'))" 2>/dev/null
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) $(TFAL) $(SKAL) $(BAAL) outputs multirun mlflow.db mlflow.db.lock mlruns mlartifacts
