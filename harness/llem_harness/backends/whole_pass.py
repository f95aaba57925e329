"""What the engines that run a whole pass out of the harness's sight share (vllm, tensorrt, the
serving scenario's server): nothing is queued once `generate` returns, and the device memory
is held by an allocator the harness cannot read."""

from __future__ import annotations


class WholePass:
    """`synchronize` and `peak_memory_mb` for such an engine; `memory_owner` says who holds
    the memory, for the reason recorded in place of the figure."""

    memory_owner: str

    def synchronize(self) -> None:
        """`generate` returns when every request has finished: nothing is queued."""

    def peak_memory_mb(self) -> tuple[float | None, str | None]:
        return None, (
            f"{self.memory_owner}, whose allocator the harness cannot see; the timeseries' "
            "memory_used_mb has the device's memory"
        )
