"""How setup time grows with the number of binds, images, attributes and plugins.

    python3 benchmarks/scaling.py [--runs 10] [--quick] [--json PATH]

The setup of ``setup_speed`` (bare venv Python, unpacked tarball, instant fake node) with N of:

- ``binds``: N existing source directories bound at ``/bench/bK``, half in the Frontend's
  ``GLIDEIN_SINGULARITY_BINDPATH``, half in the Factory's ``GLIDEIN_SINGULARITY_BINDPATH_DEFAULT``
  (glidein_config);
- ``images``: ``SINGULARITY_IMAGES_DICT`` with N platforms (``rhel9`` the OSG image, the others
  image directories under the fake CVMFS);
- ``attributes``: a site drop-in plugin (``plugins.directories`` in the entry's YAML) that
  contributes N attributes;
- ``plugins``: N drop-in plugin files, each contributing one attribute.

N is 10, 100, 1,000 and 10,000 (plugins: 1, 10, 50; ``--quick``: the two smallest), each config
run ``min(runs, 10)`` times for N <= 100 and half that (at least 2) above, all interleaved (the
first round discarded). Per N: the median, and the cost per item over the smallest N
(``(t(N) - t(N0)) / (N - N0)``, t the best run of each N: a busy machine only adds time);
growth is linear or better when the per-item cost at the largest N is not above the one at the
N before (their ratio, ``slope_ratio``, <= 1.3 allowing for noise; none when the growth up to
the N before is under 10 ms). For binds, extra runs with ``GLIDEIN_PLUGINS_TRACE=1`` time the
validation hook (``glidein_binds_validate``, which stats every source) and the contributing one
(parsing).
Targets: 10,000 binds validated in under 1 s; every slope ratio <= 1.3.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import _common as c

SIZES = (10, 100, 1000, 10000)
PLUGIN_COUNTS = (1, 10, 50)
TARGET_VALIDATE_MS = 1000.0
TARGET_SLOPE_RATIO = 1.3
NOISE_MS = 10.0  # smaller growth is not told apart from a loaded machine's noise
ATTRIBUTES_PLUGIN = """from glidein_plugins import Attribute, hookimpl


@hookimpl
def glidein_attributes_contribute():
    return [Attribute.integer(f"BENCH_{{i}}", i) for i in range({count})]
"""
ONE_ATTRIBUTE_PLUGIN = """from glidein_plugins import Attribute, hookimpl


@hookimpl
def glidein_attributes_contribute():
    return [Attribute.string("BENCH_PLUGIN_{number}", "{number}")]
"""


def plugin_config(node: c.Node, name: str, files: dict[str, str]) -> Path:
    """A config dir whose entry runs the drop-in plugins ``files`` (name -> source)."""
    plugins = node.top / "plugins" / name
    plugins.mkdir(parents=True)
    for file_name, text in files.items():
        (plugins / file_name).write_text(text)
    return c.config_dir(node.top, f"config-{name}", f"version: 1\nentries:\n  {c.ENTRY}:\n"
                        f"    plugins: {{directories: [{plugins}]}}\n")


def build(node: c.Node, kind: str, count: int) -> tuple[str, Path]:
    """(glidein_config text, config dir) for ``count`` items of ``kind``."""
    if kind == "binds":
        binds = [f"{node.top / 'b' / str(i)}:/bench/b{i}" for i in range(count)]
        for i in range(count):
            (node.top / "b" / str(i)).mkdir(parents=True, exist_ok=True)
        half = len(binds) // 2
        return (node.config + f"GLIDEIN_SINGULARITY_BINDPATH {','.join(binds[:half])}\n"
                f"GLIDEIN_SINGULARITY_BINDPATH_DEFAULT {','.join(binds[half:])}\n",
                c.config_dir(node.top, "config-empty"))
    if kind == "images":
        images = [f"rhel9:{node.cvmfs.images['rhel9']}"]
        for i in range(1, count):
            image = node.cvmfs.root / "singularity.opensciencegrid.org" / "bench" / f"img{i}"
            (image / "usr").mkdir(parents=True, exist_ok=True)
            images.append(f"p{i}:{image}")
        return (node.config + f"SINGULARITY_IMAGES_DICT {','.join(images)}\n",
                c.config_dir(node.top, "config-empty"))
    if kind == "attributes":
        return node.config, plugin_config(node, f"attributes-{count}", {
            "bench_attributes.py": ATTRIBUTES_PLUGIN.format(count=count)})
    return node.config, plugin_config(node, f"plugins-{count}", {
        f"bench_{n}.py": ONE_ATTRIBUTE_PLUGIN.format(number=n) for n in range(count)})


def slopes(best: dict[int, float]) -> dict[str, Any]:
    """Per-item cost over the smallest N, from each N's best run (a busy machine only adds
    time), and the ratio of the last two (linear: ~1); no ratio when the growth up to the N
    before the last is within the noise (under NOISE_MS)."""
    sizes = sorted(best)
    first = sizes[0]
    per_item = {n: (best[n] - best[first]) / (n - first) for n in sizes[1:]}
    ratio, note = None, ""
    if len(per_item) >= 2:
        before = sizes[-2]
        if best[before] - best[first] >= NOISE_MS:
            ratio = round(per_item[sizes[-1]] / per_item[before], 2)
        else:
            note = (f"t({before}) - t({first}) under {NOISE_MS:g} ms: within the noise, no "
                    "ratio")
    return {"per_item_us": {str(n): round(v * 1000, 1) for n, v in per_item.items()},
            "slope_ratio": ratio, "slope_note": note}


def collect(runs: int, quick: bool) -> dict[str, Any]:
    node = c.fake_node("scaling")
    plan: dict[str, tuple[int, ...]] = {kind: SIZES[:2] if quick else SIZES
                                        for kind in ("binds", "images", "attributes")}
    plan["plugins"] = PLUGIN_COUNTS[:2] if quick else PLUGIN_COUNTS
    small = min(runs, 10)
    big = 1 if quick else max(2, small // 2)
    configs = {(kind, n): build(node, kind, n) for kind, sizes in plan.items() for n in sizes}

    def setup(config: str, directory: Path, env: dict[str, str] | None = None) -> c.Sample:
        node.reset(config)
        return c.checked(c.timed(node.setup_argv(directory), env or node.env, node.work),
                         "setup")

    samples: dict[tuple[str, int], list[c.Sample]] = {key: [] for key in configs}
    small, warmup = c.rounds(small, quick)
    for number in range(warmup + small):  # the warm-up round is discarded
        for (kind, n), (config, directory) in configs.items():
            if number < warmup + (small if n <= 100 else big):
                sample = setup(config, directory)
                if number >= warmup:
                    samples[kind, n].append(sample)
    results: dict[str, Any] = {}
    for kind, sizes in plan.items():
        best = {n: min(s.wall_ms for s in samples[kind, n]) for n in sizes}
        results[kind] = {"sizes": {str(n): {**c.summary(samples[kind, n]),
                                            "best_ms": round(best[n], 2)} for n in sizes},
                         **slopes(best)}

    def traced(n: int) -> dict[str, float]:
        env = {**node.env, "GLIDEIN_PLUGINS_TRACE": "1"}
        return bind_phases([setup(*configs["binds", n], env) for _ in range(1 if quick else 3)])

    phases = {n: traced(n) for n in plan["binds"]}
    results["binds"]["phases_ms"] = {str(n): found for n, found in phases.items()}
    validation = slopes({n: found["glidein_binds_validate"] for n, found in phases.items()})
    results["binds"]["validate_per_item_us"] = validation["per_item_us"]
    largest = str(max(plan["binds"]))
    validate = results["binds"]["phases_ms"][largest]["glidein_binds_validate"]
    targets = [c.target(f"{largest} binds validated (glidein_binds_validate)",
                        validate if largest == "10000" else None, TARGET_VALIDATE_MS, "ms",
                        "" if largest == "10000" else "10,000 binds not run with --quick")]
    targets += [c.target(f"{kind}: per-item cost at N={max(plan[kind])} / at the N before",
                         results[kind]["slope_ratio"], TARGET_SLOPE_RATIO, "x",
                         results[kind]["slope_note"] or "1 = linear, below 1 = better")
                for kind in plan]
    targets.insert(1, c.target(f"bind validation: per-item cost at N={largest} / at the N before",
                               validation["slope_ratio"], TARGET_SLOPE_RATIO, "x",
                               validation["slope_note"] or "glidein_binds_validate alone"))
    return {"results": results, "targets": targets}


def bind_phases(samples: list[c.Sample]) -> dict[str, float]:
    """Median ms of the bind hooks over traced runs (each hook's calls summed per run)."""
    found = {}
    for hook in ("glidein_binds_contribute", "glidein_binds_validate"):
        found[hook] = round(statistics.median(
            sum(took for name, _, took in c.hook_times(s.stderr) if name == hook)
            for s in samples), 1)
    return found


def render(data: dict[str, Any]) -> str:
    parts = ["## Scaling (setup on the instant fake node; medians)"]
    for kind, row in data["results"].items():
        per_item = row["per_item_us"]
        lines: list[tuple[Any, ...]] = [
            (n, size["runs"], c.ms(size["wall_ms"]["median"]),
             f"{c.ms(size['wall_ms']['p10'])}-{c.ms(size['wall_ms']['p90'])}",
             c.ms(size["best_ms"]), f"{size['rss_mb']['median']:.1f}", per_item.get(n, "-"))
            for n, size in row["sizes"].items()]
        if "phases_ms" in row:
            lines = [(*line, row["phases_ms"][line[0]]["glidein_binds_contribute"],
                      row["phases_ms"][line[0]]["glidein_binds_validate"]) for line in lines]
        headers = ["N", "runs", "median ms", "p10-p90", "best ms", "peak RSS MB",
                   "us per item over N0 (best)",
                   *(["contribute ms", "validate ms"] if "phases_ms" in row else [])]
        ratio, note = row["slope_ratio"], row["slope_note"]
        about = f"per-item cost, last N / the N before: {ratio:.2f}" if ratio is not None \
            else note
        parts += [f"### {kind}" + (f" ({about})" if about else ""), c.table(headers, lines)]
    parts.append(c.targets_table(data["targets"]))
    return "\n\n".join(parts)


if __name__ == "__main__":
    sys.exit(c.main("scaling", collect, render, __doc__, runs=10))
