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
