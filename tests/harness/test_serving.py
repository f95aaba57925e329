"""The serving scenario without an engine: its grammar, the server commands, and the figures
(steady window, SLOs, per-request file) from load generator records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from llem_docker.study.model import parse_axis_key
from llem_harness.backends.tensorrt.server import TensorRTServer
from llem_harness.backends.vllm.server import VLLMServer
from llem_harness.config import ExperimentConfig
from llem_harness.energy.base import Sample
from llem_harness.serving import server
from llem_harness.serving.backend import arrival_seed, pass_result
from llem_harness.serving.measure import serving_block, steady_window, write_serving_requests
from llem_harness.serving.records import RequestRecord


def cfg(**serving: object) -> ExperimentConfig:
    return ExperimentConfig(
        model="llem/tiny-llama", backend="vllm", weights="dummy", scenario="serving",
        max_output_tokens=5, serving=serving or None,
    )  # fmt: skip


def test_the_grammar_refuses_what_cannot_run_and_keeps_offline_hashes() -> None:
    with pytest.raises(ValidationError, match="backend `pytorch` has none"):
        ExperimentConfig(model="m", backend="pytorch", scenario="serving")
    with pytest.raises(ValidationError, match="scenario is `offline`"):
        ExperimentConfig(model="m", backend="vllm", serving={"request_rate": 2})
    with pytest.raises(ValidationError, match="not both"):
        cfg(n_requests=4, duration_s=2.0, request_rate=2)
    with pytest.raises(ValidationError, match="finite"):
        cfg(duration_s=2.0)
    with pytest.raises(ValidationError, match="arrival: gamma"):
        cfg(request_rate=2, burstiness=0.5)
    for bad in (0, float("nan"), -1):
        with pytest.raises(ValidationError, match="above 0"):
            cfg(request_rate=bad)
    with pytest.raises(ValidationError, match="finite"):
        cfg(request_rate=2, arrival="gamma", burstiness=float("inf"))
    assert cfg(request_rate=float("inf")).serving_options().request_rate == "inf"
    offline = ExperimentConfig(model="m", backend="vllm")
    assert "scenario" not in offline.canonical() and "serving" not in offline.canonical()
    assert cfg(request_rate=2).config_hash() != cfg(request_rate=4).config_hash()


def test_serving_keys_sweep_and_typos_are_named() -> None:
    assert parse_axis_key("serving.request_rate") == (None, ("serving", "request_rate"))
    assert parse_axis_key("serving.max_concurrency") == (None, ("serving", "max_concurrency"))
    assert parse_axis_key("serving.slo.ttft_ms") == (None, ("serving", "slo", "ttft_ms"))
    bad = parse_axis_key("serving.rate")
    assert isinstance(bad, str) and "request_rate" in bad
    assert "section" in str(parse_axis_key("serving"))


def test_the_server_commands_carry_the_engine_settings(tmp_path: Path) -> None:
    c = ExperimentConfig(
        model="llem/tiny-llama", backend="vllm", weights="dummy", scenario="serving",
        precision="fp32", vllm={"max_num_seqs": 8, "enforce_eager": True},
    )  # fmt: skip
    cmd, served = VLLMServer().command(c, "/m", 1234, tmp_path)
    assert served == server.SERVED_NAME
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    text = " ".join(cmd)
    for part in (
        "--port 1234",
        "--host 127.0.0.1",
        "--dtype float32",
        "--max-num-seqs 8",
        "--enforce-eager",
        "--load-format dummy",
        "--skip-tokenizer-init",
        "--no-enable-prefix-caching",
        f"--max-model-len {c.max_input_tokens + 128 + 8}",
    ):
        assert part in text, part  # fmt: skip
    assert "--disable-log-stats" in cmd  # as offline: statistics cost throughput
    t = ExperimentConfig(
        model="m", backend="tensorrt", scenario="serving", tensorrt={"max_batch_size": 4},
    )  # fmt: skip
    tcmd, served = TensorRTServer().command(t, "/m", 99, tmp_path)
    assert " ".join(tcmd).startswith("trtllm-serve /m --host 127.0.0.1 --port 99")
    assert served == "/m"  # trtllm-serve names the model by its path
    options = tmp_path / "llm_api_options.yaml"
    assert "--max_batch_size 4" in " ".join(tcmd)
    assert tcmd[-2:] == ["--extra_llm_api_options", str(options)]
    assert "enable_block_reuse: false" in options.read_text()
    with pytest.raises(ValidationError, match="needs weights: pretrained"):
        ExperimentConfig(model="m", backend="tensorrt", scenario="serving", weights="dummy")


def rec(i: int, sent: float, ttft: float, dur: float, n: int = 5, ok: bool = True) -> RequestRecord:
    """A load generator record, read as the harness reads each JSON line."""
    return RequestRecord.from_json({
        "id": i, "scheduled_s": sent, "sent_s": sent, "first_token_s": sent + ttft,
        "last_token_s": sent + dur, "done_s": sent + dur + 0.001, "prompt_tokens": 10,
        "output_tokens": n if ok else 0, "ok": ok, "status": 200 if ok else 500,
        "error": None if ok else "HTTP 500: boom",
    })  # fmt: skip


def test_the_steady_window_skips_the_ramp_and_the_drain() -> None:
    # 1 request/s for 20 s, each 2 s long: window from 0 + 2 s (median latency) to 19 s.
    records = [rec(i, 100.0 + i, 0.2, 2.0) for i in range(20)]
    t0, t1 = steady_window(records)  # type: ignore[misc]
    assert t0 == pytest.approx(102.001) and t1 == pytest.approx(119.0)
    # everything sent at once: no steady window, and why
    burst = steady_window([rec(i, 100.0, 0.2, 2.0) for i in range(20)])
    assert isinstance(burst, str) and "ramp-up" in burst


def test_the_block_counts_energy_requests_slos_and_failures(tmp_path: Path) -> None:
    records = [rec(i, 100.0 + i, 0.2 if i % 2 else 0.6, 2.0) for i in range(20)]
    records[5] = rec(5, 105.0, 0.2, 2.0, ok=False)
    # 300 W flat, samples every 0.1 s on a clock whose t_s 0 is monotonic 99.0
    samples = [Sample(k / 10, 0, 300.0, None, None, None, None, None) for k in range(260)]
    c = cfg(request_rate=1, arrival="constant", slo={"ttft_ms": 500})
    s = serving_block(c, records, {"cpu_s": 0.5, "wall_s": 22.0, "senders": 2}, 99.5, 23.0,
                      6900.0, None, samples, 99.0)  # fmt: skip
    assert (s.requests, s.completed, s.failed) == (20, 19, 1) and s.errors == ["HTTP 500: boom"]
    assert s.achieved_rate == pytest.approx(1.0) and s.request_rate == 1
    assert s.steady.duration_s == pytest.approx(17.0, abs=0.01)
    assert s.steady.energy_j == pytest.approx(300.0 * 17.0, rel=0.01)
    assert s.steady.completed and s.energy_per_request_j == pytest.approx(
        s.steady.energy_j / s.steady.completed
    )
    assert s.whole.energy_j == 6900.0 and s.whole.energy_per_request_j == pytest.approx(6900 / 19)
    # TTFT 200 ms on odd requests (but the 5th failed), 600 ms on even ones
    assert s.slo_attainment == pytest.approx(9 / 20)
    assert s.goodput_rps == pytest.approx(9 / s.duration_s)
    assert s.ttft_ms is not None and s.ttft_ms.n == 19
    # last - first token over 4 gaps: (2.0 - 0.2) / 4 on 9 requests, (2.0 - 0.6) / 4 on 10
    assert s.tpot_ms is not None and s.tpot_ms.mean == pytest.approx((9 * 450 + 10 * 350) / 19)
    assert s.load_generator.cpu_fraction == pytest.approx(0.5 / 22.0)
    assert s.load_generator.senders == 2
    no_gpu = serving_block(c, records, {}, 99.5, 23.0, None, "no NVIDIA GPU", [], None)
    assert no_gpu.steady.energy_j is None and no_gpu.unavailable_reason == "no NVIDIA GPU"
    assert no_gpu.steady.duration_s is not None and no_gpu.load_generator.unavailable_reason
    assert no_gpu.load_generator.senders is None
    rows = write_serving_requests(tmp_path / "r.parquet", records, 99.5, c)
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert rows == 20 and table["ok"][5] == 0 and table["slo_met"][1] == 1
    assert table["slo_met"][2] == 0 and table["submit_s"][0] == pytest.approx(0.5)
    assert table["first_token_s"][5] == pytest.approx(105.2 - 99.5)
    p = pass_result(records)
    assert p.output_tokens == 19 * 5 and len(p.ttft_ms) == 19 and len(p.spans) == 19


def test_a_request_that_was_never_sent_is_a_failure_not_a_crash() -> None:
    records = [rec(i, 100.0 + i, 0.2, 2.0) for i in range(10)]
    refused = rec(3, 103.0, 0.2, 2.0, ok=False)
    records[3] = replace(
        refused, sent_s=None, first_token_s=None, last_token_s=None, error="refused"
    )
    s = serving_block(cfg(request_rate=1), records, {}, 99.5, 12.0, None, "no GPU", [], None)
    assert (s.completed, s.failed) == (9, 1) and s.errors == ["refused"]
    assert s.achieved_rate == pytest.approx(8 / 9)  # 9 sends over 9 s
    nothing = [replace(records[3], id=i) for i in range(3)]
    s = serving_block(cfg(request_rate=1), nothing, {}, 99.5, 12.0, None, "no GPU", [], None)
    assert s.completed == 0 and s.unavailable_reason and s.achieved_rate is None


def test_the_report_names_the_rate_where_attainment_falls_and_draws_it(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from llem_docker.report import serving as report
    from llem_docker.report.stats import summarize

    @dataclass
    class P:  # what the report's points carry
        backend: str
        swept: dict[str, object]
        facts: dict[str, object]
        stats: dict[str, object] = field(default_factory=dict)
        label: str = "p"

    def point(rate: float, attainment: float, joules: float) -> P:
        stats = {m: summarize([None]) for m in report.SERVING_METRICS}
        stats |= {
            "slo_attainment": summarize([attainment, attainment]),
            "energy_per_request_j": summarize([joules, joules * 1.1]),
            "ttft_ms_p50": summarize([100.0, 110.0]),
        }
        facts = {"scenario": "serving", "request_rate": rate, "slo_ttft_ms": 500.0}
        return P("vllm", {"serving.request_rate": rate}, facts, stats)

    pts = [point(2, 1.0, 30.0), point(8, 0.95, 20.0), point(32, 0.4, 15.0),
           point(float("inf"), 0.1, 14.0)]  # fmt: skip
    assert report.attainment_lines(pts) == ["vllm: SLO attainment falls below 90% at 32 req/s"]
    assert report.attainment_lines(pts[:2]) == [
        "vllm: SLO attainment stays at or above 90% up to 8 req/s"
    ]
    head, rows = report.columns(lambda s: "x" if s.mean is None else f"{s.mean:g}", pts)
    assert head[:3] == ["point", "requested rate (req/s)", "achieved rate (req/s)"]
    assert [r[1] for r in rows] == ["2", "8", "32", "inf"]
    assert report.draw(pts, tmp_path / "serving.png") == tmp_path / "serving.png"
    assert (tmp_path / "serving.png").stat().st_size > 10_000
    assert report.draw([point(float("inf"), 1.0, 1.0)], tmp_path / "none.png") is None


def test_serving_figure_axes_turn_logarithmic_over_a_decade() -> None:
    from matplotlib.figure import Figure

    from llem_docker.report import serving as report

    sweep, narrow = Figure().subplots(1, 2)
    report._log_scales(sweep, [(4.0, 48.6), (32.0, 10.3), (128.0, 2.6)])
    report._log_scales(narrow, [(2.0, 10.0), (8.0, 12.0)])
    assert (sweep.get_xscale(), sweep.get_yscale()) == ("log", "log")
    assert (narrow.get_xscale(), narrow.get_yscale()) == ("linear", "linear")


def test_cycles_repeat_the_arrival_schedule_unless_each_is_asked_to_draw_its_own() -> None:
    """The default keeps a point's cycles on one schedule (their spread is the machine's);
    serving.arrival_per_cycle draws one per cycle, and is part of the config's identity
    only when set, so the hashes of existing serving configs hold."""
    fixed, per_cycle = cfg(), cfg(arrival_per_cycle=True)
    assert arrival_seed(fixed, 1) == arrival_seed(fixed, 2) == fixed.random_seed
    assert arrival_seed(per_cycle, 1) != arrival_seed(per_cycle, 2)
    assert arrival_seed(per_cycle, 2) == arrival_seed(per_cycle, 2)  # reproducible
    assert "arrival_per_cycle" not in fixed.canonical()["serving"]
    assert per_cycle.canonical()["serving"]["arrival_per_cycle"] is True
    assert fixed.config_hash() != per_cycle.config_hash()
