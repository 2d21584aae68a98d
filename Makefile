# Every target installs into .venv first: `make lab` what the notebooks need
# (requirements.txt), the developer targets the test tools as well
# (requirements-dev.txt). An install is skipped while its requirements and
# pyproject.toml are older than its stamp file.
SHELL     := /bin/bash
# The interpreter .venv is made from: the first of /usr/bin/python3, python3.11
# and python3 that is Python 3.11 or later and can make a venv. The system's
# comes first: distributions build CPython with profile-guided and link-time
# optimisation, which pyenv's default build leaves out, and labkit's
# simulations run about a fifth faster on it (see bench/README.md).
PYTHON    ?= $(shell for p in /usr/bin/python3 python3.11 python3; do \
                 $$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
                 2>/dev/null && command -v $$p && break; done)
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb notebooks/labs/*.ipynb))
# Jupyter refuses to run as root (Docker images, lab machines) unless told.
AS_ROOT   := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install install-dev venv lab lab-instructor test notebooks lint bench html student

install venv: $(STAMP)

install-dev: $(DEV_STAMP)

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python 3.11+ that can make a venv: install" \
	    "one (Debian: apt-get install python3-venv) or give PYTHON=/path/to/python3" >&2; \
	    exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# The student copies (answers blanked, no outputs), refreshed from notebooks/
# without ever overwriting a student's work, then JupyterLab on the first one.
lab: student
	$(BIN)/jupyter lab $(AS_ROOT) student/00_simulator_tour.ipynb

# The instructor copies: every worked answer and stored output.
lab-instructor: install
	$(BIN)/jupyter lab $(AS_ROOT) notebooks/00_simulator_tour.ipynb

# Unit, property, layer and browser tests plus strict nbval over every notebook.
# --dist loadfile keeps each notebook (and each test file) on one worker, but
# tests/conftest.py lets the browser test's notebooks go to both, longest first.
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set (as on our CI
# image): every kernel, Dask worker and server the suite starts would otherwise
# compile labkit and the tests from source again.
test: install-dev
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 2 --dist loadfile -ra \
	    --nbval --nbval-current-env tests $(NOTEBOOKS)

# Re-execute every notebook in a fresh kernel and store it without widget state.
notebooks: install-dev
	@for nb in $(NOTEBOOKS); do \
	    echo "executing $$nb"; \
	    PYTHONHASHSEED=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	        --ExecutePreprocessor.timeout=300 "$$nb" || exit 1; \
	    $(BIN)/nbstripout --keep-output --keep-count "$$nb" || exit 1; \
	done

# Every notebook as a static page (stored outputs, interactive figures, no kernel)
# in build/html; plotly.js is written once beside the pages.
html: install
	PYTHONPATH=tools $(BIN)/jupyter nbconvert --to html --output-dir build/html \
	    --HTMLExporter.preprocessors='["html_figures.html_figures"]' $(NOTEBOOKS)

# Student copies in student/ (lab notebooks in student/labs/): worked answers
# blanked, outputs cleared, lab answers replaced by their skeletons. A copy the
# student edited is kept; an updated one is written beside it as *.new.ipynb.
student: install
	$(BIN)/python tools/student_notebooks.py student $(NOTEBOOKS)

lint: install-dev
	$(BIN)/ruff check .

bench: install-dev
	$(BIN)/python bench/simcore.py
	$(BIN)/python bench/balancing.py
	$(BIN)/python bench/raft.py
	$(BIN)/python bench/check.py
	$(BIN)/python bench/labs.py
	$(BIN)/python bench/widgets.py
	$(BIN)/python bench/browser.py
	$(BIN)/python bench/sweep.py
