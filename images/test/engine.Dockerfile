# CPU stand-in for an upstream engine image, built with no registry: a Debian base that
# images/test/build.sh bootstrapped with mmdebstrap, plus the engine's Python packages from
# wheels that the host prepared (requirements.txt lists them; empty for a base without
# the engine). PATH puts the venv first, as the upstream images put their Python first.
# The wheels stay in the first stage: the image gets the venv only.
ARG DEBIAN_BASE=llem-test/debian:bookworm
FROM ${DEBIAN_BASE} AS install
COPY requirements.txt /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
    && if grep -q '[^[:space:]]' /tmp/requirements.txt; then \
         /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
           --find-links /tmp/wheels -r /tmp/requirements.txt; \
       fi \
    && { /opt/venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true; }
# torchvision/torchaudio from PyPI do not load beside the CPU torch ("operator torchvision::nms
# does not exist"), and transformers then fails to import; nothing here needs them.

FROM ${DEBIAN_BASE}
ENV LANG=C.UTF-8 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=install /opt/venv /opt/venv
