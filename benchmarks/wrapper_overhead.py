"""Per-job overhead of the job wrapper: from the wrapper's start to the runtime's exec.

    python3 benchmarks/wrapper_overhead.py [--runs 50] [--json wrapper_overhead.json]

It builds a fake worker node in a temporary directory (the tests' fake runtime and a CVMFS tree
with the OSG images), runs ``glidein-plugins setup`` there (REQUIRED), then replaces the runtime
binary the state names by ``/bin/true``: a runtime that exits as soon as it is exec'ed. Each run
is one job start as HTCondor does it: ``hooks/glidein_plugins_wrapper.sh JOB ARGS`` executed in
a job sandbox, with realistic job and machine ads in files (~150 and ~300 attributes) and a job
environment of ~60 variables; its wall time, from spawning the wrapper until it has exited, is
wrapper start -> runtime exec plus the exec and exit of ``/bin/true`` (well under a
millisecond). The baselines run the same way in the same loop, interleaved with the scenarios
(so that a busy machine slows all of them alike): ``python3 -S -c pass`` (this interpreter,
never a pyenv shim), ``python3 -I -S -c pass`` (how the wrapper starts Python) and
``/bin/sh -c :``. Scenarios:

- ``no state``: a glidein whose setup wanted no container (NEVER, DISABLE): the shell only;
- ``default image``: a job that names no image (the node's default);
- ``default image + 2 CVMFS repos``: the job's ``CVMFSReposList`` checked too;
- ``job image``: the job's own ``SingularityImage`` in CVMFS (resolved by a bounded child);
- ``HTCondor line``: HTCondor starts the container (native mode), the wrapper corrects the line.

It prints a table (median, 10th and 90th percentiles, ratios of the medians to
``python3 -S -c pass`` and ``/bin/sh -c :``), the processes each scenario starts (``strace -f``
when installed), the standard-library modules the Python part imports that are known to be
expensive, and writes everything as JSON. Not a test: no threshold is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "hooks" / "glidein_plugins_wrapper.sh"
FAKE_RUNTIME = ROOT / "glidein_plugins" / "testing" / "fakes" / "apptainer"
HEAVY = ("re", "dataclasses", "inspect", "typing", "enum", "subprocess", "json", "pathlib",
         "concurrent.futures", "pluggy", "yaml", "glidein_plugins.results")
REPOS = ("cms.cern.ch", "oasis.opensciencegrid.org")


def build_node(top: Path) -> dict[str, object]:
    """A fake node after a successful setup; returns what the scenarios need."""
    bin_dir, cvmfs, work = top / "bin", top / "cvmfs", top / "glidein"
    bin_dir.mkdir()
    shutil.copy(FAKE_RUNTIME, bin_dir / "apptainer")
    (bin_dir / "apptainer").chmod(0o755)
    images = {}
    for number in (9, 8, 7):
        image = cvmfs / "singularity.opensciencegrid.org" / "opensciencegrid" / \
            f"osgvo-el{number}:latest"
        for sub in ("srv", "etc", "cvmfs", "tmp", "bin", "usr"):
            (image / sub).mkdir(parents=True)
        images[number] = image
    for repo in REPOS:
        (cvmfs / repo).mkdir()
    work.mkdir()
    (work / "condor_vars.lst").write_text("")
    config = {
        "GLIDEIN_Entry_Name": "BENCH", "GLIDEIN_Name": "bench", "GLIDEIN_Factory": "bench",
        "GLIDECLIENT_Name": "bench", "GLIDEIN_WORK_DIR": str(work),
        "GLIDEIN_ENTRY_WORK_DIR": str(work), "TMP_DIR": str(work / "tmp"),
        "CONDOR_VARS_FILE": str(work / "condor_vars.lst"),
        "GLIDEIN_Singularity_Use": "REQUIRED",
    }
    (work / "glidein_config").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
    (work / "tmp").mkdir()
    glidein_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CVMFS_MOUNT_DIR": str(cvmfs),
                   "GLIDEIN_PLUGINS_DISABLE": "gpus", "HOME": str(top), "LANG": "C.UTF-8"}
    setup = subprocess.run(
        [sys.executable, "-m", "glidein_plugins", "setup", "glidein_config", "entry"],
        cwd=work, env={**glidein_env, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=300, check=False)
    if setup.returncode != 0:
        sys.exit(f"setup failed on the fake node:\n{setup.stdout}\n{setup.stderr}")
    values = dict(line.split(" ", 1) for line in
                  (work / "glidein_config").read_text().splitlines() if " " in line)
    state = values["GLIDEIN_PLUGINS_STATE"]
    runtime = Path(json.loads(Path(state).read_text())["runtime"]["path"])
    runtime.unlink()
    runtime.symlink_to("/bin/true")  # the runtime now exits as soon as it is exec'ed
    return {"glidein_env": glidein_env, "state": state, "runtime": str(runtime),
            "image": str(images[9]), "work": work}


def write_ads(sandbox: Path, job_extra: dict[str, str]) -> tuple[Path, Path]:
    """A job ad (~150 attributes) and a machine ad (~300), as the starter writes them."""
    job = {"ClusterId": "4242", "ProcId": "0", "Owner": '"alice"',
           "Cmd": f'"{sandbox}/condor_exec.exe"', "Iwd": f'"{sandbox}"',
           "Arguments": '"--events 1000 --seed 7"', "RequestCpus": "1",
           "RequestMemory": "ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048)",
           "Requirements": '(TARGET.HAS_SINGULARITY == true) && (TARGET.Arch == "X86_64")',
           "Environment": "\"FOO=1 BAR='x y'\"", "x509userproxy": f'"{sandbox}/x509up"',
           **{f"JobAttribute{i}": f'"value {i} with \\"quotes\\" and = signs"'
              for i in range(140)}, **job_extra}
    machine = {"Name": '"slot1_1@node.example.org"', "Arch": '"X86_64"', "OpSys": '"LINUX"',
               "Cpus": "1", "Memory": "2048", "GLIDEIN_Site": '"Example"',
               **{f"MachineAttribute{i}": f"ifThenElse(Cpus > {i % 8}, {i}, \"low {i}\")"
                  for i in range(300)}}
    paths = sandbox / ".job.ad", sandbox / ".machine.ad"
    for path, attributes in zip(paths, (job, machine)):
        path.write_text("".join(f"{name} = {value}\n" for name, value in attributes.items()))
    return paths


def scenarios(node: dict[str, object], top: Path) -> dict[str, tuple[list[str], dict[str, str],
                                                                       Path]]:
    """name -> (argv, environment, cwd)."""
    found = {}
    base_env = {**node["glidein_env"],  # type: ignore[dict-item]
                **{f"JOB_VARIABLE_{i}": f"value {i}" for i in range(50)},
                "GLIDEIN_PLUGINS_PYTHON": sys.executable}
    job = ["/bin/echo", "--events", "1000", "two words"]
    image = str(node["image"])
    cases = {
        "no state": ({}, False, job),
        "default image": ({}, True, job),
        "default image + 2 CVMFS repos": ({"CVMFSReposList": f'"{",".join(REPOS)}"'}, True,
                                          job),
        "job image": ({"SingularityImage": f'"{image}"'}, True, job),
        "HTCondor line": ({}, True, [str(node["runtime"]), "-s", "exec", "-S", "/tmp",
                                     "--pwd", "/srv", "-C", "--no-home", image, *job]),
    }
    for number, (name, (extra, with_state, argv)) in enumerate(cases.items()):
        sandbox = top / "execute" / f"dir_{number}"
        sandbox.mkdir(parents=True)
        job_ad, machine_ad = write_ads(sandbox, extra)
        env = {**base_env, "_CONDOR_JOB_AD": str(job_ad), "_CONDOR_MACHINE_AD": str(machine_ad),
               "_CONDOR_SCRATCH_DIR": str(sandbox), "TMPDIR": str(sandbox),
               "_CONDOR_WRAPPER_ERROR_FILE": str(sandbox / ".job_wrapper_failure")}
        if with_state:
            env["GLIDEIN_PLUGINS_STATE"] = str(node["state"])
        found[name] = ([str(WRAPPER), *argv], env, sandbox)
    return found


def run_once(argv: list[str], env: dict[str, str] | None, cwd: Path | None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                          check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{argv[:3]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def processes(argv: list[str], env: dict[str, str] | None, cwd: Path | None,
              top: Path) -> dict[str, object]:
    """The programs one run executes and the processes it creates (``strace -f``)."""
    strace = shutil.which("strace")
    if strace is None:
        return {"note": "strace is not installed"}
    log = top / "strace.log"
    subprocess.run([strace, "-f", "-qq", "-o", str(log), "-e",
                    "trace=execve,clone,clone3,fork,vfork", *argv], env=env, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
    lines = log.read_text().splitlines()
    programs = [line.split('"')[1] for line in lines
                if "execve(" in line and "= 0" in line.rsplit(")", 1)[-1]]
    created = [line for line in lines if any(call in line for call in
                                             ("clone(", "clone3(", "fork(", "vfork("))
               and "resumed" not in line and "= -1" not in line]
    return {"programs": [os.path.basename(program) for program in programs],
            "processes": 1 + len(created)}


def python_imports(scenario: tuple[list[str], dict[str, str], Path]) -> dict[str, object]:
    """What the Python part imports in one run (``-X importtime``: CPython only)."""
    argv, env, cwd = scenario
    code = ("import sys; sys.path.insert(0, sys.argv[3]); "
            "from glidein_plugins.wrap import hook; sys.exit(hook(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", code,
                           env["GLIDEIN_PLUGINS_STATE"], str(WRAPPER), str(ROOT), *argv[1:]],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    times = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                times[name.strip()] = int(cumulative)
    if not times:
        return {"note": f"{platform.python_implementation()} has no -X importtime"}
    return {"heavy": sorted(name for name in HEAVY if name in times),
            "glidein_plugins_import_ms": round(sum(us for name, us in times.items()
                                            if name.startswith("glidein_plugins")
                                            and name.count(".") == 1) / 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of each (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="runs discarded first")
    parser.add_argument("--json", default="wrapper_overhead.json", metavar="FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wrapper-bench-") as directory:
        top = Path(directory)
        node = build_node(top)
        cases: dict[str, tuple[list[str], dict[str, str] | None, Path | None]] = {
            "python3 -S -c pass": ([sys.executable, "-S", "-c", "pass"], None, None),
            "python3 -I -S -c pass": ([sys.executable, "-I", "-S", "-c", "pass"], None, None),
            "/bin/sh -c :": (["/bin/sh", "-c", ":"], None, None),
            **scenarios(node, top),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(args.warmup + args.runs):
            for name, (argv, env, cwd) in cases.items():
                seconds = run_once(argv, env, cwd)
                if number >= args.warmup:
                    samples[name].append(seconds * 1000)
        python = statistics.median(samples["python3 -S -c pass"])
        shell = statistics.median(samples["/bin/sh -c :"])
        results = {}
        for name, values in samples.items():
            median = statistics.median(values)
            results[name] = {
                "median_ms": round(median, 2), "p10_ms": round(percentile(values, 0.1), 2),
                "p90_ms": round(percentile(values, 0.9), 2),
                "ratio_python_S": round(median / python, 2), "ratio_sh": round(median / shell, 1),
            }
        spawned = {name: processes(*cases[name], top) for name in cases
                   if name not in ("python3 -S -c pass", "python3 -I -S -c pass", "/bin/sh -c :")}
        imports = python_imports(cases["default image"])  # type: ignore[arg-type]
    report = {
        "python": sys.executable, "version": platform.python_version(),
        "implementation": platform.python_implementation(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "runs": args.runs, "results": results, "processes": spawned,
        "python_part_imports": imports,
    }
    width = max(len(name) for name in results)
    print(f"wrapper start -> runtime exec, {args.runs} runs each, interleaved "
          f"({report['implementation']} {report['version']}, {report['cpus']} CPUs, "
          f"load {report['load_average'][0]})")
    print(f"{'':{width}}  {'median':>8}  {'p10':>8}  {'p90':>8}  {'/python -S':>10}  {'/sh':>6}")
    for name, row in results.items():
        print(f"{name:{width}}  {row['median_ms']:>6.2f}ms  {row['p10_ms']:>6.2f}ms  "
              f"{row['p90_ms']:>6.2f}ms  {row['ratio_python_S']:>9.2f}x  {row['ratio_sh']:>5.1f}x")
    print("\nprocesses per job start (strace -f):")
    for name, found in spawned.items():
        if "programs" in found:
            print(f"  {name:{width}}  {found['processes']} process(es); exec: "
                  f"{', '.join(found['programs'])}")  # type: ignore[arg-type]
        else:
            print(f"  {name:{width}}  {found['note']}")
    print(f"\nPython part (default image): {json.dumps(imports)}")
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
