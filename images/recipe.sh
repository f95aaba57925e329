# Sourced by images/images.sh and images/test/build.sh: which Dockerfile builds a backend's image.
#
#   recipe BACKEND [BASE_IMAGE]   prints, one per line, the `docker build` arguments that pick it:
#     images/<backend>/Dockerfile, where the engine needs steps of its own (pytorch installs
#     transformers and the quantization libraries as a layer), else
#     images/harness-layer.Dockerfile on the upstream image that images/<backend>/base pins.
#   BASE_IMAGE, when given, replaces the pinned base (the CPU test images' engine bases).
#   It fails for a backend with neither file.
recipe() {
  local backend=$1 base=${2:-}
  if [ -f "images/$backend/Dockerfile" ]; then
    printf '%s\n' -f "images/$backend/Dockerfile"
    [ -z "$base" ] || printf '%s\n' --build-arg "BASE_IMAGE=$base"
  elif [ -f "images/$backend/base" ]; then
    printf '%s\n' -f images/harness-layer.Dockerfile --build-arg "BACKEND=$backend" \
      --build-arg "BASE_IMAGE=${base:-$(tr -d '[:space:]' < "images/$backend/base")}"
  else
    return 1
  fi
}
