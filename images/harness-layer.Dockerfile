# The image of an engine whose upstream image already holds the engine (vllm, tensorrt): that
# image plus the harness. BASE_IMAGE (images/<backend>/base: the tag and the digest public
# sources give for it, docs/images.md) and BACKEND are set by images/images.sh (recipe.sh).
#
# The harness layer adds llem-harness and whatever of its dependencies the engine lacks, and
# replaces nothing. The install stage runs images/install-harness.py from the build context
# (that script and wheels/, which images/images.sh prepares); the final stage copies only the
# files the install added onto the engine, as one layer, so no wheel or script of the build
# context reaches the image. Any builder works (the classic one and BuildKit). CI builds this
# same file on a locally bootstrapped CPU base (`make test-images`, see images/test/build.sh).
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS install
ARG BACKEND
ARG LLEM_VERSION=0.1.0
# The harness's extras (images/recipe.sh: measure, plus images/<backend>/extras)
ARG HARNESS_EXTRAS=measure
# "--no-index" installs only from the wheels in the build context (offline builds);
# set it to "" to let pip reach an index for dependencies that are not there.
ARG PIP_INDEX_ARGS=--no-index
# Imported once in the build so that a run starts from their bytecode.
ARG WARM="llem_harness.backends.${BACKEND}.backend"
COPY . /tmp/llem/
RUN python3 /tmp/llem/install-harness.py --layer /tmp/llem-layer --warm "$WARM" \
      "llem-harness[${HARNESS_EXTRAS}]==${LLEM_VERSION}" ${PIP_INDEX_ARGS}

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG BACKEND
ARG LLEM_VERSION=0.1.0
ARG SCHEMA_FINGERPRINT=unknown
COPY --from=install /tmp/llem-layer/ /
# The copied layer is complete: the harness runs (writing no bytecode into the image).
RUN PYTHONDONTWRITEBYTECODE=1 llem-harness --version

# Containers run as the calling user (--user uid:gid), who has no home in the image.
# Engines that report usage by default (vLLM) send nothing anywhere from a measurement run.
ENV HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/llem/hf-cache \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
ENTRYPOINT []
CMD ["llem-harness", "--help"]

LABEL org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.title="llem-docker ${BACKEND} backend" \
      org.opencontainers.image.version="${LLEM_VERSION}" \
      llem.backend="${BACKEND}" \
      llem.harness.version="${LLEM_VERSION}" \
      llem.schema.fingerprint="${SCHEMA_FINGERPRINT}"
