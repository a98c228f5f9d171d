"""What importing the package costs: ``python -X importtime`` from the unpacked tarball.

    python3 benchmarks/imports.py [--runs 20] [--quick] [--json PATH]

With the bare venv's Python and the unpacked tarball (as on a worker node), started as the
hooks start it (``-s -E`` for the setup, ``-I -S`` for the job wrapper's Python part), each
entry is imported ``--runs`` times under ``-X importtime`` (medians of the cumulative times of
the imports the code makes, the interpreter's own start-up imports left out) and timed without
it (wall time, against the same interpreter running ``pass``):

- ``glidein_plugins``: the package;
- ``glidein_plugins.cli``: what the setup script's launcher imports before anything runs;
- ``glidein_plugins.runs.job``: the job wrapper's Python part, on every job start;
- ``setup run``: every import of a whole setup on the fake node of ``setup_speed``.

For each: the ten costliest modules by their own import time, and the expensive modules
(``HEAVY``) it pulls in. CPython only (``-X importtime``).
"""

from __future__ import annotations

import functools
import platform
import statistics
import sys
from typing import Any

import _common as c

HEAVY = ("yaml", "pluggy", "importlib.metadata", "xml.sax", "xml.etree.ElementTree",
         "xml.dom.minidom", "concurrent.futures", "email", "urllib", "urllib.parse", "http",
         "json", "csv", "subprocess", "threading", "tempfile", "shutil", "argparse", "pathlib",
         "inspect", "typing", "dataclasses", "enum", "re", "logging", "socket", "ssl", "ctypes",
         "tarfile", "zipfile", "gzip", "hashlib", "asyncio", "multiprocessing", "uuid",
         "datetime", "platform", "locale", "signal", "selectors", "contextvars")
ENTRIES = (("glidein_plugins", ("-s", "-E")), ("glidein_plugins.cli", ("-s", "-E")),
           ("glidein_plugins.runs.job", ("-I", "-S")))
SETUP = "setup run"


def collect(runs: int, quick: bool) -> dict[str, Any]:
    if platform.python_implementation() != "CPython":
        return {"note": f"{platform.python_implementation()} has no -X importtime",
                "entries": {}, "targets": []}
    node = c.fake_node("imports")
    prelude = f"import sys; sys.path.insert(0, {str(node.pkg)!r})\n"
    commands: dict[str, list[str]] = {}
    for module, flags in ENTRIES:
        code = prelude + f"import {module}"
        commands[f"{module}: -X importtime"] = [node.python, *flags, "-X", "importtime", "-c",
                                                c.marked_code(code)]
        commands[f"{module}: wall"] = [node.python, *flags, "-c", code]
        commands[f"{module}: pass"] = [node.python, *flags, "-c", "pass"]
    setup = node.setup_argv(flags=("-X", "importtime"))
    setup[setup.index("-c") + 1] = c.marked_code(node.launcher)
    commands[f"{SETUP}: -X importtime"] = setup

    def run(name: str) -> c.Sample:
        node.reset()
        return c.checked(c.timed(commands[name], node.env, node.work), name)

    measured, _ = c.rounds(runs, quick)  # always a warm-up round: it writes __pycache__
    samples = c.interleave({name: functools.partial(run, name) for name in commands}, measured,
                           warmup=1)
    entries = {}
    for name in [module for module, _ in ENTRIES] + [SETUP]:
        runs_seen = [c.imports_after_mark(s.stderr) for s in samples[f"{name}: -X importtime"]]
        entries[name] = summarize(runs_seen)
        if f"{name}: wall" in samples:
            wall = statistics.median(s.wall_ms for s in samples[f"{name}: wall"])
            bare = statistics.median(s.wall_ms for s in samples[f"{name}: pass"])
            entries[name].update(wall_ms=round(wall, 2), pass_ms=round(bare, 2),
                                 added_ms=round(wall - bare, 2))
    return {"python": node.python, "runs": len(samples[f"{SETUP}: -X importtime"]),
            "entries": entries, "targets": []}


def summarize(runs: list[dict[str, tuple[int, int, int]]]) -> dict[str, Any]:
    """Medians over the runs: total (the code's own imports, cumulative), per module."""
    modules = set().union(*runs)

    def median(name: str, index: int) -> float:
        return statistics.median(run[name][index] if name in run else 0 for run in runs) / 1000

    total = statistics.median(sum(cum for _, cum, depth in run.values() if depth == 0)
                              for run in runs) / 1000
    top = sorted(modules, key=lambda name: -median(name, 0))[:10]
    return {
        "import_ms": round(total, 2), "modules": round(statistics.median(map(len, runs))),
        "own_modules": len([m for m in modules if m.split(".")[0] == "glidein_plugins"]),
        "top": [{"module": name, "self_ms": round(median(name, 0), 2),
                 "cumulative_ms": round(median(name, 1), 2)} for name in top],
        "heavy": {name: round(median(name, 1), 2) for name in HEAVY if name in modules},
    }


def render(data: dict[str, Any]) -> str:
    if "note" in data:
        return f"## Imports\n\n{data['note']}"
    entries = data["entries"]
    rows = [(name, c.ms(row["import_ms"]), row["modules"], row["own_modules"],
             c.ms(row.get("wall_ms")), c.ms(row.get("added_ms"))) for name, row in entries.items()]
    parts = [f"## Imports (bare venv Python, unpacked tarball; medians of {data['runs']} runs)",
             c.table(["entry", "import ms (-X importtime)", "modules", "glidein_plugins modules",
                      "wall ms", "wall - pass ms"], rows)]
    for name, row in entries.items():
        parts.append(f"{name}: costliest imports (own time, cumulative ms): " + ", ".join(
            f"{t['module']} {t['self_ms']:.2f}/{t['cumulative_ms']:.2f}" for t in row["top"]))
        parts.append(f"{name}: expensive modules imported (cumulative ms): " + (", ".join(
            f"{module} {took:.2f}" for module, took in row["heavy"].items()) or "none"))
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(c.main("imports", collect, render, __doc__))
