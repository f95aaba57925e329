#!/usr/bin/env bash
# The pinned backend images: build, pull, push, or convert them for Apptainer/Singularity.
#
#   images/images.sh build [BACKEND ...]   its Dockerfile on its pinned base (images/recipe.sh)
#   images/images.sh pull  [BACKEND ...]   $REGISTRY/llenergymeasure/<backend>:<version>, retagged
#   images/images.sh push  [BACKEND ...]   the local images to $REGISTRY
#   images/images.sh sif   [BACKEND ...]   images/sif/llem-<backend>-<version>.sif
#
# The local tag is llenergymeasure/<backend>:<version>, the image the orchestrator uses by
# default; IMAGE_REPO and IMAGE_TAG name other local images (the CPU test images are
# llem-test/<backend>:cpu), and SIF_DIR the folder `sif` writes to (images/sif).
# Backends default to every registered engine with a recipe here (images/<backend>/).
set -euo pipefail
cd "$(dirname "$0")/.."
. images/recipe.sh

PYTHON=${PYTHON:-.venv/bin/python}
REPO=${IMAGE_REPO:-llenergymeasure}
action=${1:?usage: images/images.sh build|pull|push|sif [BACKEND ...]}
shift
BACKENDS=("$@")
if [ ${#BACKENDS[@]} -eq 0 ]; then
  for b in $("$PYTHON" -c 'from llem_harness.backends import BACKENDS; print(*BACKENDS)'); do
    recipe "$b" >/dev/null && BACKENDS+=("$b")
  done
fi

VERSION=$("$PYTHON" -c 'import llem_harness; print(llem_harness.__version__)')
FINGERPRINT=$("$PYTHON" -m llem_harness.cli fingerprint)
TAG=${IMAGE_TAG:-$VERSION}
SIF_DIR=${SIF_DIR:-images/sif}

die() { echo "error: $*" >&2; exit 1; }
need_engine() {
  docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start Docker"
}
need_registry() {
  [ -n "${REGISTRY:-}" ] || die "set REGISTRY, e.g. make $1 REGISTRY=ghcr.io/my-org"
}
for b in "${BACKENDS[@]}"; do
  recipe "$b" >/dev/null || die "unknown backend '$b' (no images/$b/Dockerfile or images/$b/base)"
done

case "$action" in
  build)
    need_engine
    for b in "${BACKENDS[@]}"; do
      ctx=.build/images/$b
      rm -rf "$ctx" && mkdir -p "$ctx/wheels"
      # Only the harness wheel: its dependencies come from the index during the build. The
      # context stays in the Dockerfile's install stage; the image gets the installed files.
      "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$ctx/wheels" ./harness
      cp images/install-harness.py "$ctx/"
      mapfile -t how < <(recipe "$b")
      echo "==> $REPO/$b:$TAG (${how[*]})"
      docker build "${how[@]}" \
        --build-arg LLEM_VERSION="$VERSION" \
        --build-arg SCHEMA_FINGERPRINT="$FINGERPRINT" \
        --build-arg PIP_INDEX_ARGS="" \
        -t "$REPO/$b:$TAG" "$ctx"
    done
    ;;
  pull)
    need_engine
    need_registry "images PULL=1"
    for b in "${BACKENDS[@]}"; do
      remote="$REGISTRY/$REPO/$b:$TAG"
      echo "==> pull $remote"
      docker pull "$remote"
      docker tag "$remote" "$REPO/$b:$TAG"
    done
    ;;
  push)
    need_engine
    need_registry push
    for b in "${BACKENDS[@]}"; do
      remote="$REGISTRY/$REPO/$b:$TAG"
      docker image inspect "$REPO/$b:$TAG" >/dev/null 2>&1 \
        || die "$REPO/$b:$TAG is not built; run make images first"
      echo "==> push $remote"
      docker tag "$REPO/$b:$TAG" "$remote"
      docker push "$remote"
    done
    ;;
  sif)
    tool=""
    for t in apptainer singularity; do
      if command -v "$t" >/dev/null; then tool=$t; break; fi
    done
    [ -n "$tool" ] || die "neither apptainer nor singularity is installed; install Apptainer \
(https://apptainer.org/docs/admin/main/installation.html) and run make sif again"
    need_engine
    mkdir -p "$SIF_DIR"
    for b in "${BACKENDS[@]}"; do
      docker image inspect "$REPO/$b:$TAG" >/dev/null 2>&1 \
        || die "$REPO/$b:$TAG is not built; run make images first"
      out="$SIF_DIR/llem-$b-$TAG.sif"
      echo "==> $out ($tool build from the local Docker daemon)"
      "$tool" build --force "$out" "docker-daemon://$REPO/$b:$TAG"
    done
    ;;
  *) die "unknown action '$action' (build, pull, push or sif)" ;;
esac
