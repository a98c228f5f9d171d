"""Every benchmark, one after the other: a table each, a summary of the targets, one JSON file.

    python3 benchmarks/run.py [--runs N] [--quick] [--only NAME,...] [--json PATH]

``--runs`` is passed to every benchmark (default 20; ``slow_probes`` and ``scaling`` use at most
10, and fewer for their big sizes), ``--quick`` makes a smoke run (a run or two of each, small
sizes, short delays: its figures are not the ones to report), ``--only`` picks benchmarks by
name. The JSON (default: ``glidein_plugins-benchmarks.json`` in the system's temporary
directory, outside the checkout) holds the machine, every benchmark's results and the targets.
A benchmark that cannot measure is reported with its error; the others still run. Exit code 1
if any benchmark failed (not for a missed target).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from typing import Any

import _common as c

BENCHMARKS = ("setup_speed", "slow_probes", "wrapper_overhead", "imports", "scaling")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured runs (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: few runs, small sizes, short delays")
    parser.add_argument("--only", default=",".join(BENCHMARKS), metavar="NAME,...",
                        help=f"the benchmarks to run (of {', '.join(BENCHMARKS)})")
    parser.add_argument("--json", default=c.default_json("benchmarks"), metavar="PATH",
                        help=f"where to write the results (default {c.default_json('benchmarks')})")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = c.machine()
    print(f"{started['implementation']} {started['version']}, {started['cpus']} CPUs, load "
          f"{started['load_average'][0]}, {'quick' if args.quick else f'{args.runs} runs'}\n")
    results: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    for name in names:
        module = importlib.import_module(name)
        begun = time.monotonic()
        try:
            data = module.collect(max(1, args.runs), args.quick)
        except Exception as exc:  # reported, and the other benchmarks still run
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"## {name}: FAILED: {results[name]['error']}\n", flush=True)
            continue
        data["seconds"] = round(time.monotonic() - begun, 1)
        results[name] = data
        targets += [{**row, "benchmark": name} for row in data.get("targets", [])]
        print(module.render(data) + "\n", flush=True)
    print("## Targets\n\n" + c.targets_table(targets))
    c.write_json(args.json, results, started)
    print(f"\nwritten: {args.json}")
    return 1 if any("error" in data for data in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
