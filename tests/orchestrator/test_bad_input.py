"""Every bad input: exit code 2, the file, the key path and a fix in one paragraph, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.orchestrator.cliutil import invoke

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


# --- hostile files: refused at once, never a hang ----------------------------------------

_LAUGHS = "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, c in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def _nine_axes() -> str:
    axes = {
        "batch_size": list(range(1, 11)),
        "n_prompts": list(range(1, 11)),
        "max_input_tokens": list(range(1, 11)),
        "max_output_tokens": list(range(1, 11)),
        "random_seed": list(range(1, 11)),
        "warmup_max_runs": list(range(11, 21)),
        "warmup_cv_threshold": [i / 100 for i in range(1, 11)],
        "decoding.temperature": [i / 10 for i in range(1, 11)],
        "decoding.top_p": [i / 10 for i in range(1, 11)],
    }
    return "sweep:\n" + "".join(f"  {k}: {v}\n" for k, v in axes.items())


HOSTILE = [
    # (id, file body (str or bytes), texts expected in the message)
    ("billion-laughs", "model: m\nbackend: pytorch\n" + _LAUGHS, ["aliases", "line 4"]),
    ("recursive-alias", "model: m\nbackend: pytorch\nx: &a [1, *a]\n", ["recursive", "line 3"]),
    ("deep-nesting", "model: m\nx: " + "[" * 500 + "]" * 500 + "\n", ["nested more than 64"]),
    ("deep-mapping", "model: m\nx: " + "{a: " * 100 + "1" + "}" * 100 + "\n", ["nested"]),
    ("huge-file", "model: m\nbackend: pytorch\n# " + "x" * (2 << 20) + "\n", ["larger than"]),
    ("non-utf8", b"model: m\nbackend: pytorch\nname: caf\xe9\n", ["not UTF-8", "line 3"]),
    ("nul-bytes", b"model: m\x00\nbackend: pytorch\n", ["binary", "line 1"]),
    (
        "explosion",
        "model: m\nbackend: pytorch\n" + _nine_axes(),
        [
            "3,000,000,000 runs",
            "batch_size 10",
            "decoding.top_p 10",
            "--max-runs",
            "execution.max_runs",
        ],
    ),
    ("two-documents", "model: m\n---\nmodel: n\n", ["more than one YAML document", "line 2"]),
]


@pytest.mark.parametrize(("body", "texts"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_file_is_refused_fast(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    body: str | bytes,
    texts: list[str],
) -> None:
    import time

    f = tmp_path / "study.yaml"
    if isinstance(body, bytes):
        f.write_bytes(body)
    else:
        f.write_text(body)
    t0 = time.perf_counter()
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    took = time.perf_counter() - t0
    assert r.code == 2, r
    msg = " ".join(r.err.split())
    assert str(f) in msg and "Fix:" in msg
    for text in texts:
        assert text in msg
    assert "Traceback" not in r.err + r.out
    assert took < 1.0, f"took {took:.2f} s"


def test_a_directory_is_not_a_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = invoke(capsys, monkeypatch, "run", str(tmp_path), "--dry-run")
    assert r.code == 2 and "is a directory" in r.err and "Traceback" not in r.err


def test_a_huge_scalar_is_not_echoed_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\nprecision: " + "x" * 500_000 + "\n")
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2 and "`precision`" in r.err and "500,002 characters)" in r.err
    assert len(r.err) < 2000


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "model: m\nbackend: [pytorch, vllm]\nbatch_sise: 4\nmax_output_tokens: -5\n"
        "precision: fp9\nsweep:\n  vllm.max_num_seqs: [64, lots]\n  batch_size: [1, 0]\n"
        "experiments:\n  - {backend: vllm, foo: 1}\nexecution: {n_cycles: 0}\n"
    )
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2
    assert "7 problems" in r.err
    expected = [
        ("line 3", "`batch_sise`"),
        ("line 4", "`max_output_tokens`"),
        ("line 5", "`precision`"),
        ("line 7", "`sweep.vllm.max_num_seqs[1]`"),
        ("line 8", "`sweep.batch_size[1]`"),
        ("line 10", "`experiments[0].foo`"),
        ("line 11", "`execution.n_cycles`"),
    ]
    lines = [ln for ln in r.err.splitlines() if ln.strip().startswith("- ")]
    assert len(lines) == len(expected)
    for line, (where, key) in zip(lines, expected, strict=True):
        assert where in line and key in line and "Fix:" in line


def test_at_most_twenty_problems_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\n" + "".join(f"bad{i}: 1\n" for i in range(30)))
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 2 and "20+ problems" in r.err and "only the first 20" in r.err
    assert sum(ln.strip().startswith("- ") for ln in r.err.splitlines()) == 20


def test_max_runs_flag_and_user_config_raise_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\nsweep:\n  batch_size: [1, 2, 3, 4]\n")
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("execution: {max_runs: 5}\n")
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run", "--cycles", "2")
    assert r.code == 2 and "8 runs" in r.err and "limit of 5" in r.err
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run", "--cycles", "2", "--max-runs", "8")
    assert r.code == 0 and "8 runs" in r.out


def test_alias_bomb_through_the_real_console_script(tmp_path: Path) -> None:
    """The whole process, start-up included, answers at once (it once hung past 60 s)."""
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\n" + _LAUGHS)
    exe = Path(sys.executable).with_name("llem-docker")
    proc = subprocess.run(
        [str(exe), "run", str(f), "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    assert proc.returncode == 2 and "aliases" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
