#!/bin/sh
# Runs inside `docker build` (images/<backend>/Dockerfile): installs the harness on top of the
# engine image without replacing any of it. Every package already installed is pinned as a
# pip constraint, so the engine's torch/CUDA stack (and everything else) stays as it is; a
# real conflict fails the build instead of upgrading silently.
#   install-harness.sh REQUIREMENT [PIP_ARGS ...]   (wheels in /tmp/llem/wheels)
set -eu
requirement=$1
shift
pins=/tmp/llem/engine-pins.txt
python3 -m pip list --format=freeze 2>/dev/null | grep -E '^[A-Za-z0-9._-]+==' \
  | grep -viE '^(pip|setuptools|wheel)==' > "$pins" || true
# Upstream images on Ubuntu 24.04 mark their system Python as externally managed.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --disable-pip-version-check \
  "$@" --find-links /tmp/llem/wheels -c "$pins" "$requirement"
llem-harness --version
