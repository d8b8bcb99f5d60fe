# SAM for Medical Image Segmentation — the two commands are `make course` and `make test`.
# Both create .venv on first use (python3 -m venv + pip install -r requirements.txt) and are idempotent.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
MODE   ?= auto
KERNEL := sam-course

.PHONY: setup setup-test course test claims lint unit notebooks lab colab prefetch check bench clean help

help:
	@echo "make course   run every notebook in order (MODE=$(MODE)) into outputs/ and print a summary"
	@echo "make test     ruff + unit tests + every notebook in smoke mode"
	@echo "make lab      JupyterLab on the course kernel ($(KERNEL))"
	@echo "make colab REPO=owner/name [BRANCH=main]   point Colab badges and install cells at a fork"
	@echo "make prefetch  download + verify every file the full mode needs (workshops)"
	@echo "make check NB=path.ipynb   grade a student's exercises"
	@echo "make claims   the notebooks' offline claims (real scans, several minutes; CI runs it too)"
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
	$(PY) -m utils.harness --mode $(MODE)

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

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

# Measured speed against the hardware floor (a report, not a test); GPU: make bench ARGS=--gpu
bench: setup
	$(PY) benchmarks/bench.py $(ARGS)

# Download and hash-check every checkpoint and dataset the full mode needs (before a workshop)
prefetch: setup
	$(PY) -m utils.prefetch

# make check NB=path/to/student_copy.ipynb — run a student's notebook and grade its exercises
check: setup
	@test -n "$(NB)" || (echo "usage: make check NB=path/to/notebook.ipynb [MODE=smoke]"; exit 2)
	$(PY) -m utils.harness --check $(NB) --mode $(if $(filter auto,$(MODE)),smoke,$(MODE))

# make colab REPO=owner/name [BRANCH=main] — point every Colab badge and install cell at a fork
colab: setup
	@test -n "$(REPO)" || (echo "usage: make colab REPO=owner/name [BRANCH=main]"; exit 2)
	$(PY) -m utils.colab --repo $(REPO) --branch $(or $(BRANCH),main)

clean:
	rm -rf outputs .pytest_cache .ruff_cache
