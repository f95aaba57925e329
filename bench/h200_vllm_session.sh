#!/usr/bin/env bash
# One lease on the lent H200 for issue 15 (vLLM figures): the steps, one `device run` each.
#   bg STEP ... (STEP's carry)    STEP in the background (its own process session), e.g. the PyTorch
#                                 half of a lease while the vLLM parts are copied; then
#   wait-bg [S]                   wait for it (at most S seconds), show its log, return its results
#   part K      (carry .vK)       copy one part of the vLLM wheels (../shared/gpu/prepare-vllm-wheels.sh);
#                                 the device refuses a tree plus carry over 64 MiB, so parts 1-5
#                                 (53 MiB each) go in halves: `part 1a` (carry .v1a), `part 1b`, ...
#                                 `part 5b`, made with `head -c 28000000 .vK/vpart.N > .vKa/vpart.Na`
#                                 and `tail -c +28000001 .vK/vpart.N > .vKb/vpart.Nb`; part 7
#                                 (20 MiB) goes whole; part 6 (52 MB) goes whole with `bench` or
#                                 `install` (carry .v6 .whl) while tree + carry stay under 64 MiB,
#                                 else as `part 6a`, `part 6b` (cut at 26000000 bytes) first
#   chunk K     (carry .bK)       copy one chunk of the same wheels packed by bench/gpu_bundle.py
#                                 (stored, then xz: 237 MB with part 7 in 5 chunks of ~47 MiB,
#                                 not 12 calls): `chunk 1` ... `chunk 4`, the last chunk carried
#                                 with `bench` or `install` (carry .b5 .whl), which then `unpack`
#   unpack      (after the chunks) check the chunks' sha256, decompress them into /tmp/vw (part 7's
#                                 wheels into /tmp/vch); bench/install do it when a chunk is here
#   bench       (carry .v6 .whl)  install vLLM into /tmp/site, run bench/gpu_vllm.py
#   install     (carry .v6 .whl)  only install vLLM (and part 7: the server wheels) into /tmp/site
#   study       (carry .whl)      examples/gpu-vllm-vs-pytorch.yaml through `llem-docker run --runner local`,
#                                 stopped cleanly (SIGINT) before the call's limit
#   resume      (carry .whl)      --resume the same study folder, then report it
#   tp2         (after bench)     examples/gpu-vllm-tp2.yaml (needs two GPUs: nvidia-h200-x2)
#   before      (carry .before .whl .pyd)  examples/gpu-batch-sweep.yaml on the checkout before the
#                                 compile caches and timing (.before: `bench/h200_vllm_session.sh
#                                 prepare-before` here), each process with empty compile caches,
#                                 as every fresh container had them
#   after       (carry .whl .pyd) the same study on this checkout
#   phases      (after bench)     examples/gpu-phases.yaml: the phase check (issue 17)
#   review run, review rerun (carry .whl .pyd) issue 32: $STUDY (default
#                                 examples/gpu-batch-sweep.yaml) run; then packed, reproduced
#                                 from the pack and compared at 2% and 5%
#   gguf K      (carry .gK)       copy one part of SmolLM2's GGUF (.g1 also holds the gguf and
#                                 accelerate wheels): `split -n 2 -d -a 1 FILE` of the fetched file
#   smollm2     (after install and gguf 1-2, carry .whl) issue 31: bench/h200_smollm2_quality.yaml
#   loadgen     (nothing carried) bench/loadgen_limits.py on the machine's 16 cores (issue 33)
#   probe       (carry .whl .pyd) bench/h200_load_probe.py: where load and the first warmup
#                                 pass go, and what powercap (RAPL) offers
#   sweep       (after install)   $STUDY through the local runner, stopped cleanly before the
#                                 call's limit; a second call resumes the same folder. Then
#                                 collect (--partial when unfinished) and report
#                                 (bench/h200_serving_sweep.yaml: issue 18; bench/h200_quant.yaml,
#                                 h200_quant_vllm.yaml and h200_quant_batch.yaml: 19;
#                                 PROFILE=publication STUDY=examples/gpu-batch-sweep.yaml and
#                                 bench/h200_publication_vllm.yaml: 30; bench/h200_capacity.yaml:
#                                 33, needs part 7; a resumed study keeps
#                                 the profile its manifest recorded)
# The bench step takes SECTIONS, VARIANTS and ROUNDS (bench/gpu_vllm.py's options).
# .whl (the docker SDK) and .pyd (pydantic, which the machine's Python 3.12 lacks) are made
# here, git-ignored, with `pip download --no-deps --only-binary=:all: --python-version 3.12
# --platform manylinux2014_x86_64 -d .pyd pydantic==2.14.4 pydantic-core==2.50.5
# annotated-types==0.8.0 typing-inspection==0.4.5` (and `-d .whl docker==7.1.0`).
# .v7 (part 7: the API server's dependencies, for `sweep` with scenario: serving) is made with
# `pip download --only-binary=:all: --python-version 3.12 --implementation cp --platform
# manylinux2014_x86_64 (and manylinux_2_17/2_28/2_31/2_34) -d .v7 "uvicorn[standard]"
# model-hosting-container-standards prometheus-fastapi-instrumentator "fastapi[standard]<0.137"
# aiohttp`, less the wheels parts 1-6 already carry (fastapi, starlette, pydantic*, ...); plus, with
# --no-deps, torchao==0.18.0 (pytorch fp8), compressed-tensors==0.17.0 and loguru (vllm fp8).
# (Made so on 2026-12-07: 52 wheels, 20 MiB.)
# Results go to /tmp/h200 (kept while the machine stays warm) and, tarred, to $OUT.
set -uo pipefail
step=$1; shift
OUT=${OUT:-/tmp/out}; W=/tmp/h200; mkdir -p "$W" "$OUT"
env_setup() {
  # With the vLLM wheels (they bring pydantic): /tmp/site; without: /tmp/site-base, from .pyd
  # (pydantic, which the machine lacks) and .whl (the docker SDK).
  if [ -d /tmp/vw ]; then SITE=/tmp/site; [ -d $SITE/vllm ] || python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE /tmp/vw/*.whl .whl/*.whl
  else SITE=/tmp/site-base; [ -d $SITE/pydantic ] || python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl .pyd/*.whl; fi
  export PYTHONPATH=$SITE:$PWD/orchestrator:$PWD/harness VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
  printf 'measurement: {window: steady_state, baseline_seconds: 2}\nexecution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\noutput: {results_dir: %s/results}\n' "$W" > "$W/llem.yaml"
  export LLEM_CONFIG=$W/llem.yaml
}
pack() { tar -czf "$OUT/$1.tgz" -C "$W" . ; ls -la "$OUT"; }
case "$step" in
  bg)  # `bg STEP ARGS...`: STEP in its own process session, so that it outlives this call (the
       # device ends a call's other processes); its log: /tmp/bg.log, its packed results: /tmp/bout.
       # The next calls can copy parts meanwhile; `wait-bg` waits for it.
    mkdir -p /tmp/bout; OUT=/tmp/bout setsid nohup bash "$0" "$@" > /tmp/bg.log 2>&1 < /dev/null &
    echo $! > /tmp/bg.pid; sleep "${BG_SHOW_S:-20}"; nvidia-smi -L; tail -5 /tmp/bg.log ;;
  wait-bg)  # wait (at most $1 s, default 540) for the `bg` step; then its log and results to $OUT
    pid=$(cat /tmp/bg.pid) || exit 1; end=$((SECONDS + ${1:-540}))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 2; done
    kill -0 "$pid" 2>/dev/null && echo "still running (pid $pid)" || echo "ended"
    date; tail -60 /tmp/bg.log; cp /tmp/bout/* "$OUT"/ 2>/dev/null; ls -la "$OUT" ;;
  part) mkdir -p /tmp/vch && cp ".v$1"/* /tmp/vch/ && ls /tmp/vch && nvidia-smi -L ;;
  chunk) mkdir -p /tmp/bch && cp ".b$1"/* /tmp/bch/ && ls /tmp/bch && nvidia-smi -L ;;
  unpack)  # the xz bundle (bench/gpu_bundle.py) to /tmp/vw: vLLM's wheels, part 7's in /tmp/vch
    mkdir -p /tmp/bch /tmp/vch; for d in .b[0-9]*; do [ -d "$d" ] && cp "$d"/* /tmp/bch/; done
    read -r sum n < /tmp/bch/bundle.sha256 || { echo "no bundle.sha256: carry the last chunk"; exit 1; }
    have=$(ls /tmp/bch/bpart.* | wc -l); [ "$have" = "$n" ] || { echo "$have of $n chunks here: run the missing chunk K calls"; exit 1; }
    echo "$sum  -" > /tmp/bch/want; cat /tmp/bch/bpart.* | sha256sum -c /tmp/bch/want >/dev/null || { echo "the chunks do not join to the bundle"; exit 1; }
    rm -rf /tmp/vw && mkdir -p /tmp/vw && cat /tmp/bch/bpart.* | python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.LZMAFile(sys.stdin.buffer), sys.stdout.buffer, 1 << 22)' | tar -x -C /tmp/vw || exit 1
    mv /tmp/vw/extra/*.whl /tmp/vch/ 2>/dev/null; rmdir /tmp/vw/extra 2>/dev/null; echo "unpacked $(ls /tmp/vw/*.whl | wc -l) wheels (+$(ls /tmp/vch/*.whl 2>/dev/null | wc -l) of part 7)" ;;
  bench|install)
    if [ -f /tmp/bch/bundle.sha256 ] || ls .b[0-9]*/bundle.sha256 >/dev/null 2>&1; then
      [ -d /tmp/vw ] || bash "$0" unpack || exit 1
    else
      # part 6 comes whole with this call (carry .v6 .whl) or, once the tree has grown too large
      # for that, beforehand in halves (`part 6a`, `part 6b`; this call then carries only .whl)
      if [ -d .v6 ]; then rm -f /tmp/vch/vpart.5?; cp .v6/* /tmp/vch/ || exit 1; fi
      ls /tmp/vch/vpart.5* >/dev/null 2>&1 || { echo "part 6 missing: carry .v6, or run part 6a and 6b first"; exit 1; }
      cat /tmp/vch/vpart.* > /tmp/v.tar && mkdir -p /tmp/vw && tar -xf /tmp/v.tar -C /tmp/vw || exit 1
    fi
    env_setup; python3 -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
    # part 7 (.v7, optional): the API server's wheels (uvicorn, h11, prometheus-fastapi-instrumentator,
    # model-hosting-container-standards, ...): each installed only where the machine lacks its module.
    for w in /tmp/vch/*.whl; do
      [ -f "$w" ] || continue
      mods=$(python3 -m zipfile -l "$w" | awk 'NR>1{print $1}' | cut -d/ -f1 | grep -v -e dist-info -e '\.data$' | sed 's/\.py$//' | grep -v '\.' | sort -u)
      for m in $mods; do python3 -c "import importlib.util as u,sys; sys.exit(u.find_spec('$m') is not None)" && { python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$w" 2>&1 | grep -v 'already exists' | tail -2; echo "added $(basename "$w")"; break; }; done
    done
    python3 -c 'import vllm.entrypoints.openai.api_server' 2>&1 | tail -3
    [ "$step" = install ] && exit 0
    timeout -s INT "${BENCH_LIMIT_S:-450}" python3 bench/gpu_vllm.py --out "$W/bench" \
      --sections "${SECTIONS:-overhead,harness}" --variants "${VARIANTS:-plain_off,harness,plain_on}" \
      --rounds "${ROUNDS:-2}" 2>&1 | tail -40
    pack bench ;;
  tp2)
    env_setup; nvidia-smi -L
    timeout -s INT "${STUDY_LIMIT_S:-500}" python3 -m llem_docker.cli run examples/gpu-vllm-tp2.yaml --runner local --yes 2>&1 | tail -25
    mv "$W/results" "$W/tp2"; python3 bench/measured_share.py "$W"/tp2/*/
    pack tp2 ;;
  phases)
    env_setup
    timeout -s INT "${STUDY_LIMIT_S:-540}" python3 -m llem_docker.cli run "${STUDY:-examples/gpu-phases.yaml}" --runner local --yes 2>&1 | tail -15
    mv "$W/results" "$W/phases"
    python3 -m llem_docker.cli report "$W"/phases/*/ --format md --out "$W/phases-report" --no-plots >/dev/null; head -30 "$W/phases-report/report.md"
    pack phases ;;
  loadgen)  # issue 33: the load generator's send lag on this machine's cores (no GPU used)
    nproc; python3 bench/loadgen_limits.py --rates "${RATES:-2000,4000,8000,12000,16000}" \
      --senders "${SENDERS:-1,2,4,8}" --seconds 3 2>&1 | tail -30 ;;
  probe)
    env_setup; timeout -s INT "${PROBE_LIMIT_S:-420}" python3 bench/h200_load_probe.py 2>&1 | tee "$W/probe.txt" | tail -250
    pack probe ;;
  prepare-before)  # here, not on the device: the checkout before the caches, plus sitecustomize
    rm -rf .before && mkdir .before && git archive "${BEFORE:-cc17d2a}" | tar -x -C .before
    mkdir -p .before/fresh && cat > .before/fresh/sitecustomize.py <<'PY'
# Every process starts with empty compile caches, as each fresh container did before the
# runners mounted a persistent one.
import os, tempfile
for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
    os.environ[name] = tempfile.mkdtemp(prefix="fresh-" + name.lower() + "-")
PY
    grep -qx '/.before/' .git/info/exclude || echo /.before/ >> .git/info/exclude ;;
  before|after)
    env_setup; study=$PWD/${STUDY:-examples/gpu-batch-sweep.yaml}
    printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\noutput: {results_dir: %s/%s, engine_cache_dir: /tmp/llem-engines-%s}\n' "$W" "$step" "$step" > "$W/llem.yaml"
    (
      if [ "$step" = before ]; then cd .before && export PYTHONPATH=$PWD/fresh:$SITE:$PWD/orchestrator:$PWD/harness; fi
      timeout -s INT "${STUDY_LIMIT_S:-540}" python3 -m llem_docker.cli run "$study" --runner local --yes 2>&1 | tail -15
    )
    python3 bench/measured_share.py "$W/$step"/*/ --json "$W/share-$step.json"
    pack "$step" ;;
  sweep)
    env_setup; name=$(basename "${STUDY:?set STUDY}" .yaml); dir=$(ls -d "$W/$name"/*/ 2>/dev/null | head -1)
    resume=(); [ -n "$dir" ] && resume=(--resume "$dir")
    printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\noutput: {results_dir: %s/%s}\n' "$W" "$name" > "$W/llem.yaml"
    profile=(); [ -n "${PROFILE:-}" ] && [ -z "$dir" ] && profile=(--profile "$PROFILE")
    timeout -s INT "${STUDY_LIMIT_S:-520}" python3 -m llem_docker.cli run "$STUDY" --runner local --yes "${profile[@]}" "${resume[@]}" 2>&1 | tail -20
    dir=$(ls -d "$W/$name"/*/ | head -1)
    [ -f "$dir/study.json" ] || python3 -m llem_docker.cli collect "$dir" --partial
    python3 -m llem_docker.cli report "$dir" --format md --out "$W/$name-report" 2>&1 | tail -3
    head -60 "$W/$name-report/report.md"
    pack "$name" ;;
  review)  # issue 32: a small PyTorch study, packed, reproduced on the same machine, compared
    env_setup; s=${STUDY:-examples/gpu-batch-sweep.yaml}
    printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\noutput: {results_dir: %s/review-a}\n' "$W" > "$W/llem.yaml"
    if [ "${1:-run}" = run ]; then  # first call: the study; second (`review rerun`): the rest
      timeout -s INT "${STUDY_LIMIT_S:-540}" python3 -m llem_docker.cli run "$s" --runner local --yes 2>&1 | tail -5
      pack review-a; exit 0
    fi
    a=$(ls -d "$W"/review-a/*/ | head -1); python3 -m llem_docker.cli pack "$a" --out "$W/a.tar.gz"
    timeout -s INT "${STUDY_LIMIT_S:-520}" python3 -m llem_docker.cli reproduce "$W/a.tar.gz" --runner local --results-dir "$W/review-b" 2>&1 | tail -30
    b=$(ls -d "$W"/review-b/*/ | head -1)
    for m in 2% 5%; do python3 -m llem_docker.cli compare "$a" "$b" --margin $m --format md > "$W/compare-$m.md"; head -30 "$W/compare-$m.md"; done
    pack review ;;
  gguf) mkdir -p /tmp/gg && cp ".g$1"/* /tmp/gg/ && ls -la /tmp/gg ;;
  smollm2)  # issue 31: SmolLM2 (.g1 .g2: the GGUF in two parts and the gguf/accelerate wheels)
    f=/tmp/hf/llem-models/llem--smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
    mkdir -p "$(dirname "$f")" && cat /tmp/gg/gpart.* > "$f" || exit 1
    echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $f" | sha256sum -c || exit 1
    env_setup
    for m in gguf accelerate; do
      python3 -c "import $m" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" /tmp/gg/$m-*.whl
    done
    python3 -c 'import gguf, accelerate, transformers; print("gguf", gguf.__file__, "accelerate", accelerate.__version__, "transformers", transformers.__version__, "GgufConfig", hasattr(transformers, "GgufConfig"))'
    HF_HOME=/tmp/hf STUDY=bench/h200_smollm2_quality.yaml STUDY_LIMIT_S=${STUDY_LIMIT_S:-520} bash "$0" sweep ;;
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
