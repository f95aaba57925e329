#!/usr/bin/env bash
# The report on real GPU energy: run examples/gpu-batch-sweep.yaml natively (local runner) on
# a GPU machine without Docker or network, then `llem-docker report` it as HTML. The host
# packages come from this checkout (PYTHONPATH) plus the wheels in .whl/ that the machine
# lacks (pydantic, docker, typer). Everything lands in $OUT (default ./gpu-report).
#   bash bench/gpu_report.sh [OUT]
set -uo pipefail
OUT="${1:-${OUT:-./gpu-report}}"
mkdir -p "$OUT"
DEPS="$(mktemp -d)"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target "$DEPS" .whl/*.whl
fi
export PYTHONPATH="$DEPS:$PWD/orchestrator:$PWD/harness"
llem() { python3 -m llem_docker.cli "$@"; }
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' | tee -a "$OUT/gpu.txt"
# SIGINT before the machine's limit: the study stops cleanly and keeps what it measured.
timeout -s INT "${STUDY_LIMIT_S:-480}" python3 -m llem_docker.cli run examples/gpu-batch-sweep.yaml --runner local \
  --no-gaps --results-dir "$OUT/results" 2>&1 | tail -30
dir="$(ls -d "$OUT"/results/*/ | head -1)"
[ -f "$dir/study.json" ] || llem collect "$dir" --partial
llem report "$dir" --format html --out "$OUT/report"
llem report "$dir" --format md --out "$OUT/report" >/dev/null
llem report "$dir" --format json > "$OUT/report/report.json"
cat "$OUT/report/report.md"
