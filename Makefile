# agentos — every target that needs the virtualenv creates it first, so on a fresh clone
# `make run-requirements PARALLEL=4` and `make test` are the whole set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Workflow knobs: make run-requirements PARALLEL=4 [REPO=path AGENT=spec] [DRY_RUN=1] [ARGS=...]
# The demo (no REPO) runs the offline `mock` agent; a REPO of yours needs AGENT (claude:sonnet,
# gemini:gemini-2.5-flash, ...): no agent is a default outside the demo.
PARALLEL ?=
REPO     ?=
AGENT    ?=
DRY_RUN  ?=
DEMO_SRC := examples/demo-repo
DEMO_DIR ?= build/demo-repo

RUN_REPO  := $(if $(REPO),$(REPO),$(DEMO_DIR))
RUN_AGENT := $(if $(AGENT),$(AGENT),$(if $(REPO),,mock))
RUN_ENV   := $(if $(REPO),,AGENTOS_MOCK_LATENCY=$${AGENTOS_MOCK_LATENCY:-1})
ARGS      ?=
RUN_FLAGS := $(if $(PARALLEL),--parallel $(PARALLEL)) $(if $(DRY_RUN),--dry-run) $(ARGS)
# the virtualenv's python (with pytest) first on PATH: the implement workflow runs the
# repository's tests (`python -m pytest -q` for the demo) in each item's worktree
RUN_PATH  := PATH=$(abspath $(BIN)):$$PATH

.PHONY: install test-tools test-clis test test-fast lint docs docs-serve run-requirements run-implement demo-reset bench bench-smoke profile dist clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	@# a virtualenv made before the distribution was renamed holds it under its old name
	@$(BIN)/python -m pip uninstall -q -y agentos 2>/dev/null || true
	$(BIN)/python -m pip install -q -e '.[dev]'
	@# byte-compile now: an editable install has no .pyc files, and with PYTHONDONTWRITEBYTECODE
	@# set every agentos process (and every worker) would compile its modules on each start
	$(BIN)/python -m compileall -q agentos scripts
	@touch $(STAMP)

install: $(STAMP)

# Programs some tests use beside the Python packages: GNU parallel reads our joblog, tmux is the
# narrow terminal the progress bar is checked in, headless Chromium renders `agentos report`'s
# page. Installed when missing and possible (root with apt-get, as on CI); otherwise the tests
# that need them skip, saying why.
TEST_TOOLS ?= parallel tmux chromium

test-tools:
	@for tool in $(TEST_TOOLS); do \
	  command -v $$tool >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q $$tool >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$tool >/dev/null 2>&1; } || \
	    echo "note: could not install $$tool; the tests that need it will skip"; \
	  else echo "note: $$tool is not installed; the tests that need it will skip"; fi; \
	done

# The agent CLIs the claude: and gemini: tests run for real (against loopback servers), from npm
# into a project-local folder, pinned: their JSON is what the agents read. Installed when missing
# and npm is there; otherwise those tests skip, saying why. (llm and llm-echo are in the dev extra.)
NODE_DIR  ?= build/node
NODE_CLIS ?= @anthropic-ai/claude-code@2.1.197 @google/gemini-cli@0.61.0

test-clis:
	@if [ -x $(NODE_DIR)/node_modules/.bin/claude ] && [ -x $(NODE_DIR)/node_modules/.bin/gemini ]; then :; \
	elif command -v npm >/dev/null; then \
	  npm install --prefix $(NODE_DIR) --no-audit --no-fund --no-save --loglevel=error $(NODE_CLIS) \
	    >/dev/null 2>&1 || echo "note: could not install $(NODE_CLIS); the tests that need them will skip"; \
	else echo "note: npm is not installed; the claude: and gemini: agent tests will skip"; fi

# The suite runs in TEST_WORKERS pytest-xdist workers (CI has 2 cores; most tests wait on the
# processes they start), each test sent to whichever worker is free. TEST_WORKERS=0 runs it in
# this one process. Every test keeps to its own tmp dirs, scope and processes (tests/conftest.py).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

# the virtualenv, the system tools and the agent CLIs install side by side: on a fresh CI
# machine each takes up to about half a minute. The documentation site is built first (a few
# seconds): a broken link or anchor in it fails the run, as a failing test does.
test:
	@$(MAKE) --no-print-directory -j3 install test-tools test-clis
	@$(MAKE) --no-print-directory docs
	$(PYTEST)

# unit/ and cli/: no end-to-end run (e2e/ is `slow`), no chaos; under a minute
test-fast: $(STAMP)
	$(PYTEST) -m 'not slow and not chaos'

lint: $(STAMP)
	$(BIN)/ruff check agentos scripts tests bench
	$(BIN)/ruff format --check agentos scripts tests bench
	$(BIN)/mypy

# The documentation site, from README.md (its home page) and docs/, into build/site (mkdocs.yml).
# --strict: a warning is an error, so a link or an anchor that leads nowhere fails the build
$(VENV)/.docs: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	@touch $@

# Never --quiet: it hides warnings from the count --strict fails on. The variable only silences
# the material theme's notice about its own future.
DOCS_ENV := NO_MKDOCS_2_WARNING=1

docs: $(VENV)/.docs
	$(DOCS_ENV) $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.docs
	$(DOCS_ENV) $(BIN)/mkdocs serve

# The demo repository: a copy of examples/demo-repo made a git repository of its own (implement
# works on branches), with a committer of its own so that a machine without a git identity runs it.
DEMO_GIT := git -C $(DEMO_DIR) -c init.defaultBranch=main

$(DEMO_DIR)/.git:
	@mkdir -p build
	@test -d $(DEMO_DIR) || cp -R $(DEMO_SRC) $(DEMO_DIR)
	$(DEMO_GIT) init -q
	$(DEMO_GIT) config user.name "agentos demo"
	$(DEMO_GIT) config user.email "demo@agentos.invalid"
	$(DEMO_GIT) add -A
	$(DEMO_GIT) commit -q -m "The notes demo repository"

demo-reset:
	rm -rf $(DEMO_DIR)
	@$(MAKE) --no-print-directory $(DEMO_DIR)/.git

run-requirements: $(STAMP) $(if $(REPO),,$(DEMO_DIR)/.git)
	$(RUN_ENV) $(BIN)/python scripts/run_requirements_workflow.py --repo $(RUN_REPO) $(if $(RUN_AGENT),--drafter $(RUN_AGENT)) $(RUN_FLAGS)

run-implement: $(STAMP) $(if $(REPO),,$(DEMO_DIR)/.git)
	$(RUN_ENV) $(RUN_PATH) $(BIN)/python scripts/run_implement_from_lld.py --repo $(RUN_REPO) $(if $(RUN_AGENT),--implementer $(RUN_AGENT)) $(RUN_FLAGS)

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench
	$(BIN)/python -m bench

profile: $(VENV)/.bench
	$(BIN)/python -m bench.profile

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --smoke

# the sdist and the wheel, into dist/ (what `pip install agentos-batch` would fetch)
dist: $(STAMP)
	$(BIN)/python -m build --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
