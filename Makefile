# Two commands do all set-up on a fresh machine:
#   make book   create/update .venv, execute every notebook (papermill), build the HTML book
#   make test   create/update .venv, run the tests (notebooks run with smoke parameters)
# Also: make notebook NB=<name> PARAMS='-p key value ...'; make html (render without re-running);
#       make check-html (the built book in headless Chromium); make bench; make lock; make clean.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book html check-html test notebook notebooks bench lock clean env

env: $(STAMP)

# Reinstall when the pins or the package metadata change.
$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" "setuptools>=64"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

notebooks: $(STAMP)
	$(PY) -m vtalign.book run

book: notebooks
	@$(MAKE) --no-print-directory html

# Render the executed chapters (without re-running them) into _build/html.
html: $(STAMP)
	$(PY) -m vtalign.book reproducibility
	$(PY) -m vtalign.book static
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going --quiet
	@echo "Book: $(CURDIR)/_build/html/index.html"

# Open every page of the built book in headless Chromium (Debian package: chromium) at 1400 px: broken
# images, missing internal links and anchors, unrendered math, content overflowing its column, raw
# reprs (None, nan, dtype:) in outputs; full-page screenshots go to results/book/. With no built book,
# a cheap one is made first (chapters with smoke parameters), as CI does.
check-html: $(STAMP)
	@test -f _build/html/index.html || { $(PY) -m vtalign.book run --smoke && $(MAKE) --no-print-directory html; }
	$(PY) -m vtalign.book check-html --screenshots results/book

test: $(STAMP)
	$(PY) -m pytest

# Re-run one chapter with new parameters, e.g.
#   make notebook NB=test_time_scaling PARAMS='-p grid_csv my_grid.csv -p n_bootstrap 500'
notebook: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make notebook NB=<name> [PARAMS='-p key value ...']"; $(PY) -m vtalign.book list; exit 2; }
	$(PY) -m vtalign.book run --only $(NB) $(PARAMS)

# Benchmark this machine (GPU when present) and write bench/records/<device>.json, which the
# Performance chapter shows; commit the record. On a 2-core CPU the reference sweep alone takes minutes.
bench: $(STAMP)
	$(PY) -m vtalign.bench

# Regenerate requirements.lock from requirements.in in a throw-away environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade "pip>=24" && .lock-venv/bin/pip install --quiet -r requirements.in
	{ echo '# Exact versions of every package, from `make lock` (pip freeze of a fresh install of requirements.in).'; \
	  echo '# torch is written without its +cpu label: pip then takes the local CPU wheel where one exists.'; \
	  .lock-venv/bin/pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf _build results book/chapters book/reproducibility.md book/build_status.md book/claims.md book/coverage.md book/status book/figures _static
