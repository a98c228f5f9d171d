"""Shared fixtures: a GlideinWMS work dir, the CLI run as a real subprocess, HTCondor's parsers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IS_PYPY = platform.python_implementation() == "PyPy"


def make_work_dir(path: Path, values: dict[str, str] | None = None) -> Path:
    """A glidein work dir as glidein_startup.sh leaves it before an entry script runs."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "condor_vars.lst").write_text(
        "# VarName Type Default CondorName Required Export UserJobEnvName\n"
        "GLIDEIN_Site S - + N Y @\n")
    base = {
        "GLIDEIN_Entry_Name": "TEST_ENTRY",
        "GLIDEIN_Name": "gfactory_instance",
        "GLIDEIN_Factory": "TestFactory",
        "GLIDECLIENT_Name": "frontend.main",
        "GLIDEIN_WORK_DIR": str(path / "main"),
        "GLIDEIN_ENTRY_WORK_DIR": str(path / "entry_TEST_ENTRY"),
        "TMP_DIR": str(path / "tmp"),
        "CONDOR_VARS_FILE": str(path / "condor_vars.lst"),
        "ERROR_GEN_PATH": str(path / "main" / "error_gen.sh"),
    }
    base.update(values or {})
    (path / "glidein_config").write_text("".join(f"{k} {v}\n" for k, v in base.items()))
    return path


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """A fresh glidein work dir with a minimal glidein_config and condor_vars.lst."""
    return make_work_dir(tmp_path / "glide_work")


def run_cli(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m glidein_plugins ARGS`` as glidein_startup.sh runs a script: stdin closed."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environ.get("PYTHONPATH")])])
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "glidein_plugins", *args], cwd=cwd, env=environ,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def classad2():
    """HTCondor's ClassAd bindings: skipped on PyPy only (no build there), required on CPython."""
    if IS_PYPY:
        pytest.skip("HTCondor's bindings have no PyPy build")
    import classad2 as module  # noqa: PLC0415 - imported only off PyPy

    return module


@pytest.fixture
def htcondor2():
    """HTCondor's config bindings: skipped on PyPy only, required on CPython."""
    if IS_PYPY:
        pytest.skip("HTCondor's bindings have no PyPy build")
    import htcondor2 as module  # noqa: PLC0415 - imported only off PyPy

    return module


# ---------------------------------------------------------------------------------------------
# What a setup run leaves in the work dir, read by GlideinWMS's rules (not the package's code)
# ---------------------------------------------------------------------------------------------

import re  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from dataclasses import dataclass  # noqa: E402

_XML_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\Z")


def gconfig_values(path: Path) -> dict[str, str]:
    """glidein_config as ``gconfig_get`` reads it: value after the first space, last line wins."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(errors="surrogateescape").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values[key] = value
    return values


@dataclass
class GlideinResult:
    """A finished setup script: exit code, output, result XML, glidein_config, condor_vars."""

    script_id: str
    exit_code: int
    stdout: str
    stderr: str
    status: str  # OK | ERROR
    failure: str  # the failure type, '' when OK
    detail: str
    metrics: dict[str, str]
    config: dict[str, str]
    condor_vars: dict[str, str]  # name -> the line, columns joined by one space


def glidein_result(proc: subprocess.CompletedProcess, work_dir: Path) -> GlideinResult:
    """Read what ``proc`` (a setup run in ``work_dir``) left, checking the result XML the way
    ``error_augment.sh`` does (status OK if and only if exit 0) and parsing it with xml.etree.
    A traceback on stderr fails the test: every error must be a clear message."""
    assert "Traceback" not in proc.stderr, proc.stderr
    text = (work_dir / "otrb_output.xml").read_text()
    lines = text.splitlines()
    assert any("<OSGTestResult " in line for line in lines[:4]), text
    assert any("<result>" in line for line in lines[:8]), text
    assert any("</OSGTestResult>" in line for line in lines[-4:]), text
    root = ET.fromstring(text)
    assert (root.tag, root.get("version")) == ("OSGTestResult", "4.3.1")
    status = root.findtext("result/status") or ""
    assert status == ("OK" if proc.returncode == 0 else "ERROR"), (proc.returncode, text)
    metrics: dict[str, str] = {}
    for metric in root.iter("metric"):
        assert _XML_TS.match(metric.get("ts", "")) and metric.get("uri") == "local", text
        metrics[metric.get("name", "")] = metric.text or ""
    failure = metrics.pop("failure", "")
    assert bool(failure) == (status == "ERROR"), text
    config = gconfig_values(work_dir / "glidein_config")
    vars_path = work_dir / config.get("CONDOR_VARS_FILE", "-")
    rows = vars_path.read_text().splitlines() if vars_path.is_file() else []
    return GlideinResult(
        root.get("id", ""), proc.returncode, proc.stdout, proc.stderr, status, failure,
        " ".join((root.findtext("detail") or "").split()), metrics, config,
        {row.split()[0]: " ".join(row.split()) for row in rows
         if row.strip() and not row.startswith("#")})


def startd_values(result: GlideinResult, classad2) -> dict[str, object]:
    """What ``condor_startup.sh`` would put in the machine ad, evaluated by HTCondor's parser:
    every exported condor_vars line with a value (S quoted verbatim, I and C unquoted)."""
    values: dict[str, object] = {}
    for name, row in result.condor_vars.items():
        _, kind, default, condor_name, _, export, _ = row.split()
        value = result.config.get(name, None if default == "-" else default)
        if value is None or export != "Y":
            continue
        literal = f'"{value}"' if kind == "S" else value
        values[name if condor_name == "+" else condor_name] = classad2.ExprTree(literal).eval()
    return values


# ---------------------------------------------------------------------------------------------
# Fake container runtimes, a fake CVMFS tree and a stale-mount `stat` (tests/fakes/)
# ---------------------------------------------------------------------------------------------

from typing import Any  # noqa: E402

FAKES = ROOT / "tests" / "fakes"
SAFE_PATH = "/usr/bin:/bin"
# every input the runtime plugins read from the environment: blanked unless a test sets it, so
# that the real machine's state (a real apptainer, modules, CVMFS) never leaks into a test
RUNTIME_ENV_KEYS = (
    "GLIDEIN_SINGULARITY_BINARY_OVERRIDE", "SINGULARITY_BIN", "OSG_SINGULARITY_BINARY",
    "CONDOR_DIR", "CVMFS_MOUNT_DIR", "MODULESHOME", "LMOD_CMD", "APPTAINER_CONTAINER",
    "SINGULARITY_CONTAINER", "APPTAINER_BINDPATH", "SINGULARITY_BINDPATH",
    "SINGULARITY_IMAGES_DICT", "SINGULARITY_IMAGE_DEFAULT", "SINGULARITY_IMAGE_DEFAULT6",
    "SINGULARITY_IMAGE_DEFAULT7", "SINGULARITY_IMAGE_RESTRICTIONS",
    "GLIDEIN_SINGULARITY_BINDPATH", "GLIDEIN_SINGULARITY_BINDPATH_DEFAULT",
    "FAKE_RUNTIME_VERSION", "FAKE_RUNTIME_MODE", "FAKE_RUNTIME_FAIL", "FAKE_RUNTIME_DELAY",
    "FAKE_STAT_HANG",
)
# the built-in ``gpus`` plugin blocked: what the real machine's GPUs are never enters a container
# test (a test setting GLIDEIN_PLUGINS_DISABLE itself names ``gpus`` too)
NO_GPU_DETECTION = {"GLIDEIN_PLUGINS_DISABLE": "gpus"}


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@dataclass
class FakeBin:
    """A bin directory for fake executables, and the log every fake runtime appends to.

    ``install_runtime`` puts a configured copy of ``tests/fakes/apptainer`` (see its header for
    every behaviour) at ``directory/name``; ``install_stat`` puts the stale-mount ``stat`` in
    the bin dir; ``env`` is the environment a test runs the package with: PATH is
    ``<bin dir>:/usr/bin:/bin``, the runtime variables of ``RUNTIME_ENV_KEYS`` are blanked
    unless given, ``FAKE_RUNTIME_LOG`` names ``log``, GPU detection is off (``NO_GPU_DETECTION``:
    these are the container tests; the GPU tests make their own node); ``calls`` reads that log
    back.
    """

    dir: Path
    log: Path

    def install_runtime(self, name: str = "apptainer", *, version: str | None = None,
                        mode: str | None = None, fail: Sequence[str] | str = (),
                        delay: float | None = None, directory: Path | None = None) -> Path:
        """A fake runtime at ``directory/name`` (default: the bin dir), executable.

        ``version`` is its ``--version`` line (e.g. ``"singularity-ce version 3.11.4"``),
        ``mode`` ``privileged``/``fakeroot``/``unprivileged``, ``fail`` the failures to act out
        (``"hang"``, ``["nopid", "ansi"]``, ...), ``delay`` seconds slept before anything.
        These settings are written into the copy, so they win over the environment and two
        copies can behave differently. Returns the path.
        """
        config = {"FAKE_RUNTIME_VERSION": version, "FAKE_RUNTIME_MODE": mode,
                  "FAKE_RUNTIME_FAIL": fail if isinstance(fail, str) else ",".join(fail),
                  "FAKE_RUNTIME_DELAY": None if delay is None else str(delay)}
        lines = "".join(f"{key}={_shell_quote(value)}\n" for key, value in config.items()
                        if value)
        text = (FAKES / "apptainer").read_text().replace("# @FAKE_CONFIG@\n", lines, 1)
        return self._write((directory or self.dir) / name, text)

    def install_stat(self) -> Path:
        """The fake ``stat`` (hangs on paths under ``FAKE_STAT_HANG``) in the bin dir."""
        return self._write(self.dir / "stat", (FAKES / "stat").read_text())

    def install_script(self, name: str, text: str, directory: Path | None = None) -> Path:
        """Any executable script (``text`` starts with its ``#!`` line)."""
        return self._write((directory or self.dir) / name, text)

    @staticmethod
    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
        return path

    def env(self, **values: str) -> dict[str, str]:
        """The environment for a run against the fakes (``values`` set or replace keys)."""
        environ = {key: "" for key in RUNTIME_ENV_KEYS}
        environ.update(PATH=f"{self.dir}:{SAFE_PATH}", FAKE_RUNTIME_LOG=str(self.log),
                       **NO_GPU_DETECTION)
        environ.update(values)
        return environ

    def calls(self, path: Path | str | None = None) -> list[list[str]]:
        """Every logged invocation as ``[binary, arg, ...]`` (only ``path``'s when given)."""
        if not self.log.is_file():
            return []
        found = [line.split("\t") for line in self.log.read_text().splitlines() if line]
        return [call for call in found if path is None or call[0] == str(path)]

    def exec_calls(self, path: Path | str | None = None) -> list[list[str]]:
        """The logged ``exec`` invocations (argv without the binary)."""
        return [call[1:] for call in self.calls(path) if call[1:2] == ["exec"]]


@pytest.fixture
def fake_bin_dir(tmp_path: Path) -> FakeBin:
    """An empty bin directory ``tmp_path/bin`` for fakes (see ``FakeBin``)."""
    (tmp_path / "bin").mkdir()
    return FakeBin(tmp_path / "bin", tmp_path / "fake_runtime.log")


@pytest.fixture
def fake_runtime(fake_bin_dir: FakeBin) -> FakeBin:
    """``fake_bin_dir`` with a working unprivileged Apptainer 1.3.4 installed as ``apptainer``
    (reinstall with ``install_runtime("apptainer", ...)`` to change it)."""
    fake_bin_dir.install_runtime("apptainer")
    return fake_bin_dir


@dataclass
class FakeCvmfs:
    """A CVMFS tree: ``root`` is what ``CVMFS_MOUNT_DIR`` names.

    ``images`` maps ``rhel9``/``rhel8``/``rhel7`` to the OSG image directories
    ``root/singularity.opensciencegrid.org/opensciencegrid/osgvo-elN:latest`` (each holding
    ``srv etc cvmfs tmp bin usr``), ``osg_binary`` is the OSG-distributed runtime
    ``root/oasis.opensciencegrid.org/mis/singularity/bin/singularity`` (a fake runtime, present
    only after ``install_osg_binary``).
    """

    root: Path
    images: dict[str, Path]
    bin: FakeBin

    @property
    def osg_binary(self) -> Path:
        return self.root / "oasis.opensciencegrid.org" / "mis" / "singularity" / "bin" / \
            "singularity"

    def install_osg_binary(self, **config: Any) -> Path:
        """The fake runtime at ``osg_binary`` (``config`` as for ``FakeBin.install_runtime``)."""
        return self.bin.install_runtime("singularity", directory=self.osg_binary.parent,
                                        **config)

    def images_dict(self, *platforms: str) -> str:
        """A ``SINGULARITY_IMAGES_DICT`` naming the given platforms' images (all by default)."""
        return ",".join(f"{key}:{self.images[key]}" for key in platforms or self.images)

    def env(self, **values: str) -> dict[str, str]:
        """``FakeBin.env`` with ``CVMFS_MOUNT_DIR`` set to ``root``."""
        return self.bin.env(**{"CVMFS_MOUNT_DIR": str(self.root), **values})


@pytest.fixture
def fake_cvmfs(tmp_path: Path, fake_bin_dir: FakeBin) -> FakeCvmfs:
    """A fake CVMFS tree under ``tmp_path/cvmfs`` with the three OSG images (see ``FakeCvmfs``);
    its ``bin`` is the test's ``fake_bin_dir``."""
    root = tmp_path / "cvmfs"
    images = {}
    for number in (9, 8, 7):
        image = (root / "singularity.opensciencegrid.org" / "opensciencegrid" /
                 f"osgvo-el{number}:latest")
        for sub in ("srv", "etc", "cvmfs", "tmp", "bin", "usr"):
            (image / sub).mkdir(parents=True)
        images[f"rhel{number}"] = image
    return FakeCvmfs(root, images, fake_bin_dir)


def bare_node_env(root: Path) -> dict[str, str]:
    """The environment of a node with no container runtime and no image, whatever machine runs
    the tests: PATH is the system directories (plus the empty ``root``), ``CVMFS_MOUNT_DIR`` the
    empty ``root``, every other runtime input of ``RUNTIME_ENV_KEYS`` blank, GPU detection off
    (``NO_GPU_DETECTION``). A real ``/usr/bin/apptainer`` may still be proposed, but no image
    exists to prove it with."""
    root.mkdir(parents=True, exist_ok=True)
    return FakeBin(root, root.parent / f"{root.name}.log").env(CVMFS_MOUNT_DIR=str(root))


def report_table(text: str, title: str) -> list[list[str]]:
    """The rows of the indented table under the first line starting with ``title`` in a
    ``glidein-plugins run`` report, header row skipped, cells split on runs of 2+ spaces."""
    lines = text.splitlines()
    start = next(number for number, line in enumerate(lines) if line.startswith(title)) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


# ---------------------------------------------------------------------------------------------
# The job wrapper (hooks/glidein_plugins_wrapper.sh) run as HTCondor runs a USER_JOB_WRAPPER
# ---------------------------------------------------------------------------------------------

import json  # noqa: E402

WRAPPER = ROOT / "hooks" / "glidein_plugins_wrapper.sh"
# In front of the fake runtime (which runs the command on the host): what a real runtime does
# with the environment. APPTAINERENV_X/SINGULARITYENV_X become X (APPTAINERENV_ winning) and are
# not passed themselves; --cleanenv (-e, -C, --containall) starts from an empty environment,
# but for PATH and the fake's FAKE_* settings (the fake must still run; a real runtime sets
# the image's PATH). Then the fake (``NAME.fake``) logs the call and runs the command. The
# shim logs its argv too, exactly (JSON lines in $RUNTIME_ARGV_LOG; the fake's TAB-separated log
# cannot hold a TAB, a newline or bytes that are not UTF-8): ``runtime_calls`` reads it.
_ENV_SHIM = '''#!{python} -S
import json, os, sys
VALUE_OPTIONS = {value_options}
PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")
args = sys.argv[1:]
env = dict(os.environ)
if env.get("RUNTIME_ARGV_LOG"):
    with open(env["RUNTIME_ARGV_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
if "exec" in args:
    index, clean = args.index("exec") + 1, False
    while index < len(args) and args[index].startswith("-"):
        option = args[index].split("=", 1)[0]
        clean = clean or option in ("-e", "--cleanenv", "-C", "--containall")
        index += 2 if option in VALUE_OPTIONS and "=" not in args[index] else 1
    inside = {{name: value for name, value in env.items() if not name.startswith(PREFIXES)
              and (not clean or name == "PATH" or name.startswith("FAKE_"))}}
    for prefix in reversed(PREFIXES):
        inside.update((name[len(prefix):], value) for name, value in env.items()
                      if name.startswith(prefix) and len(name) > len(prefix))
    env = inside
def raw(text):  # back to bytes (PyPy 3.9 in the C locale cannot fsencode what it decoded)
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
fake = sys.argv[0] + ".fake"
os.execve(fake, [raw(arg) for arg in (fake, *args)],
          {{raw(name): raw(value) for name, value in env.items()}})
'''
_SHIM_VALUE_OPTIONS = ("-B", "--bind", "-H", "--home", "--pwd", "-S", "--scratch", "-W",
                       "--workdir", "--env", "--env-file", "-o", "--overlay", "--mount",
                       "--security", "--app")
# A job that prints what it sees, as JSON on stdout: its argv, cwd and environment.
_PRINTING_JOB = '''#!{python} -S
import json, os, sys
json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}, sys.stdout)
'''


def install_container_runtime(fake_bin: FakeBin, name: str = "apptainer", **config: Any) -> Path:
    """A fake runtime at ``fake_bin.dir/name`` that handles the environment as a real one does
    (see ``_ENV_SHIM``; ``config`` as for ``FakeBin.install_runtime``); the calls are logged
    as ``NAME.fake``. Returns the runtime's path."""
    fake_bin.install_runtime(f"{name}.fake", **config)
    return fake_bin.install_script(name, _ENV_SHIM.format(
        python=sys.executable, value_options=repr(set(_SHIM_VALUE_OPTIONS))))


def runtime_calls(log: Path) -> list[list[str]]:
    """Every call of a runtime installed by ``install_container_runtime`` (argv after the
    binary), from the ``RUNTIME_ARGV_LOG`` file ``log``."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def install_printing_job(directory: Path) -> Path:
    """An executable job (outside the sandbox: the fake runtime does not bind it at /srv) that
    prints its argv, cwd and environment as JSON; read it with ``job_view``."""
    return FakeBin._write(directory / "print_job", _PRINTING_JOB.format(python=sys.executable))


def job_view(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """What the printing job saw (the last line of stdout)."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])


def write_ad(path: Path, attributes: dict[str, str]) -> Path:
    """An ad file as the starter writes ``_CONDOR_JOB_AD``: ``Name = expression`` lines
    (values are expression text: quote strings yourself, or use ``ad_string``)."""
    path.write_text("".join(f"{name} = {expr}\n" for name, expr in attributes.items()))
    return path


def ad_string(value: str) -> str:
    """A ClassAd string literal as the starter writes one (old syntax: ``\\"`` for ``"``)."""
    return '"' + value.replace('"', '\\"') + '"'


def run_wrapper(job: Sequence[str], sandbox: Path, env: dict[str, str],
                wrapper: Path = WRAPPER, shell: Sequence[str] = (),
                timeout: float = 60) -> subprocess.CompletedProcess:
    """``WRAPPER JOB ARGS...`` as the starter runs it: the sandbox as cwd, stdin closed, the
    script executed through its ``#!`` line (or by ``shell``, e.g. ``["busybox", "sh"]``);
    ``GLIDEIN_PLUGINS_PYTHON`` is this interpreter. Output is text (undecodable bytes
    escaped)."""
    environ = {"GLIDEIN_PLUGINS_PYTHON": sys.executable, "_CONDOR_SCRATCH_DIR": str(sandbox),
               **env}
    return subprocess.run([*shell, str(wrapper), *job], cwd=sandbox, env=environ,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          text=True, errors="surrogateescape")
