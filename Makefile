# Every target installs into .venv first; the install is skipped while
# requirements.txt and pyproject.toml are older than the stamp file.
SHELL     := /bin/bash
PYTHON    ?= $(shell command -v python3.11 || command -v python3)
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb notebooks/labs/*.ipynb))

.PHONY: install venv lab test notebooks lint bench html student

install venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

lab: install
	$(BIN)/jupyter lab notebooks/00_simulator_tour.ipynb

# Unit, property, layer and browser tests plus strict nbval over every notebook.
# --dist loadfile keeps each notebook (and each test file) on one worker.
test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -ra \
	    --nbval --nbval-current-env tests $(NOTEBOOKS)

# Re-execute every notebook in a fresh kernel and store it without widget state.
notebooks: install
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

# Student copies in build/student: worked answers blanked, outputs cleared, lab
# answers replaced by their skeletons (build/student/labs/).
student: install
	$(BIN)/python tools/student_notebooks.py build/student $(NOTEBOOKS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/simcore.py
	$(BIN)/python bench/balancing.py
	$(BIN)/python bench/raft.py
	$(BIN)/python bench/labs.py
