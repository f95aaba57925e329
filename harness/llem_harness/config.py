"""ExperimentConfig: what one experiment measures. Shared by the host and the harness.

Every model forbids unknown keys, so a typo in a study file is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from llem_harness.backends import BACKENDS, ENGINES, HASHED_NULL_SECTIONS, engine
from llem_harness.backends.spec import EngineOptions
from llem_harness.gguf_model import is_gguf
from llem_harness.quality import QualityConfig
from llem_harness.quantization import Quantization, config_problem
from llem_harness.serving.search_options import CapacitySearch

Precision = Literal["fp32", "fp16", "bf16"]
Weights = Literal["pretrained", "dummy"]

BUILTIN_DATASETS: tuple[str, ...] = ("builtin", "synthetic")
Scenario = Literal["offline", "serving"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Decoding(_Strict):
    """Sampling parameters. Output length is fixed by the protocol (EOS is ignored)."""

    temperature: float = Field(0.0, ge=0.0, description="0 means greedy decoding")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    repetition_penalty: float = Field(1.0, gt=0.0)


class SLO(_Strict):
    """Service-level objectives: a request meets them when every one set holds."""

    ttft_ms: float | None = Field(None, gt=0, description="time to first token, at most")
    tpot_ms: float | None = Field(None, gt=0, description="time per output token, at most")


class ServingOptions(_Strict):
    """The serving scenario's load (docs/serving.md): requests arrive over time at the
    engine's own server."""

    request_rate: float | Literal["inf"] = Field(
        "inf", description="requests per second, or inf: every request at once"
    )
    arrival: Literal["poisson", "gamma", "constant", "trace"] = "poisson"
    burstiness: float = Field(
        1.0, gt=0.0, description="the gamma arrivals' shape (1 = Poisson; < 1 burstier)"
    )
    max_concurrency: int | None = Field(None, ge=1, description="cap on requests in flight")
    n_requests: int | None = Field(
        None, ge=1, description="requests to send (default: n_prompts, one per prompt)"
    )
    duration_s: float | None = Field(
        None, gt=0.0, description="send requests for this long instead of a count"
    )
    slo: SLO = SLO()
    arrival_per_cycle: bool = Field(
        False,
        description="draw a new arrival schedule in each cycle (the cycles' spread then covers "
        "arrival noise too); default: every cycle repeats the same schedule (machine noise)",
    )
    trace: str | None = Field(
        None,
        min_length=1,
        description="arrival: trace: the trace file (.jsonl or .csv), relative to the study "
        "file's folder; its timestamps set the arrivals (docs/serving.md)",
    )
    trace_scale: float = Field(
        1.0, gt=0.0, description="the trace's rate factor: 2 = twice as fast"
    )
    trace_unit: Literal["s", "ms"] = Field("s", description="the trace's timestamps' unit")
    search: CapacitySearch | None = Field(
        None,
        description="find the capacity (the highest rate that meets serving.slo) instead of "
        "measuring one serving.request_rate (docs/capacity.md)",
    )

    @field_validator("request_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("inf", "infinity", ".inf"):
            return "inf"
        if isinstance(value, float) and value == float("inf"):
            return "inf"
        return value

    @model_validator(mode="after")
    def _check(self) -> ServingOptions:
        if self.request_rate != "inf" and not 0 < self.request_rate < math.inf:
            raise ValueError(
                f"serving.request_rate must be above 0 requests/s (or inf), not {self.request_rate}"
            )
        if not math.isfinite(self.burstiness):
            raise ValueError(f"serving.burstiness must be a finite number, not {self.burstiness}")
        if self.n_requests is not None and self.duration_s is not None:
            raise ValueError("set serving.n_requests or serving.duration_s, not both")
        if self.duration_s is not None and self.request_rate == "inf" and self.search is None:
            raise ValueError(
                "serving.duration_s needs a finite serving.request_rate: at an infinite "
                "rate every request is sent at once, so set serving.n_requests instead"
            )
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError(
                f"serving.burstiness is the gamma arrivals' shape; set arrival: gamma "
                f"(arrival is {self.arrival})"
            )
        return self._check_search()._check_trace()

    def _check_search(self) -> ServingOptions:
        if self.search is None:
            return self
        if self.request_rate != "inf":
            raise ValueError(
                f"serving.request_rate ({self.request_rate}) is what serving.search finds; "
                "remove it, or remove serving.search to measure that one rate"
            )
        if self.arrival == "trace":
            raise ValueError(
                "serving.search chooses the request rate, and arrival: trace takes its rate "
                "from the trace; use arrival: poisson, gamma or constant for a search"
            )
        if self.slo.ttft_ms is None and self.slo.tpot_ms is None:
            raise ValueError(
                "serving.search finds the highest rate that meets serving.slo, which sets no "
                "objective; add serving.slo.ttft_ms and/or serving.slo.tpot_ms"
            )
        return self

    def _check_trace(self) -> ServingOptions:
        if not math.isfinite(self.trace_scale):
            raise ValueError(f"serving.trace_scale must be a finite number, not {self.trace_scale}")
        if self.arrival != "trace":
            if self.trace is not None or self.trace_scale != 1.0 or self.trace_unit != "s":
                raise ValueError(
                    f"serving.trace, trace_scale and trace_unit drive a trace replay; set "
                    f"arrival: trace (arrival is {self.arrival})"
                )
            return self
        if self.trace is None:
            raise ValueError("arrival: trace needs serving.trace, the path of the trace file")
        if not self.trace.lower().endswith((".jsonl", ".csv")):
            raise ValueError(f"serving.trace `{self.trace}` must be a .jsonl or .csv file")
        if self.duration_s is not None:
            raise ValueError(
                "serving.duration_s has no meaning with arrival: trace (the trace sets the "
                "arrivals); remove it, or cap the count with serving.n_requests"
            )
        return self

    @property
    def rate(self) -> float | None:
        """Requests per second, None for inf."""
        return None if self.request_rate == "inf" else float(self.request_rate)


class ExperimentConfig(_Strict):
    """One point of a study: a model, a backend, and how to drive it."""

    model: str = Field(
        min_length=1, description="HF model id, local path, or shipped `llem/...` config"
    )
    backend: str = Field(json_schema_extra={"enum": list(BACKENDS)})
    precision: Precision = "bf16"
    weights: Weights = "pretrained"
    quantization: Quantization = Field(
        "none",
        description="none | fp8 | int8 | awq | gptq | bnb-nf4 | bnb-int8 (docs/quantization.md)",
    )
    batch_size: int = Field(1, ge=1)
    n_prompts: int = Field(100, ge=1)
    dataset: str = Field(
        "builtin", min_length=1, description="builtin | synthetic | path to .jsonl"
    )
    max_input_tokens: int = Field(256, ge=1)
    max_output_tokens: int = Field(128, ge=1)
    output_length: Literal["fixed", "natural"] = Field(
        "fixed",
        description="fixed: every response max_output_tokens long (EOS ignored); natural: a "
        "response ends at EOS, max_output_tokens at most",
    )
    warmup_runs: int = Field(2, ge=0, description="minimum full-length warmup passes")
    warmup_max_runs: int = Field(
        10, ge=0, description="cap on warmup passes while throughput settles"
    )
    warmup_cv_threshold: float = Field(0.05, gt=0.0, le=1.0)
    random_seed: int = Field(42, ge=0)
    decoding: Decoding = Decoding()
    scenario: Scenario = Field(
        "offline", description="offline: every prompt at once; serving: requests over time"
    )
    serving: ServingOptions | None = None
    # answer quality, scored on the measured responses (quality.py; docs/quality.md)
    quality: QualityConfig | None = None
    # one optional section per registered engine, named as the engine: added below

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"unknown backend `{value}`; use one of {', '.join(BACKENDS)}")
        return value

    @field_validator("quantization")
    @classmethod
    def _quantization(cls, value: str, info: ValidationInfo) -> str:
        """The support table's backend x method x weights (quantization.py); a field
        check, so the error names the key."""
        backend, weights = info.data.get("backend"), info.data.get("weights")
        if backend is not None and weights is not None:
            problem = config_problem(backend, value, weights)
            if problem is not None:
                raise ValueError(problem)
        return value

    def _quality_problem(self) -> str | None:
        """Quality needs references, which only a dataset file (or hub dataset) carries."""
        if self.quality is None or self.dataset not in ("builtin", "synthetic"):
            return None
        return (
            f"quality needs references, and dataset `{self.dataset}` has none; use a JSONL "
            f"dataset whose records carry `{self.quality.references}`"
        )

    def _gguf_problem(self) -> str | None:
        """A GGUF model (gguf_model.py) carries its weights, and only some engines load it."""
        if not is_gguf(self.model):
            return None
        if self.weights == "dummy":
            return (
                f"model `{self.model}` is a GGUF checkpoint, which carries its weights; "
                "set weights: pretrained"
            )
        if not engine(self.backend).gguf:
            able = ", ".join(s.name for s in ENGINES.values() if s.gguf)
            return f"backend `{self.backend}` does not load GGUF files here; use {able}"
        return None

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        for other in BACKENDS:
            if other != self.backend and getattr(self, other, None) is not None:
                raise ValueError(
                    f"a `{other}:` section is set but backend is `{self.backend}`; "
                    f"remove it or set backend: {other}"
                )
        if self.serving is not None and self.scenario != "serving":
            raise ValueError(
                "a `serving:` section is set but scenario is `offline`; set scenario: serving "
                "or remove the section"
            )
        spec = engine(self.backend)
        if self.scenario == "serving" and spec.server is None:
            servers = ", ".join(
                f"{s.name} ({s.server_label})" for s in ENGINES.values() if s.server
            )
            raise ValueError(
                f"scenario: serving needs the engine's own server, and backend "
                f"`{self.backend}` has none; use one of {servers}"
            )
        problem = spec.check(self) or self._gguf_problem() or self._quality_problem()
        if problem is not None:
            raise ValueError(problem)
        for key in self.options().engine_args:
            if key in spec.reserved_args:
                instead = spec.reserved_args[key]
                fix = "the harness sets it" if instead.startswith("-") else f"set {instead}"
                raise ValueError(
                    f"{self.backend}.engine_args.{key} is set by the harness; {fix} instead"
                )
        if self.warmup_max_runs < self.warmup_runs:
            raise ValueError(
                f"warmup_max_runs ({self.warmup_max_runs}) is below warmup_runs "
                f"({self.warmup_runs}); raise warmup_max_runs"
            )
        hf = self.dataset.startswith("hf:") and "/" in self.dataset
        if not (self.dataset in BUILTIN_DATASETS or self.dataset.endswith(".jsonl") or hf):
            raise ValueError(
                f"dataset `{self.dataset}` is neither a built-in set "
                f"({', '.join(BUILTIN_DATASETS)}), a path ending in .jsonl, "
                "nor a Hugging Face dataset `hf:<org>/<name>[:<split>]`"
            )
        return self

    def options(self) -> EngineOptions:
        """The backend's own section, with defaults when the file gave none."""
        section = getattr(self, self.backend, None)
        return section if isinstance(section, EngineOptions) else engine(self.backend).options()

    def canonical(self) -> dict[str, Any]:
        """Fully-resolved JSON form: the backend section filled in, used for hashing."""
        data = self.model_dump(mode="json")
        for name in set(ENGINES) - {*HASHED_NULL_SECTIONS, self.backend}:
            data.pop(name, None)  # unset: as before the engine was installed, hashes hold
        data[self.backend] = self.options().model_dump(mode="json")
        if not data[self.backend].get("engine_args"):  # none given: hashes as before
            data[self.backend].pop("engine_args", None)
        if self.output_length == "fixed":  # as before natural lengths existed: hashes hold
            del data["output_length"]
        if self.quantization == "none":  # as before the axis existed: hashes hold
            del data["quantization"]
        if self.quality is None:  # as before quality existed: hashes hold
            del data["quality"]
        if self.scenario == "offline":  # as before the scenario existed: offline hashes hold
            del data["scenario"], data["serving"]
        else:
            data["serving"] = self.serving_options().model_dump(mode="json")
            if not data["serving"]["arrival_per_cycle"]:  # as before the choice: hashes hold
                del data["serving"]["arrival_per_cycle"]
            defaults = {"trace": None, "trace_scale": 1.0, "trace_unit": "s", "search": None}
            for key, default in defaults.items():  # as before trace and search: hashes hold
                if data["serving"][key] == default:
                    del data["serving"][key]
        return data

    def serving_options(self) -> ServingOptions:
        return self.serving if self.serving is not None else ServingOptions()

    def capacity_search(self) -> CapacitySearch | None:
        """`serving.search`, where this point asks for its capacity."""
        return self.serving.search if self.scenario == "serving" and self.serving else None

    def at_rate(self, rate: float) -> ExperimentConfig:
        """One probe of the capacity search: this config at one request rate, the search
        removed (the harness runs it as any serving run)."""
        serving = self.serving_options().model_copy(update={"request_rate": rate, "search": None})
        return self.model_copy(update={"serving": serving})

    def config_hash(self) -> str:
        return config_hash(self.canonical())


def config_hash(canonical: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


if not TYPE_CHECKING:
    # The engine sections are fields of the model (validated, forbidding unknown keys, in its
    # JSON schema); the static class above is what the type checker sees.
    ExperimentConfig = create_model(
        "ExperimentConfig",
        __base__=ExperimentConfig,
        __module__=__name__,
        __doc__=ExperimentConfig.__doc__,
        **{name: (spec.options | None, None) for name, spec in ENGINES.items()},
    )
