"""Setup on an instant fake node: wall time, CPU, peak RSS and the processes it spawns.

    python3 benchmarks/setup_speed.py [--runs 20] [--quick] [--json PATH]

The node (``_common.fake_node``): the kit's fake Apptainer (POSIX sh, answers at once) on
PATH, a fake CVMFS with OSG's images, no GPU tool on PATH and no GPU driver files, the default
entry (every built-in plugin, the gpus one included). The setup runs from the unpacked tarball
with a bare venv's Python, in a fresh glidein (glidein_config rewritten, ``.glidein_plugins``
and so the probe cache removed) before every run. Interleaved, round after round (the first
round discarded):

- ``python3 -S -c pass`` and ``python3 -s -E -c pass``: the bare interpreter's start;
- ``setup, first run``: the setup on the tarball untarred afresh before each run (``tar -m``),
  with the bytecode ``pack`` ships: what the one setup of every glidein pays;
- ``setup, no bytecode``: ``python -s -E -c "$launcher" PKG setup ...`` as the setup script
  starts it, on a tree without ``.pyc`` files, as a glidein whose Python is not the one ``pack``
  compiled for finds it (every module compiled);
- ``setup``: the same, with bytecode;
- ``glidein_plugins_setup.sh``: the whole setup script as glidein_startup.sh runs it (finding
  Python with bounded version checks, then the same setup), warm.

Then one run of the setup and of the script under ``strace -f``: the programs they execute,
split into the runtime probes (the runtime binary and all it starts) and the rest; and one
with ``GLIDEIN_PLUGINS_TRACE=1``: the slowest hook calls.
Targets: setup median <= 80 ms, peak RSS <= 50 MB, <= 20 programs besides the runtime probes.
"""

from __future__ import annotations

import sys
from typing import Any

import _common as c

TARGET_MS = 80.0
TARGET_RSS_MB = 50.0
TARGET_EXECS = 20


def collect(runs: int, quick: bool) -> dict[str, Any]:
    node = c.fake_node("setup-speed")
    runtime = str(node.bin.dir / "apptainer")

    def setup(tree: str = "", hook: bool = False) -> c.Sample:
        node.reset()
        if tree == "untarred":
            node.untar_again()
        elif tree == "no bytecode":
            node.clear_bytecode()
        argv = node.hook_argv() if hook else node.setup_argv()
        return c.checked(c.timed(argv, node.env, node.work), "setup")

    cases = {
        "python3 -S -c pass": lambda: c.timed([node.python, "-S", "-c", "pass"]),
        "python3 -s -E -c pass": lambda: c.timed([node.python, "-s", "-E", "-c", "pass"]),
        "setup, first run": lambda: setup("untarred"),
        "setup, no bytecode": lambda: setup("no bytecode"),
        "setup": setup,
        "glidein_plugins_setup.sh": lambda: setup(hook=True),
    }
    samples = c.interleave(cases, *c.rounds(runs, quick))
    values = node.values()
    results = {name: c.summary(found) for name, found in samples.items()}
    base = results["python3 -S -c pass"]["wall_ms"]["median"]
    for row in results.values():
        row["ratio_python_S"] = round(row["wall_ms"]["median"] / base, 2)
    spawned = {}
    for name, argv in (("setup", node.setup_argv()), ("glidein_plugins_setup.sh",
                                                      node.hook_argv())):
        node.reset()
        spawned[name] = c.processes(argv, node.env, node.work, [runtime])
    node.reset()
    traced = c.checked(c.timed(node.setup_argv(), {**node.env, "GLIDEIN_PLUGINS_TRACE": "1"},
                               node.work), "traced setup")
    calls = sorted(c.hook_times(traced.stderr), key=lambda call: -call[2])
    setup_row = results["setup"]
    own = spawned["setup"].get("own", {}).get("execs")
    targets = [
        c.target("setup median, instant fake node", setup_row["wall_ms"]["median"], TARGET_MS,
                 "ms"),
        c.target("setup, first run (as untarred)", results["setup, first run"]["wall_ms"]["median"],
                 TARGET_MS, "ms", "what a glidein's (single) setup pays, bytecode shipped"),
        c.target("setup peak RSS", setup_row["rss_mb"]["median"], TARGET_RSS_MB, "MB"),
        c.target("setup programs besides the runtime probes", own, TARGET_EXECS, "execs"),
        c.target("glidein_plugins_setup.sh median",
                 results["glidein_plugins_setup.sh"]["wall_ms"]["median"], TARGET_MS, "ms",
                 "the whole script: also finds and checks Python"),
    ]
    return {"package": {"tarball_bytes": c.package().size, "python": node.python},
            "results": results, "processes": spawned, "targets": targets,
            "traced": {"wall_ms": round(traced.wall_ms, 1), "calls": len(calls),
                       "slowest": [{"hook": hook, "plugin": plugin, "ms": took}
                                   for hook, plugin, took in calls[:8]]},
            "published": {key: values.get(key, "") for key in
                          ("HAS_SINGULARITY", "SINGULARITY_MODE", "HAS_GPU",
                           "GLIDEIN_GPU_COUNT")}}


def render(data: dict[str, Any]) -> str:
    results = data["results"]
    rows = [(name, c.ms(row["wall_ms"]["median"]),
             f"{c.ms(row['wall_ms']['p10'])}-{c.ms(row['wall_ms']['p90'])}",
             f"{row['ratio_python_S']:.2f}x", c.ms(row["cpu_ms"]["median"]),
             f"{row['rss_mb']['median']:.1f}") for name, row in results.items()]
    runs = results["setup"]["runs"]
    parts = [f"## Setup on an instant fake node ({runs} runs each, interleaved; bare venv Python, "
             "unpacked tarball)",
             c.table(["case", "median ms", "p10-p90", "/ python3 -S", "CPU ms", "peak RSS MB"],
                     rows)]
    lines = []
    for name, found in data["processes"].items():
        if "note" in found:
            lines.append(f"- {name}: {found['note']}")
            continue
        lines.append(f"- {name}: {found['processes']} processes, {found['threads']} threads; "
                     f"{found['own']['execs']} programs besides the runtime probes: "
                     + ", ".join(f"{p} x{n}" if n > 1 else p
                                 for p, n in found["own"]["programs"].items())
                     + f"; runtime probes {found['runtime']['execs']}: "
                     + ", ".join(f"{p} x{n}" if n > 1 else p
                                 for p, n in found["runtime"]["programs"].items()))
    traced = data["traced"]
    slowest = ", ".join(f"{call['hook']} {call['plugin']} {call['ms']:.1f}"
                        for call in traced["slowest"])
    parts += ["Processes (strace -f, successful execs):", "\n".join(lines),
              f"Slowest hook calls, ms (one run with GLIDEIN_PLUGINS_TRACE=1, "
              f"{traced['wall_ms']:.0f} ms, {traced['calls']} calls): {slowest}",
              "Published: " + ", ".join(f"{k}={v}" for k, v in data["published"].items()),
              c.targets_table(data["targets"])]
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(c.main("setup_speed", collect, render, __doc__))
