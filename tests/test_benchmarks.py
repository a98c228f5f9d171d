"""The benchmarks keep running (``benchmarks/run.py --quick``; no figure is checked), their
process counting classifies a real ``strace -f`` log right, and the fakes' delay options used by
the slow-probe benchmark delay what they say and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
FAKES = ROOT / "glidein_plugins" / "testing" / "fakes"
NVIDIA_SMI = Path(__file__).resolve().parent / "gpu_fakes" / "nvidia-smi"
H100 = NVIDIA_SMI.parent / "nvidia" / "h100x8.json"
DELAY = 0.3


def test_every_benchmark_runs_and_writes_its_results(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--json",
                           str(output)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(output.read_text())
    names = ("setup_speed", "slow_probes", "wrapper_overhead", "imports", "scaling")
    assert set(report["benchmarks"]) == set(names)
    for name in names:
        data = report["benchmarks"][name]
        assert "error" not in data, (name, data)
        for row in data["targets"]:
            assert set(row) >= {"name", "value", "target", "unit", "met"}, row
    assert "## Targets" in proc.stdout
    checks = report["benchmarks"]["slow_probes"]["checks"]  # the probes really ran
    assert checks["GLIDEIN_GPU_COUNT"] == "8" and checks["nvidia-smi calls"] >= 1
    assert checks["HAS_SINGULARITY"] == "True" and checks["HAS_CVMFS_cms_cern_ch"] == "True"
    assert report["benchmarks"]["setup_speed"]["published"]["HAS_SINGULARITY"] == "True"
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]  # nothing else


@pytest.fixture
def common() -> object:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _common  # noqa: PLC0415 - benchmarks/ is not a package
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _common


def test_spawned_programs_are_split_into_runtime_probes_and_the_rest(
        tmp_path: Path, common: object) -> None:
    """A Python that starts a fake runtime from a thread (which runs ``id`` and execs ``cat``),
    then ``true``: the runtime's programs are the probes', the rest are its own."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    runtime = tmp_path / "apptainer"
    runtime.write_text("#!/bin/sh\nid -u >/dev/null\nexec cat /dev/null\n")
    runtime.chmod(0o755)
    code = ("import subprocess, threading\n"
            f"t = threading.Thread(target=subprocess.run, args=([{str(runtime)!r}],))\n"
            "t.start(); t.join(); subprocess.run(['true'])\n")
    found = common.processes([sys.executable, "-c", code],  # type: ignore[attr-defined]
                             dict(os.environ), tmp_path, [str(runtime)])
    if "note" in found:
        pytest.skip(found["note"])
    assert found["runtime"]["programs"] == {"apptainer": 1, "id": 1, "cat": 1}
    own = found["own"]["programs"]
    assert own.get("true") == 1 and sum(own.values()) == found["own"]["execs"]
    assert found["threads"] >= 1
    assert found["processes"] == 1 + 3  # python; the runtime, its `id` child; true


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    proc = subprocess.run(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=20)
    return time.monotonic() - start, proc


Case = tuple[list[str], dict[str, str], list[str], dict[str, str]]


def _cases(tmp_path: Path) -> dict[str, Case]:
    """fake -> (argv, its delay option; an argv the option must not slow, with the option set
    so that it would hang past the timeout if it did: [] when it slows every call)."""
    slow, fast = tmp_path / "slow", tmp_path / "fast"
    for directory in (slow, fast):
        directory.mkdir()
    apptainer, stat = str(FAKES / "apptainer"), str(FAKES / "stat")
    return {
        "apptainer": ([apptainer, "exec", str(tmp_path), "cat", "/proc/self/uid_map"],
                      {"FAKE_RUNTIME_EXEC_DELAY": str(DELAY)},
                      [apptainer, "--version"], {"FAKE_RUNTIME_EXEC_DELAY": "60"}),
        "stat": ([stat, "-c", "%n", str(fast), str(slow / ".")],
                 {"FAKE_STAT_DELAY": f"{slow}:{DELAY}"},
                 [stat, "-c", "%n", str(fast)], {"FAKE_STAT_DELAY": f"{slow}:60"}),
        "nvidia-smi": ([sys.executable, str(NVIDIA_SMI), "--query-gpu=index,name",
                        "--format=csv"], {"FAKE_NVIDIA_SMI_DELAY": str(DELAY)}, [], {}),
    }


@pytest.mark.parametrize("fake", ["apptainer", "stat", "nvidia-smi"])
def test_a_delay_option_slows_only_its_calls_and_changes_no_output(
        tmp_path: Path, fake: str) -> None:
    argv, option, untouched, hanging = _cases(tmp_path)[fake]
    scenario = {"FAKE_NVIDIA_SMI": str(H100)}
    _, plain = _run(argv, scenario)
    seconds, slow = _run(argv, {**scenario, **option})
    assert plain.returncode == 0 and plain.stdout, plain.stderr
    assert (slow.returncode, slow.stdout, slow.stderr) == (0, plain.stdout, plain.stderr)
    assert seconds >= DELAY
    if untouched:
        _, other = _run(untouched, hanging)  # times out if the option slowed it
        assert other.returncode == 0 and other.stdout, other.stderr
