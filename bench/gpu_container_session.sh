#!/usr/bin/env bash
# One lease on `nvidia-h100-x1` for issue 28: the Docker runner and the Apptainer runner on a GPU,
# each against the local runner. One `device run` per step, back to back (the machine goes back
# after 30 s idle; what a step leaves in /tmp and the running dockerd stay while it is warm).
#
# Made here first (all git-ignored):
#   bash ../shared/gpu/container-rig/prepare.sh .ctr      the rig: Debian's Docker 20.10 and sid's
#                                                         Apptainer 1.4.5, packed to travel
#   .ctr/docker/docker-cli.tar.xz                         usr/bin/docker from Debian's docker.io
#                                                         (setup-docker.sh unpacks it when present)
#   .pyd/  pydantic for the machine's Python 3.12 (bench/h200_vllm_session.sh says how), .whl/ the
#          docker SDK, .gpuctx/ the harness wheel:  .venv/bin/pip wheel --no-deps -w .gpuctx ./harness
#
# Steps:
#   docker     (carry .ctr/docker .pyd .whl .gpuctx)  dockerd with the rig's GPU hook stand-in; the
#              machine's torch environment imported as an image (make-image.py); images/pytorch/
#              Dockerfile on it (the harness layer and labels, as `make images` builds them); a
#              user `bench`; then, through `llem-docker` as that user: doctor, a run with
#              --gpus none, a run stopped by its timeout and one by Ctrl+C (no container may remain)
#   pairs      (after docker)  bench/gpu_container_vs_native.yaml, once per `llem-docker run`, in
#              ABBA order: docker local local docker docker local, as user bench; then the ratios
#   sif        (carry .ctr/apptainer and .ctr/docker's small files, after docker)  sid's Apptainer
#              unpacked (setup-apptainer.sh), `make sif`'s script on the harness image (456 s)
#   apptainer  (same carry, after sif)  apptainer local local apptainer apptainer local, as root
#              (an unprivileged Apptainer without squashfuse would unpack the image every run)
#   vllm       (ran 2026-12-07; after `bench/h200_vllm_session.sh part K` for every part, carry .whl
#              .pyd .gpuctx and .ctr/docker's small files)  vLLM 0.25 from the carried wheels into
#              /tmp/vsite, an image of the imported environment plus /tmp/vsite (PYTHONPATH),
#              vllm's recipe (images/harness-layer.Dockerfile) on it, then bench/gpu_container_vllm.yaml: docker local
#              local docker, as user bench, with the default shm_size (16g)
# dockerd does not outlive the device call that started it; each step starts it again.
# Each step resumes: a pair member whose folder holds a result is not run again, and no new run
# starts after PAIRS_BUDGET_S (default 470) seconds of the call.
set -uo pipefail
step=${1:?usage: gpu_container_session.sh docker|pairs|sif|apptainer|vllm}
OUT=${OUT:-/tmp/out}; W=/tmp/gctr; SRC=/tmp/llem-src; mkdir -p "$W" "$OUT"
CTR=/tmp/ctr; IMAGE=llem-gpu/pytorch:host; T0=$(date +%s)
export DOCKER_HOST=unix:///var/run/docker.sock PYTHONUNBUFFERED=1

env_setup() {
  export PATH=$CTR/appt-bin:$CTR/bin:$CTR/usr/bin:$CTR/usr/sbin:$PATH
  SITE=/tmp/site-base
  [ -d $SITE/pydantic ] || python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl .pyd/*.whl
  # A copy of the checkout that user bench can read (the call's working tree may be under /root).
  if [ ! -d $SRC ]; then mkdir -p $SRC && cp -r orchestrator harness bench examples images Makefile $SRC/; fi
  chmod -R a+rX $SRC $SITE
  export PYTHONPATH=$SITE:$SRC/orchestrator:$SRC/harness
  id bench >/dev/null 2>&1 || useradd -m -s /bin/bash bench
  printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\n' > $W/llem.yaml
  chmod -R a+rwX $W
  export LLEM_CONFIG=$W/llem.yaml
}
as_bench() {  # the same environment, as the unprivileged user
  runuser -u bench -- env PATH="$PATH" PYTHONPATH="$PYTHONPATH" DOCKER_HOST="$DOCKER_HOST" \
    LLEM_CONFIG="$LLEM_CONFIG" HOME=/home/bench PYTHONUNBUFFERED=1 "$@"
}
left() {  # containers with an llem label (what a study starts), as `id name status`
  python3 -c "import docker; c=docker.from_env(); print([(x.short_id, x.name, x.status) for x in c.containers.list(all=True, filters={'label': 'llem.study'})])"
}
pack() { tar -czf "$OUT/$1.tgz" -C "$W" --exclude='*.parquet' . ; tar -czf "$OUT/$1-raw.tgz" -C "$W" . ; ls -la "$OUT"; }

pair_loop() {  # KIND (docker|apptainer) SPEC (its runner value) AS (bench|root) [NAME STUDY VAR PAIRS]
  # ABBA order (container local local container ...) of PAIRS pairs (default 3) of bench/STUDY
  # (default gpu_container_vs_native.yaml), the runner in VAR (default LLEM_RUNNER_PYTORCH);
  # folders $W/NAME-pairs/<k>_<runner> (NAME defaults to KIND), then the ratios.
  local kind=$1 spec=$2 as=$3 name=${4:-$1} study=${5:-gpu_container_vs_native.yaml}
  local var=${6:-LLEM_RUNNER_PYTORCH} n=${7:-3} order=() k=0 dir i r
  for i in $(seq "$n"); do if [ $((i % 2)) = 1 ]; then order+=("$kind" local); else order+=(local "$kind"); fi; done
  for r in "${order[@]}"; do
    k=$((k + 1)); dir=$W/$name-pairs/${k}_$r
    ls "$dir"/*/runs/*/result.json >/dev/null 2>&1 && continue
    if [ $(( $(date +%s) - T0 )) -gt "${PAIRS_BUDGET_S:-470}" ]; then echo "budget: stop before $k ($r)"; break; fi
    rm -rf "$dir"; mkdir -p "$dir"; chmod a+rwX "$W/$name-pairs" "$dir"
    local cmd=(env "$var=$([ "$r" = local ] && echo local || echo "$spec")" python3 -m llem_docker.cli run
               "$SRC/bench/$study" --profile quick --results-dir "$dir")
    if [ "$r" = local ]; then cmd+=(--runner local); else cmd+=(--gpus 0); fi
    echo "== $k $r ($(( $(date +%s) - T0 )) s)"
    if [ "$as" = bench ]; then as_bench "${cmd[@]}" 2>&1 | tail -4; else "${cmd[@]}" 2>&1 | tail -4; fi
  done
  python3 $SRC/bench/container_vs_native.py "$W/$name-pairs" --json "$W/$name-ratios.json"
}

case "$step" in
  docker)
    sh .ctr/probe.sh 2>/dev/null | head -12
    sh .ctr/docker/setup-docker.sh 2>&1 | tail -4 || exit 1
    env_setup
    chmod 666 /var/run/docker.sock  # user bench talks to the engine (a docker group, in effect)
    docker version --format 'client {{.Client.Version}} server {{.Server.Version}}'
    python3 .ctr/docker/make-image.py llem/host-torch:local 2>&1 | tail -2
    # The harness image: images/pytorch/Dockerfile on the imported environment, offline. Its
    # transformers is the machine's own (the engine layer then adds nothing); torchao and
    # bitsandbytes have no wheels here, so they are left out (empty build args).
    ctx=$W/ctx; rm -rf $ctx; mkdir -p $ctx/wheels; cp .pyd/*.whl .gpuctx/*.whl $ctx/wheels/
    cp images/install-harness.py $ctx/
    tf=$(python3 -c 'import transformers; print(transformers.__version__)')
    docker build -q --network none -f images/pytorch/Dockerfile \
      --build-arg BASE_IMAGE=llem/host-torch:local --build-arg TRANSFORMERS_VERSION="$tf" \
      --build-arg TORCHAO_VERSION= --build-arg BITSANDBYTES_VERSION= \
      --build-arg GGUF_VERSION= --build-arg ACCELERATE_VERSION= \
      --build-arg LLEM_VERSION="$(python3 -c 'import llem_harness; print(llem_harness.__version__)')" \
      --build-arg SCHEMA_FINGERPRINT="$(python3 -m llem_harness.cli fingerprint)" \
      -t $IMAGE $ctx 2>&1 | tail -3
    docker image inspect $IMAGE --format '{{json .Config.Labels}}'
    echo "== host GPUs"; nvidia-smi --query-gpu=index,uuid,name,power.limit,persistence_mode --format=csv,noheader
    echo "== doctor (as bench)"
    as_bench env LLEM_RUNNER_PYTORCH=docker:$IMAGE python3 -m llem_docker.cli doctor 2>&1 | tail -14
    echo "== --gpus none (as bench): NVML sees no GPU"
    printf 'model: llem/tiny-llama\nweights: dummy\nbackend: pytorch\nprecision: fp32\nn_prompts: 4\nmax_input_tokens: 32\nmax_output_tokens: 16\n' > $W/tiny.yaml
    as_bench env LLEM_RUNNER_PYTORCH=docker:$IMAGE python3 -m llem_docker.cli run $W/tiny.yaml --profile quick --gpus none --results-dir $W/none 2>&1 | tail -3
    python3 -c "import json,glob; r=json.load(open(glob.glob('$W/none/*/runs/*/result.json')[0])); print('gpus', r['environment']['gpus'], 'energy', r['energy']['total_j'], r['energy']['unavailable_reason'])"
    echo "== timeout (as bench): experiment_timeout_seconds 20"
    printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0, experiment_timeout_seconds: 20}\n' > $W/timeout.yaml; chmod a+r $W/timeout.yaml
    as_bench env LLEM_RUNNER_PYTORCH=docker:$IMAGE LLEM_CONFIG=$W/timeout.yaml python3 -m llem_docker.cli run $SRC/bench/gpu_container_vs_native.yaml --profile quick --gpus 0 --results-dir $W/timeout 2>&1 | tail -3
    echo "exit $?; left: $(left)"
    echo "== Ctrl+C (as bench): SIGINT to llem-docker once its container runs"
    as_bench env LLEM_RUNNER_PYTORCH=docker:$IMAGE setsid python3 -m llem_docker.cli run $SRC/bench/gpu_container_vs_native.yaml --profile quick --gpus 0 --results-dir $W/ctrlc > $W/ctrlc.log 2>&1 &
    pid=$!
    for _ in $(seq 60); do [ "$(left)" != "[]" ] && break; sleep 1; done
    echo "running: $(left)"; sleep 8
    pkill -INT -u bench -f "results-dir $W/ctrlc"; wait $pid; echo "exit $?"; tail -3 $W/ctrlc.log
    sleep 1; echo "left: $(left)"
    echo "== owners of result files (bench is $(id -u bench)):"; find $W/none $W/timeout $W/ctrlc -type f -printf '%u\n' | sort | uniq -c
    pack docker ;;
  pairs)
    env_setup
    # dockerd does not outlive the device call that started it: start it again (its data stays)
    docker version >/dev/null 2>&1 || { sh .ctr/docker/setup-docker.sh 2>&1 | tail -1; chmod 666 /var/run/docker.sock; }
    [ "${RESET:-0}" = 1 ] && rm -rf $W/docker-pairs
    pair_loop docker "docker:$IMAGE" bench
    echo "== files not owned by bench:"; find $W/docker-pairs -not -user bench | head -5
    pack pairs ;;
  sif|apptainer)
    env_setup
    docker version >/dev/null 2>&1 || sh .ctr/docker/setup-docker.sh 2>&1 | tail -1
    [ -x $CTR/appt/usr/bin/apptainer ] || CTR=$CTR sh .ctr/apptainer/setup-apptainer.sh 2>&1 | tail -4
    mkdir -p $CTR/appt-bin   # apptainer's own libraries for apptainer alone, not for the harness
    printf '#!/bin/sh\nexport LD_LIBRARY_PATH=%s/appt/usr/lib/x86_64-linux-gnu PATH=%s/appt/usr/bin:$PATH\nexec %s/appt/usr/bin/apptainer "$@"\n' $CTR $CTR $CTR > $CTR/appt-bin/apptainer
    chmod 755 $CTR/appt-bin/apptainer; apptainer --version
    export APPTAINER_TMPDIR=/tmp/appt-tmp APPTAINER_CACHEDIR=/tmp/appt-cache; mkdir -p $APPTAINER_TMPDIR
    sif=/tmp/sif/llem-pytorch-host.sif
    if [ ! -f $sif ]; then  # 456 s for the 8.9 GB image (4.2 GB SIF) on 16 cores: a call of its own
      s=$(date +%s)
      (cd $SRC && PYTHON=python3 IMAGE_REPO=llem-gpu IMAGE_TAG=host SIF_DIR=/tmp/sif bash images/images.sh sif pytorch 2>&1 | tail -3)
      echo "sif: $(du -h $sif | cut -f1) in $(( $(date +%s) - s )) s"
    fi
    apptainer inspect --json --labels $sif | python3 -c "import json,sys; print({k: v for k, v in json.load(sys.stdin)['data']['attributes']['labels'].items() if k.startswith('llem')})"
    apptainer exec --nv --cleanenv $sif nvidia-smi -L
    if [ "$step" = apptainer ]; then
      # The image is this machine's filesystem, whose ld.so.cache names /usr/local/nvidia/lib64:
      # Triton (torch.compile) then looks for libcuda.so.1 there and nowhere else, and --nv binds
      # the driver's libraries into /.singularity.d/libs instead. Bind the folder, as the Docker
      # rig does (seen 2026-12-07: InductorError "libcuda.so cannot found!" in the warmup).
      printf 'execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\napptainer: {binds: ["/usr/local/nvidia:/usr/local/nvidia:ro"]}\n' > $W/llem.yaml
      [ "${RESET:-0}" = 1 ] && rm -rf $W/apptainer-pairs
      pair_loop apptainer "apptainer:$sif" root
    fi
    pack "$step" ;;
  vllm)
    env_setup
    docker version >/dev/null 2>&1 || { sh .ctr/docker/setup-docker.sh 2>&1 | tail -1; chmod 666 /var/run/docker.sock; }
    if ! docker image inspect llem-gpu/vllm:host >/dev/null 2>&1; then
      cat /tmp/vch/vpart.* > /tmp/v.tar && mkdir -p /tmp/vw && tar -xf /tmp/v.tar -C /tmp/vw || exit 1
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/vctx/site /tmp/vw/*.whl
      printf 'FROM llem/host-torch:local\nCOPY site /opt/vllm-site\nENV PYTHONPATH=/opt/vllm-site VLLM_USE_FLASHINFER_SAMPLER=0\n' > /tmp/vctx/Dockerfile
      docker build -q --network none -t llem-gpu/vllm-engine:host /tmp/vctx | tail -1
      ctx=$W/vctx; rm -rf $ctx; mkdir -p $ctx/wheels; cp .gpuctx/*.whl .pyd/*.whl $ctx/wheels/; cp images/install-harness.py $ctx/
      docker build -q --network none -f images/harness-layer.Dockerfile --build-arg BACKEND=vllm \
        --build-arg BASE_IMAGE=llem-gpu/vllm-engine:host \
        --build-arg LLEM_VERSION="$(python3 -c 'import llem_harness; print(llem_harness.__version__)')" \
        --build-arg SCHEMA_FINGERPRINT="$(python3 -m llem_harness.cli fingerprint)" -t llem-gpu/vllm:host $ctx 2>&1 | tail -2
    fi
    # the local runs need the same vLLM on this machine's Python
    chmod -R a+rX /tmp/vctx/site
    export PYTHONPATH=/tmp/vctx/site:$PYTHONPATH VLLM_USE_FLASHINFER_SAMPLER=0
    pair_loop docker docker:llem-gpu/vllm:host bench vllm gpu_container_vllm.yaml LLEM_RUNNER_VLLM 2
    pack vllm ;;
esac
echo "step $step: $(( $(date +%s) - T0 )) s"
