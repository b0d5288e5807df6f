# Two entry points for a fresh machine: `make train` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU-only torch when the machine has no NVIDIA GPU, so set-up never pulls a multi-gigabyte CUDA build.
# torch >= 2.10: checkpoints are read with torch.load(weights_only=True), whose unpickler could run code from a
# crafted file before 2.6 (CVE-2025-32434) and corrupt memory before 2.10 (CVE-2026-24747); an older torch in
# the venv is replaced.
TORCH_CPU_SPEC ?= torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TRAIN_CONFIG ?= experiments/configs/navigation2d_smoke.yaml
# a new directory per run, so that running it again never replaces an earlier run
TRAIN_OUTPUT ?= runs/navigation2d-smoke-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup train test test-ray bench bench-ray lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import sys, torch; sys.exit(tuple(map(int, torch.__version__.split('+')[0].split('.')[:2])) < (2, 10))" 2>/dev/null; then \
		echo "torch already installed"; \
	elif nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip install --upgrade "torch>=2.10"; \
	else \
		$(BIN)/pip install "$(TORCH_CPU_SPEC)" || $(BIN)/pip install --upgrade "torch>=2.10" --index-url $(TORCH_CPU_INDEX); \
	fi
	$(BIN)/pip install -e ".[test]"
	touch $@

train: setup
	$(BIN)/metarl train --config $(TRAIN_CONFIG) --output $(TRAIN_OUTPUT)

# the tests, then the lint: CI runs exactly this
test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory lint

# the whole suite plus the Ray sampler tests (a real local Ray); installs the [ray] extra first
test-ray: setup
	$(BIN)/pip install -q -e ".[test,ray]"
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check --select F,E9,B --ignore B008,B905 envs metarl experiments tests
	$(BIN)/mypy --ignore-missing-imports envs metarl

bench: setup
	$(BIN)/python experiments/bench_envs.py

bench-ray: setup
	$(BIN)/pip install -q -e ".[ray]"
	$(BIN)/python experiments/bench_ray.py

clean:
	rm -rf $(VENV) *.egg-info
