"""CPU and DRAM energy from a fake powercap tree (energy/rapl.py): domains, wrap, and the three
reasons a figure is null."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_harness.energy.rapl import HOST_RAPL_ENV, RaplReader, host_has_rapl

RANGE = 262_143_328_850  # a real package's max_energy_range_uj


def domain(root: Path, name: str, kind: str, energy_uj: int) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(kind + "\n")
    (d / "max_energy_range_uj").write_text(f"{RANGE}\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    return d


def set_energy(d: Path, uj: int) -> None:
    (d / "energy_uj").write_text(f"{uj}\n")


def tree(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "powercap"
    doms = {
        "p0": domain(root, "intel-rapl:0", "package-0", 1_000_000),
        "p0core": domain(root, "intel-rapl:0:0", "core", 500_000),
        "p0dram": domain(root, "intel-rapl:0:1", "dram", 200_000),
        "p1": domain(root, "intel-rapl:1", "package-1", RANGE - 1_000_000),  # about to wrap
        "p1dram": domain(root, "intel-rapl:1:1", "dram", 300_000),
    }
    (root / "intel-rapl-mmio:0").mkdir()  # another powercap zone: not a RAPL package here
    doms["psys"] = domain(root, "intel-rapl:2", "psys", 0)  # the platform: holds the packages
    return root, doms


def test_packages_and_dram_over_a_window_with_a_wrap(tmp_path: Path) -> None:
    root, d = tree(tmp_path)
    assert host_has_rapl(root)
    rapl = RaplReader(root, env={}, poll_s=0.01)  # the polling thread runs too
    assert rapl.reason is None and len(rapl.domains) == 5  # psys left out
    rapl.begin()
    set_energy(d["psys"], 999_000_000)
    set_energy(d["p0"], 1_000_000 + 120_500_000)  # 120.5 J
    set_energy(d["p0core"], 500_000 + 90_000_000)  # inside the package: not added again
    set_energy(d["p0dram"], 200_000 + 10_000_000)  # 10 J
    set_energy(d["p1"], 2_000_000)  # wrapped: 1 J before the top + 2 J after
    set_energy(d["p1dram"], 300_000 + 5_250_000)  # 5.25 J
    r = rapl.end()
    assert r.per_package_j == pytest.approx({"0": 120.5, "1": 3.0})
    assert r.cpu_j == pytest.approx(123.5) and r.dram_j == pytest.approx(15.25)
    assert r.unavailable_reason is None and r.dram_unavailable_reason is None


def test_no_rapl_and_not_mounted_are_told_apart(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    assert not host_has_rapl(missing)
    no = RaplReader(missing, env={}).end()
    assert no.cpu_j is None and no.unavailable_reason is not None
    assert no.unavailable_reason.startswith("no RAPL")
    unmounted = RaplReader(missing, env={HOST_RAPL_ENV: "1"}).end()
    assert unmounted.unavailable_reason is not None
    assert unmounted.unavailable_reason.startswith("not mounted")


def test_a_root_only_counter_says_not_readable(tmp_path: Path) -> None:
    root, _ = tree(tmp_path)

    def read(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    r = RaplReader(root, read=read, env={})
    r.begin()
    out = r.end()
    assert out.cpu_j is None and out.dram_j is None
    assert out.unavailable_reason is not None
    assert out.unavailable_reason.startswith("not readable by this user")
    assert "chmod o+r" in out.unavailable_reason


def test_packages_without_dram_give_cpu_and_say_why_dram_is_null(tmp_path: Path) -> None:
    root = tmp_path / "pc"
    p = domain(root, "intel-rapl:0", "package-0", 0)
    rapl = RaplReader(root, env={})
    rapl.begin()
    set_energy(p, 7_000_000)
    out = rapl.end()
    assert out.cpu_j == pytest.approx(7.0) and out.dram_j is None
    assert out.dram_unavailable_reason == "no RAPL dram domain on this machine"


def test_several_wraps_in_one_window_are_counted_by_polling(tmp_path: Path) -> None:
    """An AMD-sized range wraps every few minutes at server power: the reader polls."""
    root = tmp_path / "pc"
    p = domain(root, "intel-rapl:0", "package-0", RANGE - 10)
    rapl = RaplReader(root, env={}, poll_s=None)
    rapl.begin()
    for value in (RANGE // 2, 5, RANGE // 2, 20):  # round the range twice, and 30 µJ
        set_energy(p, value)
        rapl.poll()
    out = rapl.end()
    assert out.cpu_j == pytest.approx((2 * RANGE + 30) / 1e6)
