"""Per-job overhead of the job wrapper: from the wrapper's start to the runtime's exec.

    python3 benchmarks/wrapper_overhead.py [--runs 50] [--quick] [--json PATH]

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

- ``bare decision``: a glidein whose setup wanted no container (NEVER, DISABLE): the shell
  only;
- ``default image``: a job that names no image (the node's default);
- ``default image + 2 CVMFS repos``: the job's ``CVMFSReposList`` checked too;
- ``job image``: the job's own ``SingularityImage`` in CVMFS (resolved by a bounded child);
- ``HTCondor line``: HTCondor starts the container (native mode: setup's decision and the
  machine ad say so), the wrapper corrects the line.

It prints a table (median, 10th and 90th percentiles, ratios of the medians to
``python3 -S -c pass`` and ``/bin/sh -c :``), the processes each scenario starts (``strace -f``
when installed), the standard-library modules the Python part imports that are known to be
expensive, and writes everything as JSON. Target: default image <= 2x ``python3 -S -c pass``.
"""

from __future__ import annotations

import functools
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import _common as c

WRAPPER = c.ROOT / "hooks" / "glidein_plugins_wrapper.sh"
HEAVY = ("re", "dataclasses", "inspect", "typing", "enum", "subprocess", "json", "pathlib",
         "concurrent.futures", "pluggy", "yaml", "glidein_plugins.spec.results")
REPOS = ("cms.cern.ch", "oasis.opensciencegrid.org")
BASELINES = ("python3 -S -c pass", "python3 -I -S -c pass", "/bin/sh -c :")
TARGET_RATIO = 2.0
Case = tuple[list[str], "dict[str, str] | None", "Path | None"]


def build_node(top: Path) -> dict[str, Any]:
    """A fake node after a successful setup; returns what the scenarios need."""
    fake_bin, cvmfs = c.fakes(top)
    for repo in REPOS:
        (cvmfs.root / repo).mkdir()
    work = top / "glidein"
    work.mkdir()
    (work / "condor_vars.lst").write_text("")
    config = {
        "GLIDEIN_Entry_Name": c.ENTRY, "GLIDEIN_Name": "bench", "GLIDEIN_Factory": "bench",
        "GLIDECLIENT_Name": "bench", "GLIDEIN_WORK_DIR": str(work),
        "GLIDEIN_ENTRY_WORK_DIR": str(work), "TMP_DIR": str(work / "tmp"),
        "CONDOR_VARS_FILE": str(work / "condor_vars.lst"),
        "GLIDEIN_Singularity_Use": "REQUIRED",
    }
    (work / "glidein_config").write_text("".join(f"{k} {v}\n" for k, v in config.items()))
    (work / "tmp").mkdir()
    glidein_env = {"PATH": f"{fake_bin.dir}:/usr/bin:/bin", "CVMFS_MOUNT_DIR": str(cvmfs.root),
                   "GLIDEIN_PLUGINS_DISABLE": "gpus", "HOME": str(top), "LANG": "C.UTF-8"}
    setup = subprocess.run(
        [c.PYTHON, "-m", "glidein_plugins", "setup", "glidein_config", "entry"],
        cwd=work, env={**glidein_env, "PYTHONPATH": str(c.ROOT)}, capture_output=True,
        text=True, timeout=300, check=False)
    if setup.returncode != 0:
        raise c.BenchmarkError(f"setup failed on the fake node:\n{setup.stdout}\n{setup.stderr}")
    values = dict(line.split(" ", 1) for line in
                  (work / "glidein_config").read_text().splitlines() if " " in line)
    state = values["GLIDEIN_PLUGINS_STATE"]
    runtime = Path(json.loads(Path(state).read_text())["runtime"]["path"])
    runtime.unlink()
    runtime.symlink_to("/bin/true")  # the runtime now exits as soon as it is exec'ed
    return {"glidein_env": glidein_env, "state": state, "runtime": str(runtime),
            "image": str(cvmfs.images["rhel9"]), "work": work}


def write_ads(sandbox: Path, job_extra: dict[str, str],
              native: bool = False) -> tuple[Path, Path]:
    """A job ad (~150 attributes) and a machine ad (~300), as the starter writes them (the
    machine ad of a glidein in native mode with ``native``)."""
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
               **({"GLIDEIN_CONTAINER_LAUNCH": '"native"'} if native else {}),
               **{f"MachineAttribute{i}": f"ifThenElse(Cpus > {i % 8}, {i}, \"low {i}\")"
                  for i in range(300)}}
    paths = sandbox / ".job.ad", sandbox / ".machine.ad"
    for path, attributes in zip(paths, (job, machine)):
        path.write_text("".join(f"{name} = {value}\n" for name, value in attributes.items()))
    return paths


def scenarios(node: dict[str, Any], top: Path) -> dict[str, Case]:
    """name -> (argv, environment, cwd)."""
    found: dict[str, Case] = {}
    base_env = {**node["glidein_env"],
                **{f"JOB_VARIABLE_{i}": f"value {i}" for i in range(50)}}
    job = ["/bin/echo", "--events", "1000", "two words"]
    image = str(node["image"])
    cases = {
        "bare decision": ({}, "bare", job),
        "default image": ({}, "container", job),
        "default image + 2 CVMFS repos": ({"CVMFSReposList": f'"{",".join(REPOS)}"'},
                                          "container", job),
        "job image": ({"SingularityImage": f'"{image}"'}, "container", job),
        "HTCondor line": ({}, "native", [str(node["runtime"]), "-s", "exec", "-S", "/tmp",
                                         "--pwd", "/srv", "-C", "--no-home", image, *job]),
    }
    # as GlideinWMS deploys it: condor_job_wrapper.sh in the glidein's work dir, where the
    # wrapper finds setup's decision beside itself (container: this setup's; bare and native:
    # the same glidein as a setup that decided so leaves it)
    work = Path(node["work"])
    wrappers = {"container": work / "condor_job_wrapper.sh"}
    decided = (work / ".glidein_plugins" / "decision").read_text()
    for decision in ("bare", "native"):
        other = top / decision / ".glidein_plugins"
        other.mkdir(parents=True)
        state = json.loads(Path(node["state"]).read_text())
        state["decision"] = decision
        (other / "setup_state.json").write_text(json.dumps(state))
        (other / "decision").write_text(decided.replace("=container", f"={decision}").replace(
            str(node["state"]), str(other / "setup_state.json")))
        wrappers[decision] = other.parent / "condor_job_wrapper.sh"
    for wrapper in wrappers.values():
        shutil.copy(WRAPPER, wrapper)
    for number, (name, (extra, decision, argv)) in enumerate(cases.items()):
        sandbox = top / "execute" / f"dir_{number}"
        sandbox.mkdir(parents=True)
        job_ad, machine_ad = write_ads(sandbox, extra, decision == "native")
        env = {**base_env, "_CONDOR_JOB_AD": str(job_ad), "_CONDOR_MACHINE_AD": str(machine_ad),
               "_CONDOR_SCRATCH_DIR": str(sandbox), "TMPDIR": str(sandbox),
               "_CONDOR_WRAPPER_ERROR_FILE": str(sandbox / ".job_wrapper_failure")}
        found[name] = ([str(wrappers[decision]), *argv], env, sandbox)
    return found


def python_imports(scenario: Case, state: str) -> dict[str, Any]:
    """What the Python part imports in one run (``-X importtime``: CPython only)."""
    argv, env, cwd = scenario
    assert env is not None
    code = ("import sys; sys.path.insert(0, sys.argv[3]); "
            "from glidein_plugins.runs.job import hook; sys.exit(hook(sys.argv[1:]))")
    proc = subprocess.run([c.PYTHON, "-X", "importtime", "-I", "-S", "-c", c.marked_code(code),
                           str(state), str(WRAPPER), str(c.ROOT), *argv[1:]],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    times = c.imports_after_mark(proc.stderr)
    if not times:
        return {"note": f"{platform.python_implementation()} has no -X importtime"}
    return {"heavy": sorted(name for name in HEAVY if name in times),
            "glidein_plugins_import_ms": round(sum(cum for name, (_, cum, _) in times.items()
                                                   if name.startswith("glidein_plugins")
                                                   and name.count(".") == 1) / 1000, 2)}


def unmarked(case: Case) -> Case:
    """``case``, its sandbox without the first pass's mark. The runtime (/bin/true) runs no
    second pass, which would remove it; a fresh sandbox would not have it (the wrapper refuses
    to start a job's container twice). Removed before each run, untimed."""
    if case[2] is not None:
        (case[2] / ".glidein_plugins" / "reexec").unlink(missing_ok=True)
    return case


def run(name: str, case: Case) -> c.Sample:
    return c.checked(c.timed(*unmarked(case)), name)


def collect(runs: int, quick: bool) -> dict[str, Any]:
    top = c.scratch("wrapper-overhead")
    node = build_node(top)
    cases: dict[str, Case] = {
        "python3 -S -c pass": ([c.PYTHON, "-S", "-c", "pass"], None, None),
        "python3 -I -S -c pass": ([c.PYTHON, "-I", "-S", "-c", "pass"], None, None),
        "/bin/sh -c :": (["/bin/sh", "-c", ":"], None, None),
        **scenarios(node, top),
    }
    samples = c.interleave({name: functools.partial(run, name, case)
                            for name, case in cases.items()},
                           *c.rounds(runs, quick, warmup=3))
    python = c.summary(samples["python3 -S -c pass"])["wall_ms"]["median"]
    shell = c.summary(samples["/bin/sh -c :"])["wall_ms"]["median"]
    results = {}
    for name, found in samples.items():
        wall = c.summary(found)["wall_ms"]
        results[name] = {"median_ms": wall["median"], "p10_ms": wall["p10"],
                         "p90_ms": wall["p90"],
                         "ratio_python_S": round(wall["median"] / python, 2),
                         "ratio_sh": round(wall["median"] / shell, 1)}
    spawned = {name: c.processes(*unmarked(cases[name])) for name in cases
               if name not in BASELINES}
    ratio = results["default image"]["ratio_python_S"]
    return {"runs": len(samples["/bin/sh -c :"]), "results": results, "processes": spawned,
            "python_part_imports": python_imports(unmarked(cases["default image"]),
                                                  str(node["state"])),
            "targets": [c.target("wrapper (default image) / python3 -S -c pass", ratio,
                                 TARGET_RATIO, "x")]}


def render(data: dict[str, Any]) -> str:
    results = data["results"]
    rows = [(name, c.ms(row["median_ms"]), f"{c.ms(row['p10_ms'])}-{c.ms(row['p90_ms'])}",
             f"{row['ratio_python_S']:.2f}x", f"{row['ratio_sh']:.1f}x")
            for name, row in results.items()]
    lines = []
    for name, found in data["processes"].items():
        if "programs" in found:
            lines.append(f"- {name}: {found['processes']} process(es); exec: "
                         f"{', '.join(found['programs'])}")
        else:
            lines.append(f"- {name}: {found['note']}")
    return "\n\n".join([
        f"## Job wrapper: start -> runtime exec ({data['runs']} runs each, interleaved)",
        c.table(["case", "median ms", "p10-p90", "/ python3 -S", "/ sh -c :"], rows),
        "Processes per job start (strace -f):\n" + "\n".join(lines),
        f"Python part (default image): {json.dumps(data['python_part_imports'])}",
        c.targets_table(data["targets"])])


if __name__ == "__main__":
    sys.exit(c.main("wrapper_overhead", collect, render, __doc__, runs=50))
