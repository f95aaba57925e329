"""CO2 from measured energy: the formula (default), or CodeCarbon when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llem_harness.contract import MeasurementSettings

J_PER_KWH = 3.6e6
CODECARBON_MISSING = (
    "co2_backend codecarbon requested but the codecarbon package is not installed "
    "(pip install llem-harness[codecarbon])"
)


def co2_kg(total_j: float | None, intensity_gco2_kwh: float, pue: float) -> float | None:
    """kWh × grid intensity (gCO2/kWh) × datacentre PUE, in kg; None when energy is None."""
    if total_j is None:
        return None
    return total_j / J_PER_KWH * intensity_gco2_kwh * pue / 1000.0


class CodeCarbonTracker:
    """CodeCarbon's offline tracker around the measurement window (`co2_backend: codecarbon`).

    The offline tracker takes its grid intensity from the country's energy mix; CodeCarbon
    has no argument for an explicit intensity, so `carbon_intensity_gco2_kwh` does not apply
    here. CodeCarbon's own PUE is left at its default of 1 and `pue` is applied to its result.
    Note that CodeCarbon polls the GPUs through NVML on its own thread.
    """

    method = "codecarbon"

    def __init__(
        self, country_iso_code: str, *, pue: float = 1.0, gpu_ids: list[int] | None = None
    ) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError as exc:
            raise RuntimeError(CODECARBON_MISSING) from exc
        self.pue = pue
        self._tracker: Any = OfflineEmissionsTracker(
            country_iso_code=country_iso_code,
            gpu_ids=gpu_ids,
            save_to_file=False,
            log_level="error",
        )

    def start(self) -> None:
        self._tracker.start()

    def stop(self) -> float | None:
        """Emissions of the tracked span in kg CO2eq (None when CodeCarbon measured nothing)."""
        kg = self._tracker.stop()
        return None if kg is None else float(kg) * self.pue


def tracker_for(settings: MeasurementSettings) -> CodeCarbonTracker | None:
    """CodeCarbon's tracker when `co2_backend: codecarbon` asks for it, else None."""
    if settings.co2_backend != "codecarbon":
        return None
    if settings.country_iso_code is None:
        raise ValueError(
            "co2_backend: codecarbon needs measurement.country_iso_code (e.g. FRA): "
            "CodeCarbon takes the grid mix from the country"
        )
    return CodeCarbonTracker(settings.country_iso_code, pue=settings.datacenter_pue)
