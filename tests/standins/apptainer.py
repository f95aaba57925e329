"""A stand-in for the `apptainer` / `singularity` CLI, for machines without it (CI).

It implements the subset llem-docker uses, faithfully enough to exercise the exchange
contract: `--version`, `inspect --json --labels SIF`, and `exec [--nv] [--cleanenv |
--containall] [--bind SRC:DST[:OPTS]]... [--env K=V]... [--pwd DIR] SIF CMD...`.

A "SIF" here is a JSON file `{"labels": {...}}`. `exec` maps every bind destination in the
command, the --env values and --pwd back onto its host source, builds the environment the
way apptainer does (cleaned to a minimum under --cleanenv/--containall; then
APPTAINERENV_<NAME> / SINGULARITYENV_<NAME> from its own environment; then --env), and
execs the command in place, so the runner's process group holds the "contained" process.
`llem-harness` runs this Python's harness (`-m llem_harness.cli`), or $LLEM_STANDIN_HARNESS
(a command line) when that is set. With $LLEM_STANDIN_RECORD set, it appends one JSON line
per exec: the argv it got, the names of the variables the command gets, and whether the
secret HF_TOKEN reached it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

NAME = Path(sys.argv[0]).name
PREFIX = "SINGULARITYENV_" if NAME.startswith("singularity") else "APPTAINERENV_"
KEEP = ("PATH", "HOME", "USER", "LANG", "TERM")  # what --cleanenv leaves (roughly)


def fail(msg: str, code: int = 255) -> None:
    print(f"FATAL:   {msg}", file=sys.stderr)
    sys.exit(code)


def load_sif(path: str) -> dict[str, object]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        fail(f"could not open image {path}: {exc}")
    return data if isinstance(data, dict) else {}


def inspect(args: list[str]) -> None:
    if "--json" not in args or "--labels" not in args:
        fail("the stand-in knows only `inspect --json --labels SIF`")
    labels = load_sif(args[-1]).get("labels", {})
    print(json.dumps({"data": {"attributes": {"labels": labels}}, "type": "container"}))


def exec_(args: list[str]) -> None:
    binds: list[tuple[str, str]] = []
    env_opts: dict[str, str] = {}
    clean = False
    pwd = None
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("--nv", "--nvccli"):
            continue
        if opt in ("--cleanenv", "-e", "--containall", "-C"):
            clean = True
        elif opt in ("--bind", "-B"):
            for spec in args.pop(0).split(","):
                src, dst = spec.split(":")[:2]
                binds.append((dst.rstrip("/"), src.rstrip("/")))
        elif opt == "--env":
            key, _, value = args.pop(0).partition("=")
            env_opts[key] = value
        elif opt == "--pwd":
            pwd = args.pop(0)
        else:
            fail(f"the stand-in does not know option {opt}")
    if len(args) < 2:
        fail("exec needs an image and a command")
    sif, cmd = args[0], args[1:]
    load_sif(sif)

    def host(path: str) -> str:
        for dst, src in sorted(binds, key=lambda b: -len(b[0])):
            if path == dst or path.startswith(dst + "/"):
                return src + path[len(dst) :]
        return path

    own = dict(os.environ)
    env = {k: own[k] for k in KEEP if k in own} if clean else dict(own)
    env.update({k[len(PREFIX) :]: v for k, v in own.items() if k.startswith(PREFIX)})
    env.update({k: host(v) for k, v in env_opts.items()})
    for k in [k for k in env if k.startswith(PREFIX)]:
        del env[k]
    cmd = [host(c) for c in cmd]
    if cmd[0] == "llem-harness":
        harness = os.environ.get("LLEM_STANDIN_HARNESS")
        head = shlex.split(harness) if harness else [sys.executable, "-m", "llem_harness.cli"]
        cmd = [*head, *cmd[1:]]
    record = own.get("LLEM_STANDIN_RECORD")
    if record:
        with open(record, "a", encoding="utf-8") as fh:
            entry = {
                "argv": sys.argv,
                "env_names": sorted(env),
                "hf_token_in": env.get("HF_TOKEN") == own.get(PREFIX + "HF_TOKEN") is not None,
                "cwd": host(pwd) if pwd else None,
                "command": cmd,
            }
            fh.write(json.dumps(entry) + "\n")
    if pwd:
        os.chdir(host(pwd))
    os.execvpe(cmd[0], cmd, env)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["--version"], ["version"]):
        print(f"{NAME} version 1.3.4-standin")
        return
    if not args:
        fail("usage: exec | inspect | --version")
    verb, rest = args[0], args[1:]
    if verb == "inspect":
        inspect(rest)
    elif verb == "exec":
        exec_(rest)
    else:
        fail(f"the stand-in does not know `{verb}`")


if __name__ == "__main__":
    main()
