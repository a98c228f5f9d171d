"""Shared fixtures: the CLI run as a real subprocess, HTCondor's parsers, what a run leaves.

The fake worker node (``work_dir``, ``fake_bin_dir``, ``fake_runtime``, ``fake_cvmfs``,
``make_ad``, ``run_phases``) comes from the plugin-author kit, ``glidein_plugins.testing``,
which pytest loads through its ``pytest11`` entry point; its helpers are re-exported here for
the tests that import them from conftest.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from glidein_plugins.testing import (  # noqa: F401 - re-exported for the tests
    FAKES,
    NO_GPU_DETECTION,
    RUNTIME_ENV_KEYS,
    SAFE_PATH,
    FakeBin,
    FakeCvmfs,
    ad_string,
    bare_node_env,
    gconfig_values,
    make_work_dir,
    write_ad,
    write_executable,
)

ROOT = Path(__file__).resolve().parent.parent
IS_PYPY = platform.python_implementation() == "PyPy"


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


def docs_hooks() -> ModuleType:
    """tools/docs_hooks.py, the MkDocs hooks that generate the site's pages (no mkdocs needed)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    try:
        rows = vars_path.read_text().splitlines() if vars_path.is_file() else []
    except OSError:  # a name too long to be a file, say: no rows
        rows = []
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
# A `glidein-plugins run` report (the fake node itself is the kit's: glidein_plugins.testing)
# ---------------------------------------------------------------------------------------------

from typing import Any  # noqa: E402


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
    return write_executable(directory / "print_job", _PRINTING_JOB.format(python=sys.executable))


def job_view(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """What the printing job saw (the last line of stdout)."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])


def run_wrapper(job: Sequence[str], sandbox: Path, env: dict[str, str],
                wrapper: Path = WRAPPER, shell: Sequence[str] = (),
                timeout: float = 60) -> subprocess.CompletedProcess:
    """``WRAPPER JOB ARGS...`` as the starter runs it: the sandbox as cwd, stdin closed, the
    script executed through its ``#!`` line (or by ``shell``, e.g. ``["busybox", "sh"]``).
    Output is text (undecodable bytes escaped)."""
    environ = {"GLIDEIN_PLUGINS_PYTHON": sys.executable, "_CONDOR_SCRATCH_DIR": str(sandbox),
               **env}
    return subprocess.run([*shell, str(wrapper), *job], cwd=sandbox, env=environ,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          text=True, errors="surrogateescape")


def _can_build_wheels() -> bool:
    """Whether pip can build a setuptools project offline without build isolation: setuptools
    70.1 and newer build wheels themselves, older ones need the ``wheel`` package."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version  # noqa: PLC0415

    major, minor = (int(part) for part in re.findall(r"\d+", version("setuptools"))[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The test VO plugin distributions (tests/plugins/*_dist), installed offline with
    ``pip install --target``: each one's copy (``NAME/src``) and its target directory."""
    if not _can_build_wheels():
        pytest.skip("this interpreter cannot build a wheel offline (setuptools < 70.1 "
                    "without the 'wheel' package)")
    root = tmp_path_factory.mktemp("third_party")
    found = {}
    for name in ("sample_vo_dist", "broken_vo_dist"):
        source = shutil.copytree(ROOT / "tests" / "plugins" / name, root / "src" / name,
                                 ignore=shutil.ignore_patterns("__pycache__", "build",
                                                               "*.egg-info"))
        target = root / "site" / name
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
             "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(target),
             str(source)],
            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found[name], found[f"{name}/src"] = target, Path(source)
    return found




def starter_view(work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """What HTCondor's starter makes of a glidein's ``condor_vars.lst``: the variables exported
    to the job's environment, and the attributes published in the machine ad (ClassAd text)."""
    config = gconfig_values(work / "glidein_config")
    exported, published = {}, {}
    for line in (work / "condor_vars.lst").read_text().splitlines():
        fields = line.split()
        if line.startswith("#") or len(fields) != 7 or not config.get(fields[0]):
            continue
        var, kind, _, condor_name, _, to_startd, job_env = fields
        condor_name = var if condor_name == "+" else condor_name
        if job_env != "-":
            exported[{"+": var, "@": condor_name}.get(job_env, job_env)] = config[var]
        if to_startd == "Y":
            published[condor_name] = ad_string(config[var]) if kind == "S" else config[var]
    return exported, published


# -- the glidein tarball, unpacked and run as on a node ------------------------------------

@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv without pip and without site packages: only the standard library."""
    venv = tmp_path_factory.mktemp("venv") / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    python = next(path for path in (venv / "bin" / "python3", venv / "bin" / "python")
                  if path.exists())
    for module in ("pluggy", "yaml", "glidein_plugins"):  # the premise of the tests using it
        proc = subprocess.run([str(python), "-c", f"import {module}"], cwd=venv, env=clean_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert proc.returncode != 0, f"{module} is importable outside the tarball"
    return str(python)


def clean_env(**values: str) -> dict[str, str]:
    """This environment without PYTHON* variables (the package must come from the tarball)."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environ.update(values)
    return environ


def unpack(tarball: Path, directory: Path) -> Path:
    """``tar -xmzf`` as GlideinWMS untars (into an existing, empty directory; ``-m``: every
    file gets the time of extraction, not the one in the tarball)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xmzf", str(tarball), "-C", str(directory)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return directory


def run_setup_script(work: Path, script: str, python: str, fake_cvmfs: FakeCvmfs
                     ) -> tuple[subprocess.CompletedProcess[str], GlideinResult]:
    """``SCRIPT glidein_config entry`` in ``work`` as glidein_startup.sh runs it, with
    ``python`` the only interpreter tried; it must succeed."""
    env = clean_env(**fake_cvmfs.env(GLIDEIN_PLUGINS_PYTHON=python,
                                     GLIDEIN_PLUGINS_PYTHON_CANDIDATES=""))
    proc = subprocess.run([script, "glidein_config", "entry"], cwd=work, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    result = glidein_result(proc, work)
    assert result.exit_code == 0, proc.stdout + proc.stderr
    return proc, result


# the installable sample distributions carry their own tests (run by test_third_party.py
# against their installed copy): never collected as part of this suite
collect_ignore = ["plugins/sample_vo_dist", "plugins/broken_vo_dist"]
