"""Setup with slow probes: do the runtime test, GPU detection and the CVMFS check overlap?

    python3 benchmarks/slow_probes.py [--runs 10] [--quick] [--json PATH]

The node of ``setup_speed`` plus three probes that each take DELAY seconds (1 s; 0.2 s with
``--quick``), each an opt-in option of a fake:

- the runtime's container test: the fake Apptainer's ``exec`` sleeps first
  (``FAKE_RUNTIME_EXEC_DELAY``; ``version`` stays instant);
- GPU detection: a fake ``nvidia-smi`` on PATH reporting 8 H100s sleeps first
  (``tests/gpu_fakes``, ``FAKE_NVIDIA_SMI_DELAY``);
- the ``cvmfs`` plugin's check of ``cms.cern.ch`` (the entry's ``settings: {cvmfs:
  {repositories: [cms.cern.ch]}}``, passed with ``--config-dir``): the fake ``stat``, first on
  PATH, sleeps before answering for that repository, like an autofs mount on first use
  (``FAKE_STAT_DELAY=ROOT/cms.cern.ch:DELAY``); neither the images nor the runtime discovery
  look there.

Interleaved with the same setup without the delays (``fast``). Run one after another the probes
would take ``fast + 3 x DELAY``; overlapping, ``fast + DELAY``. One more run with
``GLIDEIN_PLUGINS_TRACE=1`` shows the hook calls that took the time. Target: total <= 1.3 s
with 1 s probes.
"""

from __future__ import annotations

import sys
from typing import Any

import _common as c

DELAY = 1.0
QUICK_DELAY = 0.2
TARGET_S = 1.3
REPO = "cms.cern.ch"
CONFIG = f"""version: 1
entries:
  {c.ENTRY}:
    settings:
      cvmfs: {{repositories: [{REPO}]}}
"""


def collect(runs: int, quick: bool) -> dict[str, Any]:
    delay = QUICK_DELAY if quick else DELAY
    node = c.fake_node("slow-probes")
    node.bin.install_stat()
    (node.bin.dir / "nvidia-smi").symlink_to(c.GPU_FAKES / "nvidia-smi")
    (node.bin.dir / "python3").symlink_to(node.python)  # for the fake's #!/usr/bin/env python3
    (node.cvmfs.root / REPO).mkdir()
    configs = c.config_dir(node.top, "configs", CONFIG)
    node.env["FAKE_NVIDIA_SMI"] = str(c.GPU_FAKES / "nvidia" / "h100x8.json")
    slow = {**node.env, "FAKE_RUNTIME_EXEC_DELAY": str(delay), "FAKE_NVIDIA_SMI_DELAY": str(delay),
            "FAKE_STAT_DELAY": f"{node.cvmfs.root / REPO}:{delay}"}

    def setup(env: dict[str, str]) -> c.Sample:
        node.reset()
        return c.checked(c.timed(node.setup_argv(configs), env, node.work), "setup")

    samples = c.interleave({"slow probes": lambda: setup(slow), "fast": lambda: setup(node.env)},
                           *c.rounds(min(runs, 10), quick))
    results = {name: c.summary(found) for name, found in samples.items()}
    node.reset()
    logs = {"FAKE_RUNTIME_LOG": node.top / "runtime.log",
            "FAKE_NVIDIA_SMI_LOG": node.top / "nvidia-smi.log"}
    traced = c.checked(c.timed(node.setup_argv(configs), {
        **slow, "GLIDEIN_PLUGINS_TRACE": "1", **{k: str(v) for k, v in logs.items()}},
        node.work), "traced setup")
    values = node.values()
    slow_calls = [{"hook": hook, "plugin": plugin, "ms": round(took, 1)}
                  for hook, plugin, took in c.hook_times(traced.stderr) if took >= delay * 500]
    log_lines = {k: v.read_text().splitlines() if v.exists() else [] for k, v in logs.items()}
    total = results["slow probes"]["wall_ms"]["median"] / 1000
    fast = results["fast"]["wall_ms"]["median"] / 1000
    checks = {"HAS_SINGULARITY": values.get("HAS_SINGULARITY", ""),
              "GLIDEIN_GPU_COUNT": values.get("GLIDEIN_GPU_COUNT", ""),
              f"HAS_CVMFS_{REPO.replace('.', '_')}":
                  values.get(f"HAS_CVMFS_{REPO.replace('.', '_')}", ""),
              "runtime exec calls": sum("\texec\t" in line
                                        for line in log_lines["FAKE_RUNTIME_LOG"]),
              "nvidia-smi calls": len(log_lines["FAKE_NVIDIA_SMI_LOG"])}
    note = "" if quick else f"{DELAY:g} s probes"
    return {
        "delay_s": delay, "delays_sum_s": 3 * delay, "results": results,
        "total_s": round(total, 3), "fast_s": round(fast, 3),
        "serial_estimate_s": round(fast + 3 * delay, 3),
        "overlapped_estimate_s": round(fast + delay, 3),
        "ratio_to_delays_sum": round(total / (3 * delay), 2),
        "added_by_delays_s": round(total - fast, 3), "slow_calls": slow_calls, "checks": checks,
        "targets": [c.target("setup with three slow probes", total if not quick else None,
                             TARGET_S, "s", note or "not measured with --quick (0.2 s probes)")],
    }


def render(data: dict[str, Any]) -> str:
    delay = data["delay_s"]
    rows = [(name, c.ms(row["wall_ms"]["median"]),
             f"{c.ms(row['wall_ms']['p10'])}-{c.ms(row['wall_ms']['p90'])}",
             c.ms(row["cpu_ms"]["median"])) for name, row in data["results"].items()]
    runs = data["results"]["fast"]["runs"]
    summary = c.table(["", "seconds"], [
        ("setup with the slow probes (median)", f"{data['total_s']:.3f}"),
        ("the same without the delays", f"{data['fast_s']:.3f}"),
        ("the three delays, summed", f"{data['delays_sum_s']:.3f}"),
        ("expected one after another (fast + sum)", f"{data['serial_estimate_s']:.3f}"),
        ("expected fully overlapped (fast + one delay)", f"{data['overlapped_estimate_s']:.3f}"),
        ("total / sum of the delays", f"{data['ratio_to_delays_sum']:.2f}"),
    ])
    calls = "\n".join(f"- {call['hook']} {call['plugin']}: {call['ms']:.0f} ms"
                      for call in data["slow_calls"]) or "- none"
    checks = ", ".join(f"{k}={v}" for k, v in data["checks"].items())
    return "\n\n".join([
        f"## Setup with three probes of {delay:g} s each ({runs} runs each, interleaved)",
        c.table(["case", "median ms", "p10-p90", "CPU ms"], rows), summary,
        f"Hook calls over {delay * 500:.0f} ms (GLIDEIN_PLUGINS_TRACE=1):\n{calls}",
        f"Checks: {checks}", c.targets_table(data["targets"])])


if __name__ == "__main__":
    sys.exit(c.main("slow_probes", collect, render, __doc__, runs=10))
