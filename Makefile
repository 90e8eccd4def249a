# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint mutation install native bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

# The decision path compiled with mypyc (streams/native.py), rebuilt when its sources change.
# Optional: where it cannot be built (no C compiler) this says so and the Python reference runs.
NATIVE_SOURCES := $(wildcard streams/core/*.py) streams/processor.py streams/partitioning.py streams/native.py
NATIVE := streams/_native_sources.json

$(NATIVE): $(STAMP) $(NATIVE_SOURCES)
	$(BIN)/python -c 'import sys; from streams.native import main; sys.exit(main(["build", "--optional"]))'

native: $(NATIVE)

install: $(STAMP) $(NATIVE)

demo: $(STAMP) $(NATIVE)
	$(BIN)/trackguard demo

# Tests run in a random order (pytest-randomly); the seed is printed, and SEED=N repeats an order.
ifndef SEED
SEED := $(shell od -An -N2 -tu2 /dev/urandom | tr -d ' ')
endif

# The whole suite runs on the build `make native` left (compiled where it could be), then the quick
# tier (no broker) again on the Python build.
test: $(STAMP) $(NATIVE)
	@echo "test order: random, seed $(SEED) (make test SEED=$(SEED) repeats it); decision path: $$($(BIN)/python -c 'from streams import native; print(native.build)')"
	$(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED)
	@echo "again on the Python reference of the decision path (TRACKGUARD_PURE=1):"
	TRACKGUARD_PURE=1 $(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED) -m "not broker"

# ruff (lint + format check) and mypy (strict on streams/core): .ci/run runs this before the tests.
lint: $(STAMP)
	$(BIN)/ruff check streams tests bench
	$(BIN)/ruff format --check streams tests bench
	$(BIN)/mypy

# Mutation testing of the pure core and the processor (by hand, minutes to hours): its own venv,
# since mutmut 3.8 needs a click release that faust-streaming refuses. Results: docs/MUTATION.md.
.venv-mutmut/.installed:
	$(PYTHON) -m venv .venv-mutmut
	.venv-mutmut/bin/pip install --quiet "mutmut==3.8.1" "pytest>=9.0" "hypothesis>=6.150" "orjson>=3.13.0" "python-stdnum==2.2" aiokafka
	touch $@

mutation: .venv-mutmut/.installed
	.venv-mutmut/bin/mutmut run --max-children 2
	.venv-mutmut/bin/mutmut results

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .venv-mutmut mutants data .demo build $(NATIVE)
	find streams -name '*.so' -delete
