"""Every bad input: exit code 2, the file, the key path and a fix in one paragraph, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.cliutil import invoke

BASE = "model: m\nbackend: [pytorch, vllm]\n"
CASES = [
    # (id, file body, key path expected in the message, extra text expected)
    (
        "malformed-yaml",
        "model: m\nbackend: [pytorch\nsweep: {a: 1}\n",
        "",
        "line 3: malformed YAML",
    ),
    ("unknown-top-key", BASE + "batch_sise: 4\n", "batch_sise", "batch_size"),
    ("unknown-section-key", BASE + "pytorch: {attn: sdpa}\n", "pytorch.attn", "unknown key"),
    (
        "unknown-experiment-key",
        BASE + "experiments:\n  - {backend: vllm, foo: 1}\n",
        "experiments[0].foo",
        "unknown key",
    ),
    ("unknown-execution-key", BASE + "execution: {cycles: 3}\n", "execution.cycles", "unknown"),
    ("runner-in-study", BASE + "runner: docker\n", "runner", "user config"),
    ("wrong-type", BASE + "batch_size: four\n", "batch_size", "wrong type"),
    (
        "wrong-type-in-sweep",
        BASE + "sweep:\n  vllm.max_num_seqs: [64, lots]\n",
        "sweep.vllm.max_num_seqs[1]",
        "wrong type",
    ),
    ("batch-size-zero", BASE + "batch_size: 0\n", "batch_size", ">= 1"),
    (
        "batch-size-zero-in-sweep",
        BASE + "sweep:\n  batch_size: [1, 0]\n",
        "sweep.batch_size[1]",
        ">= 1",
    ),
    ("negative-tokens", BASE + "max_output_tokens: -5\n", "max_output_tokens", ">= 1"),
    (
        "negative-tokens-in-experiment",
        BASE + "experiments:\n  - {backend: pytorch, max_input_tokens: -1}\n",
        "experiments[0].max_input_tokens",
        ">= 1",
    ),
    ("bad-literal", BASE + "precision: fp8\n", "precision", "bf16"),
    (
        "unknown-backend-scoped",
        BASE + "sweep:\n  vlm.max_num_seqs: [64]\n",
        "sweep.vlm.max_num_seqs",
        "unknown backend `vlm`",
    ),
    ("unknown-backend", "model: m\nbackend: [pytorch, onnx]\n", "backend[1]", "unknown backend"),
    (
        "unknown-scoped-option",
        BASE + "sweep:\n  vllm.max_seqs: [64]\n",
        "sweep.vllm.max_seqs",
        "max_num_seqs",
    ),
    (
        "scoped-backend-not-in-study",
        "model: m\nbackend: pytorch\nsweep:\n  vllm.max_num_seqs: [8]\n",
        "sweep.vllm.max_num_seqs",
        "not among",
    ),
    ("credential-key", BASE + "hf_token: abc\n", "hf_token", "credential"),
    ("credential-key-nested", BASE + "pytorch: {api_key: x}\n", "pytorch.api_key", "credential"),
    (
        "password-key",
        BASE + "experiments:\n  - {backend: vllm, password: x}\n",
        "experiments[0].password",
        "credential",
    ),
    (
        "credential-value",
        BASE + "dataset: hf_abcdefghijklmnopqrstuvwxyz012345\n",
        "dataset",
        "credential",
    ),
    ("empty-sweep-list", BASE + "sweep:\n  batch_size: []\n", "sweep.batch_size", "zero runs"),
    ("scalar-sweep", BASE + "sweep:\n  batch_size: 4\n", "sweep.batch_size", "must be a list"),
    ("empty-backend-list", "model: m\nbackend: []\n", "backend", "zero runs"),
    ("zero-runs", "model: m\nprecision: bf16\n", "", "zero runs"),
    ("missing-model", "backend: pytorch\n", "model", "missing"),
    ("other-section", "model: m\nbackend: pytorch\nvllm: {max_num_seqs: 8}\n", "vllm", "not among"),
    ("duplicate-key", BASE + "batch_size: 1\nbatch_size: 2\n", "batch_size", "duplicate"),
    (
        "combination",
        "model: m\nbackend: pytorch\nsweep:\n  warmup_runs: [1, 20]\n",
        "sweep",
        "warmup_max_runs",
    ),
    ("bad-cycles", BASE + "execution: {n_cycles: 0}\n", "execution.n_cycles", ">= 1"),
    (
        "bad-order",
        BASE + "execution: {cycle_order: random}\n",
        "execution.cycle_order",
        "interleaved",
    ),
    ("list-not-sweep", BASE + "batch_size: [1, 2]\n", "batch_size", "sweep"),
    ("not-a-mapping", "- a\n- b\n", "", "mapping"),
]


@pytest.mark.parametrize(("body", "key", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_study_exits_2_with_key_and_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    key: str,
    text: str,
) -> None:
    f = tmp_path / "study.yaml"
    f.write_text(body)
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2, r
    msg = " ".join(r.err.split())
    assert str(f) in msg
    if key:
        assert f"`{key}`" in msg
    assert text in msg
    assert "Fix:" in msg
    assert "Traceback" not in r.err + r.out
    assert "hf_abcdefghij" not in msg  # a secret is never echoed back


def test_malformed_yaml_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\nsweep:\n  batch_size: [1, 2\n")
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2 and "line 5" in r.err


def test_unknown_key_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\n\nsweep:\n  pytorch.attn_impl: [sdpa]\n")
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2 and "line 5" in r.err and "pytorch.attn_implementation" in r.err


def test_missing_file(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    r = invoke(capsys, monkeypatch, "run", "/nonexistent/study.yaml", "--dry-run")
    assert r.code == 2 and "file not found" in r.err


def test_no_traceback_from_the_real_console_script(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(BASE + "sweep:\n  vllm.max_num_seqs: [64, 0]\n")
    exe = Path(sys.executable).with_name("llem-docker")
    proc = subprocess.run(
        [str(exe), "run", str(f), "--dry-run"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "sweep.vllm.max_num_seqs[1]" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
