"""What the benchmarks share: the glidein tarball and a bare Python, fake worker nodes, a timing
loop with the child's resource usage, process counting with ``strace``, tables and the command
line of each benchmark module.

Every benchmark module has ``collect(runs, quick) -> dict`` (JSON-able; its ``targets`` entry is
a list of ``target(...)`` rows) and ``render(data) -> str``; ``benchmarks/run.py`` runs them all.

How setup is run, as on a worker node: ``glidein-plugins pack`` builds the tarball from this
checkout, it is untarred into ``<glidein>/entry_BENCH/glidein_plugins`` with the setup script
copied beside it (as the factory's ``<files>`` deliver it), and the interpreter is a
``python3 -m venv --without-pip`` made from this Python: only the standard library, and none of
the ``.pth`` start-up hooks this machine's site-packages may hold (a worker node's Python has
none of them; one of them here costs ~30 ms per interpreter start).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the kit's fakes and the package from this checkout

from glidein_plugins.testing.glidein import gconfig_values, make_work_dir  # noqa: E402
from glidein_plugins.testing.node import (  # noqa: E402
    FakeBin,
    FakeCvmfs,
    make_fake_bin,
    make_fake_cvmfs,
)

PYTHON = sys.executable  # the running interpreter, never a pyenv shim
ENTRY = "BENCH"
GPU_FAKES = ROOT / "tests" / "gpu_fakes"
TIMEOUT = 600.0  # seconds any one measured command may take
_MARK = "@@glidein_plugins_bench@@"


class BenchmarkError(Exception):
    """A benchmark cannot measure (a command failed where it must not)."""


# -- scratch space, the tarball, the bare Python ------------------------------------------------

_scratch: list[Path] = []


def scratch(name: str) -> Path:
    """A new directory under this process's scratch directory (removed at exit)."""
    if not _scratch:
        top = Path(tempfile.mkdtemp(prefix="gp-bench-"))
        atexit.register(shutil.rmtree, top, True)
        _scratch.append(top)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_scratch[0]))


@dataclass(frozen=True)
class Package:
    """The glidein tarball built from this checkout, and a bare venv's interpreter."""

    tarball: Path
    python: str
    size: int


_package: list[Package] = []


def package() -> Package:
    """``glidein-plugins pack`` of this checkout and a bare venv (built once per process)."""
    if _package:
        return _package[0]
    top = scratch("package")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    packed = subprocess.run([PYTHON, "-m", "glidein_plugins", "pack", "--output", str(top / "out")],
                            cwd=top, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=300, check=False)
    tarballs = sorted((top / "out").glob("glidein_plugins-*.tar.gz"))
    if packed.returncode != 0 or len(tarballs) != 1:
        raise BenchmarkError(f"glidein-plugins pack failed: {packed.stdout}{packed.stderr}")
    venv = top / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    python = next(str(path) for path in (venv / "bin" / "python3", venv / "bin" / "python")
                  if path.exists())
    for module in ("glidein_plugins", "pluggy", "yaml"):  # it must come from the tarball
        found = subprocess.run([python, "-s", "-E", "-c", f"import {module}"], cwd=venv,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                               check=False)
        if found.returncode == 0:
            raise BenchmarkError(f"{module} is importable by the bare venv's Python")
    _package.append(Package(tarballs[0], python, tarballs[0].stat().st_size))
    return _package[0]


def unpack(tarball: Path, directory: Path) -> Path:
    """``tar -xmzf`` into ``directory`` (made), as GlideinWMS untars (``-m``: the files get the
    time of extraction)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xmzf", str(tarball), "-C", str(directory)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return directory


def launcher_code(pkg: Path) -> str:
    """The Python code the setup script runs (``hooks/glidein_plugins_python.sh``)."""
    text = (pkg / "hooks" / "glidein_plugins_python.sh").read_text()
    found = re.search(r"<<'EOF_LAUNCHER'\n(.*?)\nEOF_LAUNCHER\n", text, re.DOTALL)
    if found is None:
        raise BenchmarkError("no launcher text (EOF_LAUNCHER) in glidein_plugins_python.sh")
    return found.group(1)


# -- a fake worker node ---------------------------------------------------------------------

@dataclass
class Node:
    """A fake worker node with the unpacked tarball, reset before each run.

    ``work`` is the glidein dir (the setup's cwd), ``pkg`` the untarred package
    (``work/entry_BENCH/glidein_plugins``), ``script`` the setup script beside it, ``env`` the
    glidein's environment (PATH: the fakes' bin dir, then ``/usr/bin:/bin``).
    """

    top: Path
    bin: FakeBin
    cvmfs: FakeCvmfs
    work: Path
    pkg: Path
    script: Path
    python: str
    env: dict[str, str]
    config: str = ""
    condor_vars: str = ""
    launcher: str = field(default="", repr=False)

    def reset(self, config: str | None = None) -> None:
        """A fresh glidein: glidein_config as first written (or ``config``), condor_vars.lst,
        no result XML, no history, no ``.glidein_plugins`` (so every run probes)."""
        (self.work / "glidein_config").write_text(self.config if config is None else config)
        (self.work / "condor_vars.lst").write_text(self.condor_vars)
        for name in ("otrb_output.xml", "glidein_config.history"):
            (self.work / name).unlink(missing_ok=True)
        shutil.rmtree(self.work / ".glidein_plugins", ignore_errors=True)

    def setup_argv(self, config_dir: Path | None = None, flags: Sequence[str] = ()) -> list[str]:
        """The setup as the setup script starts it: ``python -s -E -c "$launcher" PKG setup
        --config-dir DIR glidein_config entry`` (DIR: the tarball's factory_configs)."""
        return [self.python, "-s", "-E", *flags, "-c", self.launcher, str(self.pkg), "setup",
                "--config-dir", str(config_dir or self.pkg / "factory_configs"),
                "glidein_config", "entry"]

    def hook_argv(self) -> list[str]:
        """The setup script as glidein_startup.sh runs it (cwd: the glidein dir)."""
        return [str(self.script), "glidein_config", "entry"]

    def values(self) -> dict[str, str]:
        """glidein_config as the last run left it."""
        return gconfig_values(self.work / "glidein_config")

    def untar_again(self) -> None:
        """The package as a new glidein finds it: the tarball untarred afresh (``tar -m``)."""
        shutil.rmtree(self.pkg)
        unpack(package().tarball, self.pkg)

    def clear_bytecode(self) -> None:
        """The unpacked tree without bytecode, as a Python other than the one ``pack``
        compiled for finds it (the next run compiles every module; the parsed configurations
        stay)."""
        for compiled in list(self.pkg.rglob("*.pyc")):
            compiled.unlink()


def fakes(top: Path) -> tuple[FakeBin, FakeCvmfs]:
    """The plugin-author kit's instant fake Apptainer as ``top/bin/apptainer`` and a CVMFS tree
    at ``top/cvmfs`` with OSG's el9/el8/el7 images."""
    fake_bin = make_fake_bin(top)
    fake_bin.install_runtime("apptainer")
    return fake_bin, make_fake_cvmfs(top / "cvmfs", fake_bin)


def fake_node(name: str) -> Node:
    """A node: the kit's instant fake Apptainer (POSIX sh) as ``apptainer`` on PATH, a CVMFS
    tree with OSG's el9/el8/el7 images (``CVMFS_MOUNT_DIR``), no GPU tool on PATH, a glidein
    dir for entry ``BENCH`` with ``GLIDEIN_Singularity_Use PREFERRED`` and the tarball untarred
    in it."""
    built = package()
    top = scratch(name)
    fake_bin, cvmfs = fakes(top)
    work = make_work_dir(top / "glidein", {"GLIDEIN_Entry_Name": ENTRY,
                                           "GLIDEIN_Singularity_Use": "PREFERRED"})
    for sub in ("main", "tmp", f"entry_{ENTRY}"):
        (work / sub).mkdir(exist_ok=True)
    pkg = unpack(built.tarball, work / f"entry_{ENTRY}" / "glidein_plugins")
    script = pkg.parent / "glidein_plugins_setup.sh"
    shutil.copy2(pkg / "hooks" / "glidein_plugins_setup.sh", script)
    environ = {"PATH": f"{fake_bin.dir}:/usr/bin:/bin", "CVMFS_MOUNT_DIR": str(cvmfs.root),
               "HOME": str(top), "LANG": "C.UTF-8", "GLIDEIN_PLUGINS_PYTHON": built.python}
    node = Node(top, fake_bin, cvmfs, work, pkg, script, built.python, environ,
                (work / "glidein_config").read_text(), (work / "condor_vars.lst").read_text(),
                launcher_code(pkg))
    node.reset()
    return node


def config_dir(top: Path, name: str, text: str = "") -> Path:
    """A factory config directory holding ``bench.yaml`` (``text``), or nothing."""
    directory = top / name
    directory.mkdir(parents=True, exist_ok=True)
    if text:
        (directory / "bench.yaml").write_text(text)
    return directory


# -- timing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One run: wall time (fork to exit), the child's CPU time (user + system, its waited-for
    descendants included) and peak RSS (``ru_maxrss``: the largest of it and them)."""

    wall_ms: float
    cpu_ms: float
    rss_mb: float
    returncode: int
    stderr: str = field(default="", repr=False)


# The command is started by a small Python that forks, execs it and reports ``os.wait4``'s
# figures: a child's ru_maxrss starts at its parent's RSS (fork copies the page tables, vfork
# shares them), so the benchmark's own big process must not be that parent. The floor of the
# peak RSS is this helper's (~8 MB); it kills the command's process group at the timeout.
_SPAWN = r"""
import os, signal, sys, time
out, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, 0)
        for name in ("SIGPIPE", "SIGXFSZ"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write("cannot run %s: %s\n" % (argv[0], exc))
    os._exit(127)
signal.signal(signal.SIGALRM, lambda *_: os.killpg(pid, signal.SIGKILL))
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
signal.setitimer(signal.ITIMER_REAL, 0)
with open(out, "w") as handle:
    handle.write("%r %r %d %d" % (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                                  os.waitstatus_to_exitcode(status)))
"""


def timed(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None,
          timeout: float = TIMEOUT) -> Sample:
    """Run ``argv`` once (stdin /dev/null, stdout and stderr to files), timed from its fork to
    its exit by a small helper (``_SPAWN``) using ``os.wait4``."""
    with tempfile.TemporaryDirectory(prefix="timed-") as directory:
        figures, errors = Path(directory) / "figures", Path(directory) / "stderr"
        with open(os.devnull, "wb") as out, open(errors, "wb") as err:
            subprocess.run([PYTHON, "-I", "-S", "-c", _SPAWN, str(figures), str(timeout), *argv],
                           env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                           timeout=timeout + 60, check=False)
        stderr = errors.read_text(errors="replace")
        if not figures.exists():
            raise BenchmarkError(f"{argv[0]}: not measured: {stderr[-1500:]}")
        wall, cpu, rss, returncode = figures.read_text().split()
    return Sample(float(wall) * 1000, float(cpu) * 1000, int(rss) / 1024, int(returncode),
                  stderr)


def checked(sample: Sample, what: str) -> Sample:
    """``sample`` if its command exited 0, else BenchmarkError with the end of its stderr."""
    if sample.returncode != 0:
        raise BenchmarkError(f"{what} exited with code {sample.returncode}: "
                             f"{sample.stderr[-1500:]}")
    return sample


def interleave(cases: Mapping[str, Callable[[], Sample]], runs: int,
               warmup: int = 1) -> dict[str, list[Sample]]:
    """Each case once per round, round after round, so that a busy machine slows all of them
    alike; the first ``warmup`` rounds are discarded."""
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for number in range(warmup + runs):
        for name, case in cases.items():
            sample = case()
            if number >= warmup:
                samples[name].append(sample)
    return samples


def rounds(runs: int, quick: bool, warmup: int = 1) -> tuple[int, int]:
    """``(runs, warmup)`` for ``interleave``: one run and no warm-up for a ``--quick`` smoke
    run."""
    return (1, 0) if quick else (runs, warmup)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentiles (nearest rank), rounded."""
    return {"median": round(statistics.median(values), 2),
            "p10": round(percentile(values, 0.1), 2), "p90": round(percentile(values, 0.9), 2)}


def summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Wall, CPU and peak RSS of ``samples``: each a ``spread``; ``runs``."""
    return {"runs": len(samples), "wall_ms": spread([s.wall_ms for s in samples]),
            "cpu_ms": spread([s.cpu_ms for s in samples]),
            "rss_mb": spread([s.rss_mb for s in samples])}


# -- what a run spawns ----------------------------------------------------------------------

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_START = re.compile(r"^(execve|clone3?|v?fork)\(")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)")
_PATH = re.compile(r'^execve\("((?:[^"\\]|\\.)*)"')


def strace_events(log: str) -> list[tuple[int, str, Any, int]]:
    """``(pid, call, detail, result)`` per finished call of an ``strace -f`` log, in order:
    ``detail`` is the path for execve, True for a clone that made a thread."""
    pending: dict[int, tuple[str, Any]] = {}
    events = []
    for line in log.splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        pid, rest = int(found.group(1)), found.group(2)
        resumed = _RESUMED.match(rest)
        if resumed:
            call, detail = pending.pop(pid, (resumed.group(1), None))
        else:
            start = _START.match(rest)
            if not start:
                continue  # signals, exits
            call = start.group(1)
            path = _PATH.match(rest)
            detail = path.group(1) if path else "CLONE_THREAD" in rest
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (call, detail)
                continue
        results = _RESULT.findall(rest)
        if results:
            events.append((pid, call, detail, int(results[-1])))
    return events


def spawned(log: str, runtime: Iterable[str] = ()) -> dict[str, Any]:
    """Processes and programs in an ``strace -f -e trace=execve,clone,clone3,fork,vfork`` log.

    ``execs``: successful execs (a PATH search's failed tries left out), split into the
    ``runtime`` ones (a runtime binary and everything its processes run or start) and the
    ``own`` ones (everything else: the interpreter, stat, unshare, ...); ``processes``: the
    processes created (threads left out), the first one included.
    """
    runtime = set(runtime)
    events = strace_events(log)
    parent: dict[int, int] = {}
    thread: dict[int, bool] = {}
    for pid, call, detail, result in events:
        if call != "execve" and result > 0:
            parent[result], thread[result] = pid, bool(detail) and call.startswith("clone")

    def process(pid: int) -> int:
        while thread.get(pid) and pid in parent:
            pid = parent[pid]
        return pid

    marked: set[int] = set()

    def in_runtime(pid: int) -> bool:
        while True:
            pid = process(pid)
            if pid in marked:
                return True
            if pid not in parent:
                return False
            pid = parent[pid]

    programs: dict[str, list[str]] = {"own": [], "runtime": []}
    order: list[str] = []
    for pid, call, detail, result in events:
        if call == "execve" and result == 0:
            if detail in runtime:
                marked.add(process(pid))
            name = os.path.basename(str(detail))
            programs["runtime" if in_runtime(pid) else "own"].append(name)
            order.append(name)
    created = [pid for pid in parent if not thread[pid]]
    return {"processes": 1 + len(created), "threads": len(parent) - len(created),
            "execs": len(order), "programs": order,
            **{kind: {"execs": len(names), "programs": dict(Counter(names).most_common())}
               for kind, names in programs.items()}}


def processes(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None,
              runtime: Iterable[str] = ()) -> dict[str, Any]:
    """What one run of ``argv`` spawns (``spawned``), under ``strace -f``; a ``note`` instead
    when strace is not installed or cannot trace here."""
    strace = shutil.which("strace")
    if strace is None:
        return {"note": "strace is not installed"}
    with tempfile.TemporaryDirectory(prefix="strace-") as directory:
        log = Path(directory) / "strace.log"
        proc = subprocess.run([strace, "-f", "-qq", "-o", str(log), "-e",
                               "trace=execve,clone,clone3,fork,vfork", *argv], env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)
        text = log.read_text(errors="replace") if log.exists() else ""
    if not text:
        return {"note": f"strace could not trace here: {proc.stderr.decode()[-300:].strip()}"}
    found = spawned(text, runtime)
    found["returncode"] = proc.returncode
    return found


# -- what the package reports ---------------------------------------------------------------

_TRACE = re.compile(r"^\[trace\] (\w+) (\S+) \(([\d.]+) ms\)")


def hook_times(stderr: str) -> list[tuple[str, str, float]]:
    """``(hook, plugin, ms)`` of every call printed by ``GLIDEIN_PLUGINS_TRACE=1``."""
    return [(m.group(1), m.group(2), float(m.group(3)))
            for m in map(_TRACE.match, stderr.splitlines()) if m]


def marked_code(code: str) -> str:
    """``code`` that first writes a mark on stderr, so that ``imports_after_mark`` sees only
    the imports it makes, not the interpreter's start-up ones."""
    return (f"import sys; sys.stderr.write({_MARK!r} + '\\n'); sys.stderr.flush()\n" + code)


def imports_after_mark(stderr: str) -> dict[str, tuple[int, int, int]]:
    """``module -> (self us, cumulative us, depth)`` from ``-X importtime`` output after the
    mark (``marked_code``); depth 0 is an import made by the code itself."""
    found: dict[str, tuple[int, int, int]] = {}
    seen = False
    for line in stderr.splitlines():
        if line == _MARK:
            seen = True
        elif seen and line.startswith("import time:") and "|" in line:
            own, cumulative, name = line[len("import time:"):].split("|")
            if own.strip().isdigit():
                depth = (len(name) - len(name.lstrip()) - 1) // 2
                found.setdefault(name.strip(), (int(own), int(cumulative), depth))
    return found


# -- reporting ------------------------------------------------------------------------------

def target(name: str, value: float | None, limit: float, unit: str,
           note: str = "") -> dict[str, Any]:
    """A target row: ``value`` must be at most ``limit`` (None: not measured)."""
    return {"name": name, "value": None if value is None else round(value, 3), "target": limit,
            "unit": unit, "met": None if value is None else value <= limit, "note": note}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table, padded to line up (the first column left-aligned, the others right)."""
    cells = [[str(cell) for cell in headers], *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                 for i, (cell, w) in enumerate(zip(row, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def targets_table(rows: Sequence[Mapping[str, Any]]) -> str:
    def met(row: Mapping[str, Any]) -> str:
        return "n/a" if row["met"] is None else "yes" if row["met"] else "NO"

    return table(["target", "value", "limit", "met"],
                 [(row["name"], "-" if row["value"] is None else f"{row['value']:g} {row['unit']}",
                   f"<= {row['target']:g} {row['unit']}", met(row)) for row in rows])


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    return {"python": PYTHON, "version": platform.python_version(),
            "implementation": platform.python_implementation(), "machine": platform.machine(),
            "system": platform.platform(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "sh": os.path.realpath("/bin/sh"), "strace": shutil.which("strace") or "",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def default_json(name: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"glidein_plugins-{name}.json")


def write_json(path: str, benchmarks: Mapping[str, Any], started: Mapping[str, Any]) -> None:
    report = {"machine": started, "load_average_end": machine()["load_average"],
              "benchmarks": benchmarks}
    Path(path).write_text(json.dumps(report, indent=1) + "\n")


def main(name: str, collect: Callable[[int, bool], dict[str, Any]],
         render: Callable[[dict[str, Any]], str], doc: str | None, runs: int = 20) -> int:
    """The command line of one benchmark module: ``--runs N``, ``--quick``, ``--json PATH``."""
    parser = argparse.ArgumentParser(description=(doc or name).split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=f"measured runs (default {runs})")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few runs, small sizes")
    parser.add_argument("--json", default=default_json(name), metavar="PATH",
                        help=f"where to write the results (default {default_json(name)})")
    args = parser.parse_args()
    started = machine()
    data = collect(max(1, args.runs), args.quick)
    print(render(data))
    write_json(args.json, {name: data}, started)
    print(f"\nwritten: {args.json}")
    return 0
