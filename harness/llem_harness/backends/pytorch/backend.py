"""PyTorch/transformers backend: `generate` with left padding and a fixed output length."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from llem_harness.backends.base import PassResult
from llem_harness.backends.pytorch.options import PyTorchOptions
from llem_harness.backends.pytorch.quant import quantize
from llem_harness.backends.spec import DTYPES, options_of
from llem_harness.backends.tokenizing import Tokenizing
from llem_harness.config import ExperimentConfig
from llem_harness.contract_env import BackendDetails
from llem_harness.engine_args import parameters, route
from llem_harness.gguf_dense import dense_kwargs, loadable
from llem_harness.gguf_model import is_gguf
from llem_harness.models import PAD_ID, ModelNotFoundError, dummy_config
from llem_harness.termination import check_terminated

CONFIG = "the model's config"  # an engine_args target: attributes set before the build


def _one_init_context() -> Any:
    """transformers' `no_init_weights`, or a null context where this transformers lacks it.

    A model built from a config initialises every weight twice: torch's own init in each
    layer's constructor (nn.Linear's kaiming_uniform_), then transformers' `_init_weights`,
    which overwrites it. Building under `no_init_weights` and then calling `init_weights()`
    gives the same weights' distribution (transformers' init) for one pass: 40% of a
    Llama-3.2-1B build on a CPU."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        return nullcontext
    return no_init_weights


class _StepTimer:
    """A transformers streamer that stamps the host time at which each token arrives.

    `generate` hands every new token to `put` after copying it to the host, which waits for
    the device, so the stamps are when the tokens really exist. The first `put` is the prompt.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.stamps: list[float] = []

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls > 1:
            self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


class PyTorchDetails(BackendDetails):
    device: str
    torch_version: str
    attn_implementation: str
    cache_implementation: str
    torch_compile: bool
    padding_side: str = "left"
    load_breakdown: dict[str, float | None]
    engine_args: dict[str, JsonValue]
    config_overrides: list[str]  # the model config's fields engine_args changed
    quantization: dict[str, JsonValue] | None


class PyTorchBackend(Tokenizing):
    name = "pytorch"
    latency_mode = "streamer_per_batch"

    def __init__(self) -> None:
        self.cfg: ExperimentConfig | None = None
        self.opts = PyTorchOptions()
        self.model: Any = None
        self.device: Any = None
        self.load_breakdown: dict[str, float] = {}
        self._tokenizer: Any = None
        self._vocab = 0
        self._pad = PAD_ID
        self._gen_args: dict[str, Any] = {}
        self._config_overrides: set[str] = set()
        self.quantization: dict[str, Any] | None = None

    def version(self) -> str | None:
        import transformers

        return str(transformers.__version__)

    # -- loading -----------------------------------------------------------------------
    def load(self, cfg: ExperimentConfig, run_dir: Path) -> None:
        import torch
        import transformers

        self.cfg = cfg
        self.opts = options_of(cfg, PyTorchOptions)
        torch.manual_seed(cfg.random_seed)
        self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        t0 = time.perf_counter()
        if self.device.type == "cuda":
            torch.empty(1, device=self.device)  # the CUDA context, timed apart
        t1 = time.perf_counter()
        dtype = getattr(torch, DTYPES[cfg.precision])
        kwargs: dict[str, Any] = {"attn_implementation": self.opts.attn_implementation}
        if cfg.weights == "dummy":
            config = dummy_config(cfg.model)
            routed = self._route(config.to_dict(), pretrained=False)
            for key, value in routed[CONFIG].items():
                setattr(config, key, value)
            one_init = _one_init_context()
            with self.device, one_init():  # random init straight on the device, once
                model = transformers.AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
                    config, dtype=dtype, **kwargs
                )
            if one_init is not nullcontext:
                model.init_weights()
            self._vocab = int(config.vocab_size)
        else:
            source, where = checkpoint(cfg.model)
            try:
                if self.opts.engine_args:
                    found = transformers.AutoConfig.from_pretrained(source, **where)
                    routed = self._route(found.to_dict(), pretrained=True)
                    kwargs |= routed[CONFIG] | routed["from_pretrained"]
                if is_gguf(cfg.model):  # dense weights in the study's dtype (gguf_dense.py)
                    kwargs |= dense_kwargs()
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    source, dtype=dtype, **where, **kwargs
                )
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(source, **where)
            except OSError as exc:
                raise ModelNotFoundError(
                    f"cannot load `{cfg.model}` with weights: pretrained: {exc}. It must be in "
                    "the Hugging Face cache (output.model_cache_dir) or reachable online; "
                    "for a hardware-cost measurement without weights use `weights: dummy`"
                ) from exc
            self._vocab = int(model.config.vocab_size)
            self._pad = self._tokenizer.pad_token_id
            if self._pad is None:
                self._pad = self._tokenizer.eos_token_id or 0
        t2 = time.perf_counter()
        model.eval()
        if cfg.quantization != "none":  # online, in place: quant.py
            self.quantization = quantize(model, cfg.quantization, dtype, self.device)
            if cfg.quantization.startswith("bnb-"):  # as transformers: no compile of bnb layers
                self._gen_args["disable_compile"] = True
        t3 = time.perf_counter()
        model.to(self.device)
        if self.opts.torch_compile:
            model.forward = torch.compile(model.forward)
        self.model = model
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # Where load_s goes (seconds): the device context, the model's build (random init or
        # the checkpoint's read), and the move to the device with torch.compile's wrapping.
        self.load_breakdown = {
            "device_init_s": t1 - t0,
            "build_s": t2 - t1,
            "quantize_s": t3 - t2,
            "to_device_s": time.perf_counter() - t3,
        }

    def _route(self, config_keys: Any, *, pretrained: bool) -> dict[str, dict[str, Any]]:
        """pytorch.engine_args split between generate, the model's config and from_pretrained
        (engine_args.py); the generate part is kept for every pass."""
        import transformers

        targets: dict[str, Any] = {
            "generate": transformers.GenerationConfig().to_dict().keys(),  # type: ignore[no-untyped-call]
            CONFIG: config_keys,
            "from_pretrained": parameters(transformers.PreTrainedModel.from_pretrained)
            if pretrained
            else (),
        }
        routed = route("pytorch", dict(self.opts.engine_args), targets)
        self._gen_args, self._config_overrides = routed["generate"], set(routed[CONFIG])
        return routed

    # -- generation --------------------------------------------------------------------
    def _batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        assert self.cfg is not None
        size = self.cfg.batch_size
        return [prompts[i : i + size] for i in range(0, len(prompts), size)]

    def warmup_batches(self, prompts: list[list[int]]) -> list[list[list[int]]]:
        batches = self._batches(prompts)
        shapes: dict[tuple[int, int], list[list[int]]] = {}
        for b in batches:  # one batch of every (batch size, padded length) the pass will run
            shapes.setdefault((len(b), max(len(p) for p in b)), b)
        return list(shapes.values())

    def generate(
        self, prompts: list[list[int]], *, timed: bool, output_tokens: int | None = None
    ) -> PassResult:
        assert self.cfg is not None
        n_out = output_tokens or self.cfg.max_output_tokens
        result = PassResult(input_tokens=0, output_tokens=0)
        for batch in self._batches(prompts):
            check_terminated()  # a SIGTERM whose raise was swallowed stops the pass here
            self._generate_batch(batch, result, timed, n_out)
        return result

    def _generate_batch(
        self, batch: list[list[int]], result: PassResult, timed: bool, n_out: int
    ) -> None:
        import torch

        assert self.cfg is not None
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):  # left padding
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        d = self.cfg.decoding
        timer = _StepTimer() if timed else None
        natural = self.cfg.output_length == "natural"
        kwargs: dict[str, Any] = {
            "max_new_tokens": n_out,
            # fixed output length: EOS cannot end a sequence early
            **({} if natural else {"min_new_tokens": n_out}),
            "do_sample": d.temperature > 0,
            "pad_token_id": self._pad,
            "cache_implementation": self.opts.cache_implementation,
            "repetition_penalty": d.repetition_penalty,
        }
        if d.temperature > 0:
            kwargs.update(temperature=d.temperature, top_p=d.top_p, top_k=d.top_k or None)
        kwargs.update(self._gen_args)  # pytorch.engine_args for generate
        ids, mask = ids.to(self.device), mask.to(self.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=mask, streamer=timer, **kwargs)
        self.synchronize()
        end = time.perf_counter()
        produced = int(out.shape[1] - width)
        rows = out[:, width:].tolist() if natural or self._tokenizer is not None else []
        if natural:  # each response up to and including its first EOS
            lengths = [_length(row, self._eos_ids()) for row in rows]
        elif produced != n_out:
            raise RuntimeError(f"generate produced {produced} tokens per sequence, not {n_out}")
        else:
            lengths = [produced] * len(batch)
        if self._tokenizer is not None:  # the texts are made after the window (quality.py)
            result.output_ids += [row[:n] for row, n in zip(rows, lengths, strict=True)]
        result.input_tokens += sum(len(p) for p in batch)
        result.output_tokens += sum(lengths)
        result.lengths += lengths
        if timer is not None and timer.stamps:
            ttft = (timer.stamps[0] - start) * 1000
            gaps = [(b - a) * 1000 for a, b in zip(timer.stamps, timer.stamps[1:], strict=False)]
            for _ in batch:  # static batching: every sequence of the batch shares the stamps
                result.ttft_ms.append(ttft)
                result.itl_ms.extend(gaps)
                result.request_ms.append((end - start) * 1000)

    def _eos_ids(self) -> set[int]:
        """The ids that end a natural-length response: generate's (pytorch.engine_args may set
        eos_token_id), else the model's generation config's, else its config's."""
        eos = self._gen_args.get("eos_token_id")
        if eos is None:
            eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = getattr(getattr(self.model, "config", None), "eos_token_id", None)
        return set(eos) if isinstance(eos, list) else ({int(eos)} if eos is not None else set())

    def synchronize(self) -> None:
        import torch

        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def peak_memory_mb(self) -> tuple[float | None, str | None]:
        import torch

        if self.device is None or self.device.type != "cuda":
            return None, "no CUDA device: peak GPU memory is not measurable on the CPU"
        return torch.cuda.max_memory_allocated(self.device) / 2**20, None

    def details(self) -> PyTorchDetails:
        import torch

        return PyTorchDetails(
            device=str(self.device),
            torch_version=str(torch.__version__),
            attn_implementation=self.opts.attn_implementation,
            cache_implementation=self.opts.cache_implementation,
            torch_compile=self.opts.torch_compile,
            load_breakdown=self.load_breakdown,
            engine_args=dict(self.opts.engine_args),
            config_overrides=sorted(self._config_overrides),
            quantization=self.quantization,
        )

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _length(tokens: list[int], eos: set[int]) -> int:
    """A generated row's length: up to and including its first EOS (the rest is padding)."""
    return next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))


def checkpoint(model: str) -> tuple[str, dict[str, Any]]:
    """What transformers' `from_pretrained` takes for `model`: a hub id or folder (offline
    when HF_HUB_OFFLINE is 1), or a GGUF file's folder with `gguf_file` (gguf_model.py)."""
    if is_gguf(model):
        path = loadable(model)
        return str(path.parent), {"gguf_file": path.name, "local_files_only": True}
    return model, {"local_files_only": os.environ.get("HF_HUB_OFFLINE") == "1"}
