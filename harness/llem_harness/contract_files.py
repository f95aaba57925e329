"""The files of a run directory (the exchange contract's names), and the blocks of result.json
that point into the Parquet files beside it: `timeseries` (timeseries.parquet) and `requests`
(requests.parquet)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

EXPERIMENT_FILE = "experiment.json"
RESULT_FILE = "result.json"
RESPONSES_FILE = "responses.parquet"
ERROR_FILE = "error.json"
TIMESERIES_FILE = "timeseries.parquet"
REQUESTS_FILE = "requests.parquet"
LOG_FILE = "container.log"

REQUESTS_CLOCK = (
    "seconds since the measured window opened (timeseries t_s = timeseries.window_start_s + these)"
)


class StrictModel(BaseModel):
    """The base of every exchange-contract model: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid")


class TimeseriesSummary(StrictModel):
    """timeseries.parquet: its rows, the measured window on its clock (`t_s`, seconds since the
    meter started), and the power integral over that window (the check on the energy counter)."""

    file: str = TIMESERIES_FILE
    rows: int = 0
    power_integral_j: float | None = None
    window_start_s: float | None = None
    window_end_s: float | None = None


class RequestsFile(StrictModel):
    """requests.parquet: one row per request of the measured window (steady-state and serving
    runs); `clock` says what its times count from."""

    file: str = REQUESTS_FILE
    rows: int
    clock: str = REQUESTS_CLOCK
