# Sourced by images/images.sh and images/test/build.sh: which Dockerfile builds a backend's image.
#
#   recipe BACKEND [BASE_IMAGE]   prints, one per line, the `docker build` arguments that pick it:
#     images/<backend>/Dockerfile, where the engine needs steps of its own (pytorch installs
#     transformers and the quantization libraries as a layer), else
#     images/harness-layer.Dockerfile on the upstream image that images/<backend>/base pins.
#   BASE_IMAGE, when given, replaces the pinned base (the CPU test images' engine bases).
#   It fails for a backend with neither file. On the harness layer, the harness's extras are
#   `measure` plus those images/<backend>/extras names (vllm: gguf, the GGUF loader's two
#   packages, for models given as a GGUF file; docs/backends.md).
recipe() {
  local backend=$1 base=${2:-}
  if [ -f "images/$backend/Dockerfile" ]; then
    printf '%s\n' -f "images/$backend/Dockerfile"
    [ -z "$base" ] || printf '%s\n' --build-arg "BASE_IMAGE=$base"
  elif [ -f "images/$backend/base" ]; then
    printf '%s\n' -f images/harness-layer.Dockerfile --build-arg "BACKEND=$backend" \
      --build-arg "BASE_IMAGE=${base:-$(tr -d '[:space:]' < "images/$backend/base")}" \
      --build-arg "HARNESS_EXTRAS=$(harness_extras "$backend")"
  else
    return 1
  fi
}
# The harness's extras in BACKEND's image: measure, plus images/<backend>/extras (one line).
harness_extras() {
  local more=""
  [ -f "images/$1/extras" ] && more=$(tr -d '[:space:]' < "images/$1/extras")
  printf 'measure%s\n' "${more:+,$more}"
}
