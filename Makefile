# SAM for Medical Image Segmentation — the two commands are `make course` and `make test`.
# Both create .venv on first use (python3 -m venv + pip install -r requirements.txt) and are idempotent.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
MODE   ?= auto
KERNEL := sam-course

.PHONY: setup setup-test course test claims rehearse lint unit notebooks lab colab colab-check colab-widgets prefetch \
        mirror check bench clean help

help:
	@echo "make course   run every notebook in order (MODE=$(MODE)) into outputs/ and print a summary"
	@echo "make test     ruff + unit tests + every notebook in smoke mode"
	@echo "make lab      JupyterLab on the course kernel ($(KERNEL))"
	@echo "make colab REPO=owner/name [BRANCH=main]   point Colab badges and install cells at a fork"
	@echo "make colab-check  would the Colab install replace any of Colab's packages? (dry run; needs the registry)"
	@echo "make prefetch  download + verify every file the full mode needs (workshops)"
	@echo "make check NB=path.ipynb   grade a student's exercises"
	@echo "make claims   the notebooks' offline claims (real scans, several minutes; CI runs it too)"
	@echo "make rehearse  every notebook in MODE=full at the smallest budget, against stand-in files (CI runs it)"
	@echo "make colab-widgets  notebook 02's playground under Colab's ipywidgets 7.7.1 (a Colab twin venv)"
	@echo "make mirror   serve the prefetched cache to a workshop room (docs/instructor.md)"
	@echo "make bench    speed of each model against the matmul floor (benchmarks/RESULTS.md)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "SAM course (.venv)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

# Test-only extras (the browser test's driver): `make test` installs them, `make course` does not.
$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	@touch $(TEST_STAMP)

setup-test: $(TEST_STAMP)

course: setup
	$(PY) -m utils.tools.harness --mode $(MODE)

lint: setup
	$(PY) -m ruff check .

unit: setup-test
	$(PY) -m pytest -m "not notebooks"

notebooks: setup
	$(PY) -m pytest -m notebooks

test: setup-test
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not claims"

# The notebooks' own offline claims (LiteMedSAM on real scans; several minutes): CI runs it after make test.
claims: setup-test
	$(PY) -m pytest -m claims

# The full mode's path (SAM ViT-B, MedSegBench, MedMNIST+) end to end, against stand-in files served on
# 127.0.0.1; executed notebooks and summary.json in outputs/rehearsal/. CI runs it after make claims.
# On a GPU: make rehearse ARGS="--budget full --cuda-memory-gib 15" (a T4's memory; writes gpu.json).
rehearse: setup
	$(PY) -m utils.tools.rehearsal $(ARGS)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# Measured speed against the hardware floor (a report, not a test); GPU: make bench ARGS=--gpu
bench: setup
	$(PY) benchmarks/bench.py $(ARGS)

# Download and hash-check every checkpoint and dataset the full mode needs (before a workshop)
prefetch: setup
	$(PY) -m utils.tools.prefetch $(ARGS)

# Serve the prefetched cache to the room at the original URL paths (docs/instructor.md); on each
# student machine: export SAMCOURSE_MIRROR=http://<this machine's IP>:8000. make mirror PORT=8001 ARGS=--all-models
mirror: setup
	$(PY) -m utils.tools.mirror --host 0.0.0.0 --port $(or $(PORT),8000) $(ARGS)

# make check NB=path/to/student_copy.ipynb — run a student's notebook and grade its exercises
check: setup
	@test -n "$(NB)" || (echo "usage: make check NB=path/to/notebook.ipynb [MODE=smoke]"; exit 2)
	$(PY) -m utils.tools.harness --check $(NB) --mode $(if $(filter auto,$(MODE)),smoke,$(MODE))

# make colab REPO=owner/name [BRANCH=main] — point every Colab badge and install cell at a fork
colab: setup
	@test -n "$(REPO)" || (echo "usage: make colab REPO=owner/name [BRANCH=main]"; exit 2)
	$(PY) -m utils.tools.colab --repo $(REPO) --branch $(or $(BRANCH),main)

# Dry-run pip against Colab's published package list (utils/data): fails if the colab group or the package's
# dependencies would replace anything Colab ships. Needs the package registry; CI runs it before cutting the network.
colab-check: setup
	$(PY) -m utils.tools.colab --check-install

clean:
	rm -rf outputs .pytest_cache .ruff_cache

# Notebook 02's playground (Colab's "sliders" frontend) under Colab's ipywidgets 7.7.1 kernel: builds a Colab twin
# venv (/tmp/colab-twin, pins read from Colab's package list) and runs 02 there in smoke mode; needs the registry
# on first use. Record: outputs/colab_twin/record.json. ARGS=--fresh rebuilds the twin.
colab-widgets: setup
	$(PY) tests/tools/colab_twin/check_widgets.py $(ARGS)
