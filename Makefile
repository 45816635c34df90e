# The book's two everyday commands are `make book` and `make test`; see README.md, and
# docs/DEVELOPING.md for the others.
# Each creates the virtual environment .venv on first use and installs requirements.txt.

# The first Python 3.11-3.13 found (TensorFlow 2.21 has wheels for those), else python3.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
  command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BOOK_STAMP := $(VENV)/.book-stamp
# Kernels started by nbval and nbclient run `python` from PATH: make it the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
# The same floating-point results on every x86-64 machine with AVX2, so that strict nbval
# compares like with like: a chaotic run (a large learning rate) amplifies a last-bit
# difference into a different printed number. OpenBLAS's kernel is otherwise chosen per
# CPU (and with AVX-512, its results depend on the thread count), and NumPy's exp and
# log differ in the last bit between its AVX2 and AVX-512 code paths.
export OPENBLAS_CORETYPE := Haswell
export OPENBLAS_NUM_THREADS := 1
export NPY_DISABLE_CPU_FEATURES := X86_V4 AVX512_ICL AVX512_SPR
# TensorFlow's matrix products (oneDNN) and compiled functions (XLA) also pick their
# instructions per CPU: cap both at AVX2.
export ONEDNN_MAX_CPU_ISA := AVX2
export XLA_FLAGS := --xla_cpu_max_isa=AVX2
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# Tests and notebooks run JOBS at a time (pytest-xdist, tools/execute.py): one per core
# of the 2-core machine the book is timed on, each with one BLAS thread.
JOBS ?= 2

.PHONY: book test execute robust lint format unit fast thorough mutation stored nbval pages \
  links browser lab workbook sweep clean help

help:
	@echo "make book      build the HTML book into _build/html (open _build/html/index.html)"
	@echo "make test      every check, in order: lint, unit, stored, nbval, book, links, pages,"
	@echo "               browser; stops at the first failure"
	@echo "make lint      ruff check and ruff format --check over code, tests, tools, chapters"
	@echo "make unit      the unit tests of bnbook (tests/unit; a bare pytest runs the same)"
	@echo "make fast      the unit tests that need no TensorFlow (pytest -m \"not keras\"),"
	@echo "               for the edit-and-test loop"
	@echo "make stored    notebooks are stored executed, in order, without errors or stderr"
	@echo "make nbval     strict nbval: notebooks re-executed, every text output compared"
	@echo "               (NB=path for one; two at a time, JOBS=1 for one at a time)"
	@echo "make robust    every notebook run on other seeds (BNBOOK_SEED_OFFSET, default 1000)"
	@echo "               without the floating-point settings: any failed assert fails"
	@echo "make sweep     NB=path N=10: a notebook at N random seed offsets, two at a time,"
	@echo "               without the floating-point settings; a table of asserts held and"
	@echo "               glued numbers (OFFSETS=a,b,... reruns chosen offsets)"
	@echo "make links     Sphinx linkcheck, offline: local targets checked, external ones listed"
	@echo "               (LINKS=online fetches the external ones too: needs the network)"
	@echo "make pages     the built HTML: a page per _toc.yml entry, every internal link resolves"
	@echo "               (runs make book and make links first where their output is stale)"
	@echo "make browser   every built page in headless Chromium (needs chromium, chromedriver)"
	@echo "make execute   re-run notebooks in place to refresh their outputs (NB=path for one;"
	@echo "               two at a time, JOBS=1 for one at a time); timings in _build/timings.md"
	@echo "make workbook  write the workbook's exercise notebooks from their solutions"
	@echo "make lab       JupyterLab on the chapters, with the book's floating-point settings"
	@echo "make format    ruff format, then ruff check --fix, over code, tests, tools, chapters"
	@echo "make thorough  the property tests with new random examples, 2000 each (slow)"
	@echo "make mutation  mutation testing of bnbook's core modules with mutmut (slow);"
	@echo "               results in _build/mutation (see docs/DEVELOPING.md)"
	@echo "make clean     remove _build and .venv"
	@echo "make help      this list"

# The virtual environment, with a Python the book supports.
$(BIN)/python:
	@if ! command -v "$(PYTHON)" >/dev/null 2>&1; then \
	  echo "error: this book needs Python 3.11, 3.12 or 3.13, and no '$(PYTHON)' was found."; \
	  echo "Install one and run again, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11"; \
	  exit 1; \
	elif ! "$(PYTHON)" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))'; then \
	  echo "error: this book needs Python 3.11, 3.12 or 3.13 (TensorFlow 2.21's wheels)," \
	       "but '$(PYTHON)' is $$("$(PYTHON)" --version 2>&1)."; \
	  echo "Install one and run again, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11"; \
	  exit 1; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make book` and `make links` need only the Jupyter Book stack (requirements-book.txt,
# a minute from a fresh clone); everything else needs all of requirements.txt, which
# includes it (TensorFlow and the test tools: a few minutes more).
$(BOOK_STAMP): requirements-book.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-book.txt
	@touch $(BOOK_STAMP)

$(STAMP): requirements.txt requirements-book.txt code/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(BOOK_STAMP) $(STAMP)

book: $(BOOK_STAMP)
	$(BIN)/jupyter-book build --all -W -n --keep-going .
	@touch $(HTML_BUILT)
	@echo "The book is in _build/html: open _build/html/index.html in a browser."

# What the HTML and the linkcheck report are made from. `make pages` reads both: it
# remakes one only when it is missing, failed, or older than a source, so after `make
# book` and `make links` (as `make test` runs them) it builds nothing again. The stamps
# are touched only after a build that succeeded (with -W, a warning fails it).
BOOK_SOURCES := _config.yml _toc.yml references.bib requirements-book.txt \
  tools/authoryear.py tools/exercisenotebook.py tools/inlinescripts.py tools/inlineroles.py \
  code/bnbook/inline.py $(wildcard chapters/* _static/*)
HTML_BUILT := _build/.html-built
LINKS_BUILT := _build/.links-built
$(HTML_BUILT): $(BOOK_SOURCES) | $(BOOK_STAMP)
	+$(MAKE) --no-print-directory book
$(LINKS_BUILT): $(BOOK_SOURCES) | $(BOOK_STAMP)
	+$(MAKE) --no-print-directory links

# One stage of `make test`: its heading $(1), then each target of $(2) in a sub-make of
# its own, in order; the first failure stops `make test`. "+" runs the sub-make under
# `make -n` too, as a plain $(MAKE) line would be. $(,) is a comma in a heading ($(call)
# splits its arguments at commas).
, := ,
define stage
@echo "==> $(1)"
$(foreach target,$(2),+$(MAKE) --no-print-directory $(target)
)
endef

test: $(STAMP)
	$(call stage,1/8 style: ruff check and ruff format --check,lint)
	$(call stage,2/8 unit tests of bnbook,unit)
	$(call stage,3/8 notebooks are stored executed$(,) in order$(,) without errors or stderr,stored)
	$(call stage,4/8 strict nbval: every notebook re-executed$(,) every output compared,nbval)
	$(call stage,5/8 the claims hold on other seeds$(,) without the floating-point settings,robust)
	$(call stage,6/8 the HTML book builds with warnings as errors,book)
	$(call stage,7/8 every page of _toc.yml is in _build/html; every link resolves (linkcheck),links pages)
	$(call stage,8/8 every page in headless Chromium: math$(,) images$(,) no tracebacks$(,) phone width,browser)
	@echo "==> all checks passed"

lint: $(STAMP)
	$(BIN)/ruff check code tests tools chapters
	$(BIN)/ruff format --check code tests tools chapters

# Rewrites files: the formatter, then ruff's safe fixes; what is left to fix by hand is
# listed (and makes this fail).
format: $(STAMP)
	$(BIN)/ruff format code tests tools chapters
	$(BIN)/ruff check --fix code tests tools chapters

unit: $(STAMP)
	$(PYTEST) -n $(JOBS) tests/unit

# The unit tests without TensorFlow, whose import alone takes seconds. The marker keras
# names the tests that need it; tests/conftest.py registers it and fails a test that
# imports TensorFlow without it. One process: on two cores pytest-xdist gains little, and
# loses when another job holds a core.
fast: $(STAMP)
	$(PYTEST) -m "not keras" tests/unit

# The property tests (Hypothesis's marker), each with 2000 new random examples instead
# of the book's fixed ones: the profile "thorough" of tests/conftest.py.
thorough: $(STAMP)
	BNBOOK_HYPOTHESIS_PROFILE=thorough $(PYTEST) tests/unit -m hypothesis

# Mutation testing (mutmut, installed into .venv on first use): a copy of code/bnbook and
# tests/ in _build/mutation, so that mutmut's files stay out of the working tree; the
# modules it mutates are listed in tools/mutation.cfg. The results stay there, where they
# were measured (docs/DEVELOPING.md says how to read them): the counts in
# mutants/mutmut-cicd-stats.json, and every mutant not killed in results.txt.
MUTMUT_VERSION := 3.8.1
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut==$(MUTMUT_VERSION)
	rm -rf _build/mutation && mkdir -p _build/mutation
	cp -r code/bnbook tests references.bib _build/mutation/
	cp tools/mutation.cfg _build/mutation/setup.cfg
	cd _build/mutation && $(CURDIR)/$(BIN)/mutmut run --max-children 2 || true
	cd _build/mutation && $(CURDIR)/$(BIN)/mutmut export-cicd-stats
	cd _build/mutation && $(CURDIR)/$(BIN)/mutmut results > results.txt
	cat _build/mutation/results.txt _build/mutation/mutants/mutmut-cicd-stats.json

stored: $(STAMP)
	$(PYTEST) tests/notebooks

# Two notebooks at a time (JOBS=1 for one), each notebook whole on one pytest-xdist worker
# with its own kernel and one BLAS thread: the same outputs, compared cell by cell.
nbval: $(STAMP)
	$(PYTEST) --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -n $(JOBS) --dist loadfile --durations=0 --ignore-glob='*_exercise.ipynb' \
	  $(or $(NB),chapters)

pages: $(STAMP) $(HTML_BUILT) $(LINKS_BUILT)
	$(PYTEST) tests/build

# Sphinx's linkcheck, offline (see linkcheck_ignore in _config.yml): a missing local
# target fails; external links are listed in _build/linkcheck/output.json, which
# tests/build/test_links.py then reads.
# LINKS=online fetches the external links too (it needs the network: CI's weekly job),
# with a copy of _config.yml that lacks the line telling linkcheck to skip them.
LINKCHECK := --builder custom --custom-builder linkcheck -W -n --keep-going
links: $(BOOK_STAMP)
ifeq ($(LINKS),online)
	mkdir -p _build && grep -v '^ *linkcheck_ignore:' _config.yml > _build/config-online.yml
	$(BIN)/jupyter-book build --config _build/config-online.yml $(LINKCHECK) .
else
	$(BIN)/jupyter-book build $(LINKCHECK) .
endif
	@touch $(LINKS_BUILT)

# Needs Debian's chromium and chromium-driver (.ci/run installs them); screenshots of
# every page go to _build/screenshots.
browser: $(STAMP)
	$(PYTEST) tests/browser

# Then the workbook's exercise notebooks follow their solutions (which carry the kernel's
# metadata). tools/execute.py fails only on an error: a notebook over its time budget is
# a warning, so the exercise notebooks are never left behind their solutions' outputs.
# Its timings are in _build/timings.md.
execute: $(STAMP)
	$(BIN)/python tools/execute.py --jobs $(JOBS) $(NB)
	$(BIN)/python tools/make_exercises.py

# The exercise notebooks (chapters/*_exercise.ipynb) are generated: edit the solutions.
workbook: $(STAMP)
	$(BIN)/python tools/make_exercises.py

# JupyterLab on the chapters, its kernels with the floating-point settings above, and
# jupyterlab-myst rendering the prose (both in requirements.txt). As root (a container)
# JupyterLab refuses to start without --allow-root.
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) chapters/

# The book on seeds it was not written on, and without the floating-point settings above
# (a reader on Binder or a laptop has none): OpenBLAS, NumPy, oneDNN and XLA pick their
# own kernels for this CPU. Outputs change; asserts must still hold. The thread count
# stays at 1 (bnbook sets it anyway, for every reader): on these small matrices a second
# thread on a busy 2-core machine makes a notebook many times slower, and the kernels, not
# the threads, are what move the last bits. Two notebooks at a time (JOBS); the executed
# copies (and timings.md) go to _build/robust, the chapters stay. Any error fails it.
SEED_OFFSET ?= 1000
FP_SETTINGS := OPENBLAS_CORETYPE NPY_DISABLE_CPU_FEATURES ONEDNN_MAX_CPU_ISA XLA_FLAGS
robust: $(STAMP)
	env $(addprefix -u ,$(FP_SETTINGS)) BNBOOK_SEED_OFFSET=$(SEED_OFFSET) \
	  $(BIN)/python tools/execute.py --out _build/robust --jobs $(JOBS) $(NB)

# A notebook at N seed offsets drawn at random (printed: OFFSETS=a,b,... reruns them), two
# runs at a time, without the floating-point settings: a table of each assert (how many
# offsets it held on) and each glued number (median and range). The evidence a threshold
# needs before it is asserted; executed copies in _build/sweep.
N ?= 10
sweep: $(STAMP)
	env $(addprefix -u ,$(FP_SETTINGS)) $(BIN)/python tools/sweep.py --n $(N) \
	  $(if $(OFFSETS),--offsets $(OFFSETS)) $(NB)

clean:
	rm -rf _build $(VENV)
