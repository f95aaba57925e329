#!/usr/bin/env bash
# One lease on the lent H200 for issue 15 (vLLM figures): the steps, one `device run` each.
#   part K      (carry .vK)       copy one part of the vLLM wheels (../shared/gpu/prepare-vllm-wheels.sh)
#   bench       (carry .v6 .whl)  install vLLM into /tmp/site, run bench/gpu_vllm.py
#   study       (carry .whl)      examples/gpu-vllm-vs-pytorch.yaml through `llem-docker run --runner local`,
#                                 stopped cleanly (SIGINT) before the call's limit
#   resume      (carry .whl)      --resume the same study folder, then report it
# Results go to /tmp/h200 (kept while the machine stays warm) and, tarred, to $OUT.
set -uo pipefail
step=$1; shift
OUT=${OUT:-/tmp/out}; W=/tmp/h200; mkdir -p "$W" "$OUT"
env_setup() {
  [ -d /tmp/site/vllm ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/vw/*.whl .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/orchestrator:$PWD/harness VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
  printf 'measurement: {window: steady_state, baseline_seconds: 2}\nexecution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\noutput: {results_dir: %s/results}\n' "$W" > "$W/llem.yaml"
  export LLEM_CONFIG=$W/llem.yaml
}
pack() { tar -czf "$OUT/$1.tgz" -C "$W" . ; ls -la "$OUT"; }
case "$step" in
  part) mkdir -p /tmp/vch && cp ".v$1"/* /tmp/vch/ && ls /tmp/vch && nvidia-smi -L ;;
  bench)
    cp .v6/* /tmp/vch/ && cat /tmp/vch/vpart.* > /tmp/v.tar && mkdir -p /tmp/vw && tar -xf /tmp/v.tar -C /tmp/vw || exit 1
    env_setup; python3 -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
    timeout -s INT "${BENCH_LIMIT_S:-450}" python3 bench/gpu_vllm.py --out "$W/bench" --sections overhead,harness --rounds "${ROUNDS:-2}" 2>&1 | tail -40
    pack bench ;;
  study)
    env_setup
    timeout -s INT "${STUDY_LIMIT_S:-480}" python3 -m llem_docker.cli run examples/gpu-vllm-vs-pytorch.yaml --runner local --yes 2>&1 | tail -25
    pack study ;;
  resume)
    env_setup; dir=$(ls -d "$W"/results/*/ | head -1)
    timeout -s INT "${STUDY_LIMIT_S:-420}" python3 -m llem_docker.cli run examples/gpu-vllm-vs-pytorch.yaml --runner local --yes --resume "$dir" 2>&1 | tail -25
    [ -f "$dir/study.json" ] || python3 -m llem_docker.cli collect "$dir" --partial
    python3 -m llem_docker.cli report "$dir" --format md --out "$W/report" --no-plots >/dev/null; cat "$W/report/report.md" | head -40
    pack resume ;;
esac
