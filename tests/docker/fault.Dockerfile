# A broken backend image for the fault tests: its `llem-harness` writes a result.json that is
# not a result. Everything else (user, mounts, labels) is what a real image gets.
ARG BASE_IMAGE=llem-test/pytorch:cpu
FROM ${BASE_IMAGE}
COPY malformed-harness.sh /fault/llem-harness
ENV PATH=/fault:$PATH
