"""Backend images as the host sees them: labels, digest, and the host/image handshake.

Every image `make images` builds (images/recipe.sh) carries OCI labels naming the harness
version and the fingerprint of the exchange schema it speaks. Before a study, the host reads
them and refuses an image that speaks another schema, or that is not there at all, with the
command that fixes it. `LLEM_SKIP_IMAGE_CHECK=1` skips the check (with a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llem_docker.errors import LlemError
from llem_harness.host_api import __version__, schema_fingerprint

LABEL_VERSION = "org.opencontainers.image.version"
LABEL_HARNESS = "llem.harness.version"
LABEL_FINGERPRINT = "llem.schema.fingerprint"
SKIP_VAR = "LLEM_SKIP_IMAGE_CHECK"


class ImageMismatch(LlemError):
    """The image is missing, or speaks another exchange schema than this host."""


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    present: bool
    image_id: str | None = None
    digest: str | None = None  # repo@sha256:… when it came from a registry, else the image id
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str | None:
        return self.labels.get(LABEL_FINGERPRINT)

    @property
    def harness_version(self) -> str | None:
        return self.labels.get(LABEL_HARNESS)


def inspect_image(client: Any, ref: str) -> ImageInfo:
    from docker.errors import ImageNotFound

    try:
        img = client.images.get(ref)
    except ImageNotFound:
        return ImageInfo(ref, present=False)
    digests = img.attrs.get("RepoDigests") or []
    labels = dict((img.attrs.get("Config") or {}).get("Labels") or {})
    return ImageInfo(
        ref,
        present=True,
        image_id=str(img.id),
        digest=str(digests[0]) if digests else str(img.id),
        labels=labels,
    )


def handshake_problem(
    info: ImageInfo,
    backend: str,
    *,
    rebuild: str = "build the images from this checkout with `make images`",
) -> str | None:
    """Why this host must not use the image, with the fix; None when it may."""
    if not info.present:
        return (
            f"the {backend} image `{info.ref}` is not on this machine. Fix: {rebuild} (or "
            "pull the pinned ones: `make images PULL=1 REGISTRY=<registry>`); for the CPU "
            "test image, `make test-images`"
        )
    if info.fingerprint is None:
        return (
            f"the {backend} image `{info.ref}` has no `{LABEL_FINGERPRINT}` label, so it was "
            f"not built by `make images` (images/{backend}/). Fix: {rebuild}, or set "
            f"{SKIP_VAR}=1 to use it anyway"
        )
    host = schema_fingerprint()
    if info.fingerprint != host:
        return (
            f"the {backend} image `{info.ref}` speaks exchange schema {info.fingerprint} "
            f"(harness {info.harness_version or 'unknown'}), this llem-docker speaks {host} "
            f"(harness {__version__}). Fix: {rebuild}, or install the llem-docker release "
            "that matches the image"
        )
    return None


def skip_check(env: Mapping[str, str]) -> bool:
    return env.get(SKIP_VAR, "").strip().lower() in ("1", "true", "yes")


def check_image(client: Any, ref: str, backend: str, env: Mapping[str, str]) -> str | None:
    """Raise ImageMismatch when the image may not be used; return a warning when skipped."""
    problem = handshake_problem(inspect_image(client, ref), backend)
    if problem is None:
        return None
    if skip_check(env):
        return f"{SKIP_VAR} is set, so this is not checked: {problem}"
    raise ImageMismatch(problem)
