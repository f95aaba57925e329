"""`llem-docker pack` (review/pack.py, cli/pack.py) on study folders written by hand: what
the archive holds, with and without the raw data, its pack.json, the secret check, and
reading a pack back safely."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llem_docker.cli.pack import pack as pack_command
from llem_docker.errors import ConfigError, LlemError
from llem_docker.review import pack as packing
from llem_docker.review.pack import PackInfo, pack
from llem_docker.review.unpack import is_pack, pack_info, read_pack
from llem_docker.store.layout import StudyDir
from tests.orchestrator.test_envrecord import ENVIRONMENT
from tests.orchestrator.test_report import make_study

TOKEN = "hf_AbCdEfGhIjKlMnOpQr"  # 20 characters
RAW_NAMES = ("timeseries.parquet", "requests.parquet", "responses.parquet",
             "engine_metrics.parquet", "container.log")  # fmt: skip


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A completed six-run study: its study.yaml, one failed run's error.json, a dataset copy,
    and every kind of raw file in the first run."""
    study_dir = make_study(tmp_path / "results", environment=ENVIRONMENT)
    sd = StudyDir(study_dir)
    shutil.copyfile(tmp_path / "results" / "synth.yaml", sd.study_source)
    runs = sorted(p for p in sd.runs.iterdir())
    first = runs[0]
    for name in RAW_NAMES[1:4]:
        shutil.copyfile(first / "timeseries.parquet", first / name)
    (first / "container.log").write_text("loading the model\nmeasuring\n")
    (first / "dataset.jsonl").write_text('{"prompt": "hello"}\n')
    (runs[1] / "error.json").write_text('{"type": "Boom", "message": "on purpose"}\n')
    return study_dir


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            assert fh is not None and m.isfile()
            out[m.name] = fh.read()
        return out


def expected(study_dir: Path, raw: bool) -> set[str]:
    top = study_dir.name
    names = {"pack.json", "study.yaml", "study.json", "manifest.json", "results.parquet"}
    names |= {"report.md"}
    for run in StudyDir(study_dir).runs.iterdir():
        for f in run.iterdir():
            if raw or f.name not in RAW_NAMES:
                names.add(f"runs/{run.name}/{f.name}")
    return {f"{top}/{n}" for n in names}


def test_the_archive_holds_the_study(study: Path) -> None:
    archive = pack(study)
    assert archive == study.parent / f"{study.name}.llem-pack.tar.gz" and is_pack(archive)
    files = members(archive)
    assert set(files) == expected(study, raw=True)
    with tarfile.open(archive, "r:gz") as tar:
        assert tar.getmembers()[0].name == f"{study.name}/pack.json"  # first: found at once
    first_run = sorted(StudyDir(study).runs.iterdir())[0].name
    for name in (*RAW_NAMES, "dataset.jsonl", "experiment.json", "result.json"):
        assert f"{study.name}/runs/{first_run}/{name}" in files
    assert files[f"{study.name}/study.yaml"] == StudyDir(study).study_source.read_bytes()
    report = files[f"{study.name}/report.md"].decode()
    assert report.startswith("# ") and "| pytorch batch_size=4 | 3/3 |" in report
    assert "![" not in report  # no figures
    assert not list(study.parent.glob(".*.tmp"))  # the temporary file was renamed


def test_pack_json_hashes_match(study: Path) -> None:
    archive = pack(study)
    files = members(archive)
    info = PackInfo.model_validate_json(files[f"{study.name}/pack.json"])
    assert info == pack_info(archive)
    listed = {f"{study.name}/{f.path}" for f in info.files}
    assert listed == set(files) - {f"{study.name}/pack.json"}
    for f in info.files:
        data = files[f"{study.name}/{f.path}"]
        assert (f.bytes, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    manifest = json.loads(StudyDir(study).manifest.read_text())
    assert (info.study_id, info.design_hash) == (manifest["study_id"], manifest["design_hash"])
    assert info.raw is True and info.schema_version == "1.0"
    assert info.study_file.packed and info.study_file.source == "study.yaml"
    assert info.harness_version == "0.1.0" and info.engine_versions == {"pytorch": "4.46.0"}
    images = {b: i.model_dump() for b, i in info.images.items()}
    assert images == {"pytorch": {"image": None, "digest": None}}  # the local runner
    assert info.environment.gpu_model.value == "NVIDIA H100 80GB HBM3"
    assert info.environment.mig_mode.unknown_reason == "not recorded by the harness"


def test_no_raw_leaves_the_raw_data_out(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "small.tar.gz"
    out.parent.mkdir()
    archive = pack(study, out, raw=False)
    assert archive == out
    files = members(archive)
    assert set(files) == expected(study, raw=False)
    assert not any(n.endswith((".log", "timeseries.parquet")) for n in files)
    assert f"{study.name}/results.parquet" in files
    assert pack_info(archive).raw is False
    into_folder = pack(study, out.parent, raw=False)  # a folder: the default name in it
    assert into_folder == out.parent / f"{study.name}.llem-pack.tar.gz"


def test_a_planted_token_refuses_the_pack(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run = sorted(StudyDir(study).runs.iterdir())[0]
    log = run / "container.log"
    log.write_text(f"starting\nusing token {TOKEN} for the hub\n")
    with pytest.raises(ConfigError) as err:
        pack(study)
    text = str(err.value)
    assert str(log) in text and "container.log holds the value of $HF_TOKEN" in text
    assert TOKEN not in text and "Fix:" in text
    assert not list(study.parent.glob("*.tar.gz")) and not list(study.parent.glob(".*.tmp"))
    pack(study, tmp_path / "a.tar.gz", raw=False)  # container.log stays out: nothing to refuse

    experiment = run / "experiment.json"
    experiment.write_text(experiment.read_text().replace("{", f'{{"note": "{TOKEN}",', 1))
    with pytest.raises(ConfigError, match=r"experiment\.json holds the value of \$HF_TOKEN"):
        pack(study, tmp_path / "b.tar.gz", raw=False)
    assert not (tmp_path / "b.tar.gz").exists()


def test_a_line_that_sets_a_token_refuses_the_pack(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)  # not set here: the line alone refuses
    log = sorted(StudyDir(study).runs.iterdir())[0] / "container.log"
    log.write_text("env:\n  HF_TOKEN=hf_someoneElsesToken123\n")
    with pytest.raises(ConfigError, match=r"container\.log has a line that sets HF_TOKEN"):
        pack(study, tmp_path / "c.tar.gz")
    # what the tools print about the token is no secret
    log.write_text("env HF_TOKEN  set (hidden)\nFix: `export HF_TOKEN=...`\nHF_TOKEN: not set\n")
    pack(study, tmp_path / "d.tar.gz")


def test_a_clean_pack_holds_no_token(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    archive = pack(study)
    dest = read_pack(archive, tmp_path / "unpacked")
    assert dest == tmp_path / "unpacked" / study.name and (dest / "pack.json").is_file()
    extracted = [p for p in dest.rglob("*") if p.is_file()]
    assert len(extracted) == len(members(archive))
    assert not any(TOKEN.encode() in p.read_bytes() for p in extracted)
    with tarfile.open(archive, "r:gz") as tar:
        raw = b"".join(f.read() for m in tar.getmembers() if (f := tar.extractfile(m)))
    assert TOKEN.encode() not in raw
    with pytest.raises(ConfigError, match="exists already"):
        read_pack(archive, tmp_path / "unpacked")


def evil_tar(path: Path, name: str, *, link: bool = False) -> Path:
    """A tar.gz that looks like a pack (pack.json first) and then holds `name`."""
    with tarfile.open(path, "w:gz") as tar:
        head = tarfile.TarInfo("s/pack.json")
        head.size = 2
        tar.addfile(head, io.BytesIO(b"{}"))
        bad = tarfile.TarInfo(name)
        if link:
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
        else:
            bad.size = 4
        tar.addfile(bad, None if link else io.BytesIO(b"evil"))
    return path


def test_read_pack_refuses_unsafe_members(tmp_path: Path) -> None:
    into = tmp_path / "into"
    for archive in (
        evil_tar(tmp_path / "up.tar.gz", "../evil"),
        evil_tar(tmp_path / "deep.tar.gz", "s/../../evil"),
        evil_tar(tmp_path / "abs.tar.gz", "/tmp/evil"),
        evil_tar(tmp_path / "link.tar.gz", "s/link", link=True),
    ):
        with pytest.raises(ConfigError, match="nothing was extracted"):
            read_pack(archive, into)
    assert not (tmp_path / "evil").exists() and not into.exists()
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(__file__, arcname="x/readme.py")
    (tmp_path / "text.txt").write_text("not an archive")
    for path in (other, tmp_path / "text.txt", tmp_path / "missing.tar.gz", tmp_path):
        assert not is_pack(path)
    with pytest.raises(ConfigError, match="is not an llem-docker pack"):
        read_pack(other, into)


def test_a_study_file_that_is_missing_is_recorded(study: Path) -> None:
    StudyDir(study).study_source.unlink()
    info = pack_info(pack(study))  # the manifest's study_file path is still there
    assert info.study_file.packed and info.study_file.source == str(study.parent / "synth.yaml")
    (study.parent / "synth.yaml").unlink()
    archive = pack(study)
    info = pack_info(archive)
    assert not info.study_file.packed and "the study file is missing" in (
        info.study_file.note or ""
    )
    assert f"{study.name}/study.yaml" not in members(archive)


def test_the_command(study: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(pack_command)
    runner = CliRunner()
    res = runner.invoke(app, [str(study), "--no-raw", "--out", str(tmp_path / "p.tar.gz")])
    assert res.exit_code == 0, res.output
    count = len(members(tmp_path / "p.tar.gz"))
    assert f"wrote {tmp_path / 'p.tar.gz'}" in res.output.replace("\n", "")
    assert f"{count} files (without the raw data: --no-raw)" in res.output
    assert "KiB" in res.output
    bad = runner.invoke(app, [str(study.parent)])
    assert isinstance(bad.exception, ConfigError)
    assert bad.exception.source == "RESULTS_DIR" and "no manifest.json" in str(bad.exception)
    nowhere = runner.invoke(app, [str(study), "--out", str(tmp_path / "no" / "p.tar.gz")])
    assert isinstance(nowhere.exception, ConfigError) and nowhere.exception.source == "--out"


def test_a_file_that_changes_while_packed_is_refused(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = sorted(StudyDir(study).runs.iterdir())[0] / "container.log"
    checked = packing._check

    def then_change(m: packing.Member, *args: object) -> packing.PackedFile:
        done = checked(m, *args)  # type: ignore[arg-type]
        if m.path == log:
            log.write_text(log.read_text().upper())  # the same size, other bytes
        return done

    monkeypatch.setattr(packing, "_check", then_change)
    with pytest.raises(LlemError, match=r"container\.log changed while it was packed"):
        pack(study, tmp_path / "e.tar.gz")
    assert not list(tmp_path.glob("*.tar.gz")) and not list(tmp_path.glob(".*.tmp"))
