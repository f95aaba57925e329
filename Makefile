# llem-docker developer entry points. `make setup` then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build; on these machines pip takes it from a local wheel.
TORCH_VERSION ?= 2.13.0

.PHONY: setup test unit lint bench clean test-images images push sif slurm-up slurm-down apptainer-up apptainer-down schemas

setup: $(BIN)/llem-docker

$(BIN)/llem-docker: pyproject.toml harness/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e './harness[measure,pytorch,quantization]' -e '.[dev]' 'torch==$(TORCH_VERSION)'
	@touch $@

test: setup lint
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest tests/harness tests/orchestrator

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/engine_names.py

# The pinned backend images llenergymeasure/<backend>:<version> (images/images.sh).
#   make images [BACKENDS="pytorch vllm"]      build on the pinned upstream bases
#   make images PULL=1 REGISTRY=host/org       pull the published ones instead, and retag
#   make push REGISTRY=host/org                push the local ones
#   make sif                                   images/sif/llem-<backend>-<version>.sif
BACKENDS ?=
images: setup
	PYTHON=$(BIN)/python images/images.sh $(if $(PULL),pull,build) $(BACKENDS)

push: setup
	PYTHON=$(BIN)/python images/images.sh push $(BACKENDS)

sif: setup
	PYTHON=$(BIN)/python images/images.sh sif $(BACKENDS)

# CPU test images llem-test/<backend>:cpu, built with no registry (images/test/build.sh).
test-images: setup
	PYTHON=$(BIN)/python TORCH_VERSION=$(TORCH_VERSION) images/test/build.sh $(or $(BACKENDS),pytorch)

# docs/schemas/*.schema.json from the models (a test fails when they are stale).
schemas: setup
	$(BIN)/python -m llem_docker.store.schemas docs/schemas

# A single-node SLURM cluster on this machine (Debian's slurm-wlm + munge; root or sudo), for
# tests/slurm and for trying `--executor slurm` without a cluster.
slurm-up:
	bash tests/slurm/slurm-up.sh

slurm-down:
	bash tests/slurm/slurm-down.sh

# A real apptainer on a Debian bookworm machine (Debian unstable's package in an mmdebstrap root
# of its own, a wrapper in /usr/local/bin; root or sudo), for tests/apptainer and `make sif`.
apptainer-up:
	bash tests/apptainer/apptainer-up.sh

apptainer-down:
	bash tests/apptainer/apptainer-down.sh

bench: setup test-images
	$(BIN)/python bench/expand.py
	$(BIN)/python bench/docker_overhead.py --tail-of 500 --out bench/results/docker_overhead.json
	$(BIN)/python bench/loadgen_limits.py
	$(BIN)/python bench/preflight.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
