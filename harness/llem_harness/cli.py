"""`llem-harness` command line (runs inside the container, or natively with the local runner)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

from llem_harness import __version__
from llem_harness.config import ExperimentConfig

# Set to 1 to let the interpreter tear down as usual after a run (atexit handlers and all).
FULL_EXIT_ENV = "LLEM_HARNESS_FULL_EXIT"


def exit_now(rc: int) -> None:
    """End the run's process as soon as its files are written. Everything the run owns is
    closed by then (result.json or error.json, the Parquet files, the meter, the backend).
    What is left is the interpreter's teardown: finalising the engine's modules, CUDA
    tensors and compile-worker pools, 1-3 s a run that only makes the study longer. The
    runners end whatever this process leaves (the process group, the container)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(rc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llem-harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"llem-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("schema", help="print the ExperimentConfig JSON schema")
    sub.add_parser("fingerprint", help="print the exchange schema fingerprint")
    run = sub.add_parser("run", help="run the experiment described by RUN_DIR/experiment.json")
    run.add_argument("run_dir", help="run directory (mounted at /llem/run in containers)")
    args = parser.parse_args(argv)
    if args.command == "run":
        from llem_harness.run import run_experiment
        from llem_harness.termination import tie_to_host

        tie_to_host()

        rc = run_experiment(args.run_dir)
        if argv is None and os.environ.get(FULL_EXIT_ENV) != "1":
            exit_now(rc)
        return rc
    if args.command == "fingerprint":
        from llem_harness.contract import schema_fingerprint

        print(schema_fingerprint())
        return 0
    if args.command == "schema":
        json.dump(ExperimentConfig.model_json_schema(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
