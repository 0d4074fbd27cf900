# Two commands do all set-up on a fresh machine:
#   make book   create/update .venv, execute every notebook (papermill), build the HTML book
#   make test   create/update .venv, run the tests (notebooks run with smoke parameters)
# Also: make notebook NB=<name> PARAMS='-p key value ...'; make html (render without re-running);
#       make check-html (the built book in headless Chromium); make bench; make lock; make clean.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book html check-html test notebook notebooks bench lock clean env paper score

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

# The paper's pipeline (issue 23): every loadable model of data_manifest/paper/a2_models.csv x VaTeX (1,024 videos)
# x Figure 3's grid, then alignment, Figures 2, 3, 4, 7, 10, 11, 12 and Table 1 (CSVs and PNGs) beside the
# published numbers under results/paper/<plan>/, and not_built.csv for what the plan cannot build. Refused, listing
# what is missing, without the videos (VIDEO_ROOT) or the weights (ALLOW_DOWNLOAD=1 to fetch them). VATEX_JSON: the
# official 10-caption JSON (default: the 5-caption files here; run.json says which ran). RETRIEVAL=kinetics400 (or
# ssv2) with RETRIEVAL_ROOT and RETRIEVAL_LIST: Figure 2's x-axis, retrieval accuracy on a seeded 10,000-video test
# subset (without them, not_built.csv says so). PLAN=miniature: the same code on tiny random configs, offline (~1 min).
#   make paper PLAN=miniature
#   make paper VIDEO_ROOT=/data/vatex VATEX_JSON=/data/vatex_validation_v1.0.json ALLOW_DOWNLOAD=1 CLUSTER=ray://head:10001
PLAN ?= paper
paper: $(STAMP)
	$(PY) -m vtalign.extract --plan $(PLAN) --no-progress $(if $(CLUSTER),--cluster $(CLUSTER)) \
		$(if $(VIDEO_ROOT),--option video_root='"$(VIDEO_ROOT)"') $(if $(VATEX_JSON),--option json_file='"$(VATEX_JSON)"') \
		$(if $(RETRIEVAL),--option retrieval_dataset='"$(RETRIEVAL)"') \
		$(if $(RETRIEVAL_ROOT),--option retrieval_root='"$(RETRIEVAL_ROOT)"') \
		$(if $(RETRIEVAL_LIST),--option retrieval_list='"$(RETRIEVAL_LIST)"') \
		$(if $(ALLOW_DOWNLOAD),--allow-download)
	$(PY) -m vtalign.book.paper_pipeline --plan $(PLAN)

# Score your own vision encoder by Figure 2's protocol and place it among Figures 2 and 4's published points:
#   make score MODEL=my/model-id VIDEO_ROOT=/data/vatex [TEXT_MODEL=google/gemma-2-9b-it] [ARGS='--frames 16']
#   make score MODEL=tiny-vit ARGS='--dataset synthetic_world --option n_clips=32 --text-model tiny-gemma2 --k 5'
score: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make score MODEL=<id or folder> [VIDEO_ROOT=...] [ARGS='...']"; exit 2; }
	$(PY) -m vtalign.extract --score $(MODEL) --no-progress $(if $(TEXT_MODEL),--text-model $(TEXT_MODEL)) \
		$(if $(VIDEO_ROOT),--option video_root='"$(VIDEO_ROOT)"') $(if $(ALLOW_DOWNLOAD),--allow-download) $(ARGS)

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
