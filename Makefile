# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LINTED := anonymizer tests benchmarks

.PHONY: demo test lint test-all bench coverage cli-docs clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision first, pinned: a plain `torch` would pull a multi-GB build.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/anonymizer anonymize samples -o out --contact-sheet review/contact_sheet.png
	@echo "Anonymized photos are in out/. review/contact_sheet.png shows each input beside its output (it shows the original faces: keep it private)."

test: lint
	$(PY) -m pytest

# style, imports, bugbear, pyupgrade, complexity, formatting and types (settings in pyproject.toml);
# `make test` runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

test-all: $(STAMP)
	$(PY) -m pytest -m ""

bench: $(STAMP)
	$(PY) benchmarks/photos.py

coverage: $(STAMP)
	$(PY) benchmarks/coverage.py

cli-docs: $(STAMP)
	# typer's docs escape quotes as HTML entities; the reference shows commands verbatim
	$(PY) -m typer anonymizer.cli.app utils docs --name anonymizer | $(PY) -c 'import html, sys; sys.stdout.write(html.unescape(sys.stdin.read()))' > cli/README.md.tmp
	mv cli/README.md.tmp cli/README.md

clean:
	rm -rf out review .pytest_cache
