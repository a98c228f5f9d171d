"""Fault injection through the real CLI (``python -m glidein_plugins setup``, a subprocess):
every external command hanging at once, a work dir that cannot be written (read-only, full),
and drop-in plugins that crash, return nonsense, overrun the budget or claim another plugin's
attribute. Each run must end in time, say what went wrong (result XML read with xml.etree), keep
glidein_config whole, and leave no process behind (psutil, or /proc on PyPy).

Covered elsewhere, not repeated here: one hang at a time (test_probe, test_images_plugin,
test_gpu_detect, test_gpu_plugin, test_discovery, test_periodic, test_commands), the writer API
refused a read-only or full directory and concurrent writers (test_glidein_config), and plugin
failures in every hook in-process (test_runner)."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from conftest import (
    ROOT,
    FakeCvmfs,
    GlideinResult,
    bare_node_env,
    glidein_result,
    make_work_dir,
    run_cli,
    write_executable,
)
from gpu_fakes.fakenode import FAKES as GPU_FAKES
from test_periodic import Node, make_reader

from glidein_plugins.protocol.glideinwms import glidein_config as gc
from glidein_plugins.testing import make_fake_bin, make_fake_cvmfs

try:
    import psutil
except ImportError:  # PyPy: no psutil build, /proc is read instead
    psutil = None

MARKER = "GLIDEIN_FAULT_INJECTION"  # in every child's environment: how leftovers are found
SLACK = 10.0  # seconds beyond the budget: Python's start and a loaded 2-core machine
PreExec = Optional[Callable[[], None]]


# -- what a run leaves running ------------------------------------------------------------------

def _processes() -> list[tuple[int, list[str], dict[str, str]]]:
    """``(pid, argv, environ)`` of every process we may look at (zombies have neither)."""
    found = []
    if psutil is not None:
        for proc in psutil.process_iter():
            try:
                found.append((proc.pid, proc.cmdline(), proc.environ()))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):  # gone, not a process, or not ours to read
            continue
        if entry.name.isdigit():
            found.append((int(entry.name), [arg.decode(errors="replace") for arg in argv],
                          dict(item.decode(errors="replace").partition("=")[::2]
                               for item in environ if item)))
    return found


def leftovers(tag: str, within: float = 10.0) -> list[str]:
    """Processes still running (after ``within`` s to go: a kill is asynchronous) that a run
    tagged ``tag`` started: ``MARKER=tag`` in their environment, or ``tag`` in their argv."""
    deadline = time.monotonic() + within
    while True:
        found = [f"{pid}: {' '.join(argv)}" for pid, argv, environ in _processes()
                 if pid != os.getpid() and (environ.get(MARKER) == tag
                                            or any(tag in arg for arg in argv))]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def setup_cli(work: Path, env: dict[str, str], *args: str,
              prefix: tuple[str, ...] = (), preexec: PreExec = None
              ) -> tuple[subprocess.CompletedProcess[str], float]:
    """``[PREFIX...] python -m glidein_plugins setup glidein_config entry ARGS`` in ``work``,
    tagged for ``leftovers``; returns it and its wall time."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env, MARKER: str(work.parent)}
    started = time.monotonic()
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "glidein_plugins", "setup", "glidein_config", "entry",
         *args], cwd=work, env=environ, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=120, preexec_fn=preexec)
    return proc, time.monotonic() - started


def config_dir(tmp_path: Path, text: str) -> Path:
    """A ``--config-dir`` holding ``entry.yaml``."""
    directory = tmp_path / "factory_configs"
    directory.mkdir()
    (directory / "entry.yaml").write_text("version: 1\n" + text)
    return directory


def untouched(work: Path, before: dict[str, bytes]) -> None:
    """glidein_config and condor_vars.lst byte for byte as ``before``; no lock, pid or
    temporary file left beside them."""
    assert {name: (work / name).read_bytes() for name in before} == before
    assert [p.name for p in work.iterdir() if p.name.endswith((".lock", ".pid", ".tmp"))] == []


def snapshot(work: Path) -> dict[str, bytes]:
    return {name: (work / name).read_bytes() for name in ("glidein_config", "condor_vars.lst")}


# -- 1. every external command hanging at once --------------------------------------------------

FAKE_LMOD = """#!/bin/sh
# A fake Lmod whose every command hangs (its cache on a dead NFS mount): `module load` never ends.
exec sleep 86400
"""
# Lmod's init/bash defines `module` this way (simplified)
LMOD_INIT = 'module() { eval "$($LMOD_CMD bash "$@")"; }\n'
SHORT_TIMEOUTS = """  settings:
    gpus: {root: ROOT, timeout: 1, rocm_smi: '', ldconfig: '', cuda_probe: false}
    discovery: {timeout: 1}
    images: {timeout: 1}
    binds: {timeout: 1}
    probe: {timeout: 1, version_timeout: 1}
"""
DEFAULT_TIMEOUTS = """  settings:
    gpus: {root: ROOT, rocm_smi: '', ldconfig: '', cuda_probe: false}
"""


def hung_node(tmp_path: Path, mode: str) -> tuple[Path, dict[str, str]]:
    """A glidein work dir on a node where everything hangs: the runtime (every command), the
    CVMFS mount (``stat`` of anything under it, the image and the OSG binary included),
    ``module`` (Lmod), ``nvidia-smi`` and ``condor_gpu_discovery``. Returns the work dir and
    the environment (GPU detection on, its files under an empty root)."""
    fakes = make_fake_bin(tmp_path)
    cvmfs = make_fake_cvmfs(tmp_path / "cvmfs", fakes)
    fakes.install_runtime("apptainer", fail="hang")
    fakes.install_stat()
    for tool in ("nvidia-smi", "condor_gpu_discovery"):
        (fakes.dir / tool).symlink_to(GPU_FAKES / tool)
    (fakes.dir / "python3").symlink_to(sys.executable)  # the fake nvidia-smi's interpreter
    lmod = write_executable(tmp_path / "lmod" / "libexec" / "lmod", FAKE_LMOD)
    (tmp_path / "lmod" / "init").mkdir()
    (tmp_path / "lmod" / "init" / "bash").write_text(LMOD_INIT)
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": mode})
    return work, cvmfs.env(
        FAKE_STAT_HANG=str(cvmfs.root), SINGULARITY_IMAGES_DICT=cvmfs.images_dict("rhel9"),
        LMOD_CMD=str(lmod), GLIDEIN_PLUGINS_DISABLE="",  # the bare node's "gpus" re-enabled
        FAKE_NVIDIA_SMI=str(GPU_FAKES / "nvidia" / "hang.json"),
        FAKE_CONDOR_GPU_DISCOVERY_HANG="1")


def stopped(log: str, *what: str) -> bool:
    """Whether a line of ``log`` holding every ``what`` says it timed out or ran out of
    budget."""
    return any(all(part in line for part in what)
               and ("timed out" in line or "budget exhausted" in line)
               for line in log.splitlines())


@pytest.mark.parametrize(("mode", "budget", "timeouts"), [
    # each command's timeout (1 s) is reached long before the budget: every hang is met
    ("PREFERRED", 20, SHORT_TIMEOUTS),
    # the commands' own timeouts (10-60 s) are longer than the budget: the budget wins
    ("REQUIRED", 3, DEFAULT_TIMEOUTS),
], ids=["timeouts", "budget"])
def test_every_command_hanging_at_once(tmp_path: Path, mode: str, budget: float,
                                       timeouts: str) -> None:
    work, env = hung_node(tmp_path, mode)
    configs = config_dir(tmp_path, f"defaults:\n  budget_seconds: {budget}\n"
                         + timeouts.replace("ROOT", str(tmp_path / "gpu_root")))
    (tmp_path / "gpu_root").mkdir()
    before = snapshot(work)
    proc, seconds = setup_cli(work, env, "--config-dir", str(configs))
    assert seconds < budget + SLACK, (seconds, proc.stdout)
    result = glidein_result(proc, work)  # well-formed XML, status OK if and only if exit 0
    log = result.stdout
    runtime, cvmfs = tmp_path / "bin" / "apptainer", tmp_path / "cvmfs"
    if mode == "PREFERRED":  # everything met its timeout, reported, and the glidein goes on
        assert (result.status, result.metrics["use_singularity"]) == ("OK", "False"), log
        assert f"{runtime} (apptainer on PATH): version check failed: {runtime}: timed out" in \
            result.config["HAS_SINGULARITY_REASON"]
        gpus = result.config["HAS_GPU_REASON"]
        for tool in ("nvidia-smi", "condor_gpu_discovery"):
            assert f"{tmp_path / 'bin' / tool}: timed out after" in gpus, gpus
        for module in ("singularitypro", "singularity"):
            assert f"module load {module}: not available (bash: timed out after" in log
        assert f"{cvmfs}/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest " \
               "(SINGULARITY_IMAGES_DICT) unusable: could not be checked: stat: timed out" in log
        assert f"{cvmfs}/oasis.opensciencegrid.org/mis/singularity/bin/singularity (OSG CVMFS) " \
               "not proposed: could not be checked: stat: timed out" in log
        # glidein_config: whole lines only, what was there first kept as it was
        after = work / "glidein_config"
        assert gc.read(after).problems == ()
        assert after.read_bytes().startswith(before["glidein_config"])
        assert set(result.condor_vars) - {"GLIDEIN_Site"} <= set(result.config)
    else:  # the budget ran out first: a clean failure, nothing published
        assert (result.status, result.failure) == ("ERROR", "WN_Resource"), log
        # which hang took the budget depends on the machine's speed (PyPy is slower to warm
        # up): the discovery (a hung `module load` and CVMFS stat) before it proposed the
        # binary on PATH, or the probe of that binary; either way the detail says the budget
        assert result.detail.startswith("Singularity is REQUIRED but "), result.detail
        if str(runtime) in result.detail:
            assert result.detail.startswith("Singularity is REQUIRED but no working container "
                                            f"runtime among 1 tried: {runtime} (apptainer on "
                                            "PATH)")
            assert "budget" in result.detail.split(str(runtime), 1)[1]  # why not proven
        else:
            assert result.detail.endswith("no candidate binary was proposed (the setup time "
                                          "budget ran out)"), result.detail
        # which hang took the budget depends on the machine's speed: each of the others was
        # killed at the budget, not run at all, or its plugin stopped waiting for
        assert stopped(log, "osgvo-el9:latest (SINGULARITY_IMAGES_DICT) unusable", "stat: ")
        assert stopped(log, "module load singularitypro") or stopped(
            log, "in glidein_runtime_discover: ")
        for tool in ("nvidia-smi", "condor_gpu_discovery"):
            assert stopped(log, str(tmp_path / "bin" / tool)) or stopped(
                log, "in glidein_gpu_detect: "), log
        untouched(work, before)
    assert leftovers(str(tmp_path)) == []


def test_periodic_with_the_runtime_and_cvmfs_hanging_at_once(tmp_path: Path,
                                                             fake_cvmfs: FakeCvmfs) -> None:
    """After a good setup, the runtime (every command) and the CVMFS mount (``stat``) hang:
    the startd cron job still ends within its budget with valid lines saying both."""
    node = Node(tmp_path, fake_cvmfs, make_reader())
    node.break_runtime(fail="hang")
    fake_cvmfs.bin.install_stat()
    started = time.monotonic()
    ad, proc = node.periodic("--budget", "3", env={
        "FAKE_STAT_HANG": str(fake_cvmfs.root), MARKER: str(tmp_path)})
    assert time.monotonic() - started < 3 + SLACK
    assert (ad["HAS_SINGULARITY"], ad["GLIDEIN_PLUGINS_PERIODIC_OK"]) == (False, False)
    for check in ("RUNTIME", "CVMFS"):
        assert ad[f"GLIDEIN_PLUGINS_{check}_OK"] is False, proc.stdout
        assert "timed out" in str(ad[f"GLIDEIN_PLUGINS_{check}_REASON"]), proc.stdout
    assert ad["HAS_CVMFS_singularity_opensciencegrid_org"] is False
    assert leftovers(str(tmp_path)) == []


# -- 2. a work dir that cannot be written -------------------------------------------------------

READ_ONLY_PROBE = ("import glidein_plugins.cli, pluggy, yaml\n"
                   "try:\n"
                   "    open('.probe', 'w')\n"
                   "except OSError:\n"
                   "    raise SystemExit(3)\n")
# a read-only bind mount of $1 over itself, in a mount namespace of the command's own
# (then entered anew: a cwd inherited from before is still on the writable mount)
REMOUNT = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && cd "$1" && shift && '
           'exec "$@"')


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def read_only(directory: Path) -> tuple[tuple[str, ...], PreExec]:
    """How to run a command to which ``directory`` is read-only: ``(argv prefix, preexec_fn)``.

    Not root: mode 0555 (left on ``directory``). Root, whom modes do not stop: a read-only bind
    mount in a new mount namespace (``unshare -m``; in a user namespace too, ``-r``, where the
    container refuses the first), else running as nobody. Each way is tried first (the package
    must import, a write must fail); skips only where none works as root.
    """
    if os.geteuid() != 0:
        directory.chmod(0o555)
        ways: list[tuple[tuple[str, ...], PreExec]] = [((), None)]
    else:
        mount = ("-m", "--propagation", "private", "sh", "-c", REMOUNT, "sh", str(directory))
        ways = [(("unshare", *mount), None), (("unshare", "-r", *mount), None),
                ((), _drop_to_nobody)]
    tried = []
    for prefix, preexec in ways:
        try:
            probe = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_PROBE],
                                   cwd=directory, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=60, preexec_fn=preexec)
        except (OSError, subprocess.SubprocessError) as exc:  # no unshare, no setuid
            tried.append(f"{' '.join(prefix[:2]) or 'drop to nobody'}: {exc}")
            continue
        finally:
            with contextlib.suppress(OSError):  # written where the way did not work
                (directory / ".probe").unlink()
        if probe.returncode == 3:
            return prefix, preexec
        tried.append(f"{' '.join(prefix[:2]) or 'drop to nobody'}: exit {probe.returncode}: "
                     f"{probe.stderr.strip()[-200:]}")
    if os.geteuid() != 0:
        pytest.fail(f"mode 0555 did not make {directory} read-only: {tried}")
    pytest.skip(f"no way to make a directory read-only for root here: {'; '.join(tried)}")
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("mode", "failure", "why"), [
    # every mode keeps its decision for job start (issue 13): that is the first write to fail
    ("PREFERRED", "WN_Resource", "cannot keep the setup state for job start: "),
    ("NEVER", "WN_Resource", "cannot keep the setup state for job start: "),
])
def test_a_read_only_work_dir_fails_clearly_and_changes_nothing(
        tmp_path: Path, mode: str, failure: str, why: str) -> None:
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": mode})
    before = snapshot(work)
    listing = sorted(p.name for p in work.iterdir())
    try:
        prefix, preexec = read_only(work)
        proc, _ = setup_cli(work, bare_node_env(tmp_path / "bare"), prefix=prefix,
                            preexec=preexec)
    finally:
        work.chmod(0o755)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    # the result XML cannot be written either: the glidein log says both
    last = proc.stdout.splitlines()[-1]
    assert last.startswith(f"glidein_plugins: entry TEST_ENTRY: FAILED (exit 1): {failure}: "
                           f"{why}"), proc.stdout
    assert f"cannot write result XML: {work / 'otrb_output.xml'}: cannot write: " in proc.stdout
    assert sorted(p.name for p in work.iterdir()) == listing
    untouched(work, before)
    assert leftovers(str(tmp_path)) == []


def test_a_full_disk_fails_with_config_and_keeps_the_old_glidein_config(tmp_path: Path) -> None:
    """The rewrite of a 44 kB glidein_config does not fit under a 16 kB file-size limit
    (RLIMIT_FSIZE: EFBIG, SIGXFSZ being ignored by Python); the small files do: the result
    XML says Config, glidein_config and condor_vars.lst stay as they were."""
    padding = {f"PAD_{number:04d}": "x" * 100 for number in range(400)}
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "NEVER", **padding})
    before = snapshot(work)
    assert len(before["glidein_config"]) > 40_000

    def full() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))

    proc, _ = setup_cli(work, bare_node_env(tmp_path / "bare"), preexec=full)
    result = glidein_result(proc, work)
    assert (result.status, result.failure) == ("ERROR", "Config"), result.stdout
    assert result.detail == (f"cannot publish attributes: {work / 'glidein_config'}: "
                             f"cannot write: {os.strerror(errno.EFBIG)}")
    untouched(work, before)


def test_a_stale_lock_costs_part_of_the_budget_not_minutes(tmp_path: Path) -> None:
    """A writer that died holding glidein_config's lock: the setup breaks the lock after a
    quarter of what is left of its budget (not the lock's own minute) and publishes."""
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "NEVER"})
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=60)
    os.symlink("glidein_config", work / "glidein_config.lock")
    (work / "glidein_config.pid").write_text(f"{dead.pid}\n")
    configs = config_dir(tmp_path, "defaults:\n  budget_seconds: 12\n")
    proc, elapsed = setup_cli(work, bare_node_env(tmp_path / "bare"), "--config-dir",
                              str(configs))
    result = glidein_result(proc, work)
    assert (result.status, result.exit_code) == ("OK", 0), proc.stdout + proc.stderr
    assert result.config["HAS_SINGULARITY"] == "False"  # published
    assert 2.0 < elapsed < 12 + SLACK
    assert [p.name for p in work.iterdir() if p.name.endswith((".lock", ".pid"))] == []


# -- 3. drop-in plugins that misbehave ----------------------------------------------------------

PLUGIN_HEADER = """\
import time
from glidein_plugins import Attribute, AttrType, hookimpl
"""
RAISES = """
@hookimpl
def glidein_attributes_contribute():
    raise RuntimeError("boom")
"""
WRONG_TYPE = """
@hookimpl
def glidein_images_contribute():
    return "/cvmfs/vo.example.org/el9"
"""
WRONG_TYPE_FATAL = """
@hookimpl(tryfirst=True)
def glidein_mode_negotiate():
    return {"outcome": "REQUIRED"}
"""
SLEEPS = """
@hookimpl
def glidein_libraries_detect():
    time.sleep(60)
"""
CLAIMS = """
@hookimpl
def glidein_attributes_contribute():
    return [Attribute("HAS_SINGULARITY", "True", AttrType.EXPR, override=OVERRIDE)]
"""
HTCONDOR_OWNED = """
@hookimpl
def glidein_attributes_contribute():
    return [Attribute.boolean("HasSingularity", True)]
"""
NAMED = "plugin vo_fault (site) in "


@pytest.mark.parametrize(("source", "required", "failure", "says"), [
    (RAISES, False, "", NAMED + "glidein_attributes_contribute: raised RuntimeError: boom"),
    (RAISES, True, "Config", NAMED + "glidein_attributes_contribute: raised RuntimeError: boom "
                             "(the plugin is required by the entry)"),
    (WRONG_TYPE, False, "", NAMED + "glidein_images_contribute: returned str, not an iterable "
                                    "of Image"),
    (WRONG_TYPE_FATAL, False, "Config", NAMED + "glidein_mode_negotiate: returned dict, not "
                                                "ModeDecision"),
    (SLEEPS, True, "WN_Resource", NAMED + "glidein_libraries_detect: still running after "),
    (CLAIMS.replace("OVERRIDE", "False"), False, "Config",
     "attribute HAS_SINGULARITY set to 'True' by plugin vo_fault (site) and to 'False' by "
     "plugin singularity ("),
    (CLAIMS.replace("OVERRIDE", "True"), False, "",
     "HAS_SINGULARITY=True from vo_fault (override=True) wins over False from singularity"),
    (HTCONDOR_OWNED, False, "", NAMED + "glidein_attributes_contribute: raised ValueError: "
                                        "'HasSingularity' is computed by the HTCondor startd"),
], ids=["raises", "raises-required", "wrong-type", "wrong-type-fatal-hook",
        "sleeps-required", "claims-attribute", "claims-attribute-override", "htcondor-owned"])
def test_a_misbehaving_drop_in_plugin(tmp_path: Path, source: str, required: bool,
                                      failure: str, says: str) -> None:
    """The plugin is a file in the entry's site plugin directory; the built-ins still publish
    (non-fatal hooks), or the glidein stops with a clean failure naming it (a fatal hook, a
    required plugin, a conflict)."""
    site = tmp_path / "site_plugins"
    site.mkdir()
    (site / "vo_fault.py").write_text(PLUGIN_HEADER + source)
    plugins = f"{{directories: [{site}]" + (", required: [vo_fault]}" if required else "}")
    configs = config_dir(tmp_path, f"defaults:\n  budget_seconds: 3\n  plugins: {plugins}\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    before = snapshot(work)
    proc = run_cli(["setup", "glidein_config", "entry", "--config-dir", str(configs)], work,
                   bare_node_env(tmp_path / "bare"))
    result: GlideinResult = glidein_result(proc, work)
    assert result.failure == failure, result.stdout
    assert says in (result.detail if failure else result.stdout), result.stdout
    if failure:
        untouched(work, before)
    else:  # the others' answers are published
        assert result.config["GWMS_SINGULARITY_STATUS"] == "PREFERRED"
        assert result.config["HAS_SINGULARITY"] == ("True" if "override" in says else "False")
