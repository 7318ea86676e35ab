# brainops: `make run` runs the agent on the embedded default, `make test` runs the tests.
# Both create .venv and install everything on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build by default. A GPU host installs its CUDA build instead, e.g.
#   make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run test bench lint typecheck clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/brainops brain prepare-embedder
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/brainops run

# `make test` runs every test; the quick loop is `make test PYTEST_ARGS='-m "not slow"'` (under a minute).
PYTEST_ARGS ?=
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Writes bench/out/ (figures, results, logs: git-ignored) and bench/REPORT.md (committed). BENCH_ARGS=--quick etc.
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy core llm brain fleet workers tools policies graphs agent evals

# Drains the workers `make run` started (brainops workers stop --all: SIGTERM, SIGKILL after 30 s) before deleting
# the venv they run from. The state stays where the config puts it (without one: ~/.local/state/brainops).
clean:
	@if [ -x $(BIN)/brainops ]; then \
		$(BIN)/brainops workers stop --all || { echo "make clean: workers still running (above); nothing deleted"; exit 1; }; \
	fi
	rm -rf $(VENV) .brainops
