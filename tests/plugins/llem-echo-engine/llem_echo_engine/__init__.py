"""The `echo` engine: what a third party writes to add an engine without forking llem-docker.

One options model, one `EngineSpec`, and a backend class named by its import path (backend.py).
The distribution's pyproject.toml names SPEC in the `llem_harness.engines` entry-point group.
"""

from __future__ import annotations

from pydantic import Field

from llem_harness.backends.spec import EngineOptions, EngineSpec


class EchoOptions(EngineOptions):
    """The `echo:` section of a study."""

    token_id: int = Field(7, ge=0, description="the token every response repeats")


SPEC = EngineSpec(
    name="echo",
    label="Echo (a test engine)",
    options=EchoOptions,
    backend="llem_echo_engine.backend:EchoBackend",
    reserved_args={"max_tokens": "max_output_tokens"},
    distributions=("llem-echo-engine",),
)
