# The two commands: `make run` (the embedded study) and `make test` (the test suite).
# Each sets up what it needs first; set-up is idempotent and quick the second time.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: run test setup fonts report clean lint

run: setup fonts
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES)

test: setup fonts
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

report: setup
	$(VENV)/bin/snakemake --profile profiles/default --cores $(CORES) --report results/report.html

lint: setup
	$(VENV)/bin/snakemake --lint

setup: $(STAMP)

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test,slurm]'
	touch $@

# The glyph study renders the fonts the machine has. Installing more scripts needs root and apt;
# without them the study runs, smaller, on what is there.
fonts:
	@bash setup/install_fonts.sh config/glyph-fonts.txt

clean:
	rm -rf results logs benchmarks .snakemake/metadata
