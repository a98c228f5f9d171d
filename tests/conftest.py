"""Shared fixtures: a GlideinWMS work dir, the CLI run as a real subprocess, HTCondor's parsers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent
IS_PYPY = platform.python_implementation() == "PyPy"


def make_work_dir(path: Path, values: Optional[Dict[str, str]] = None) -> Path:
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


def run_cli(args: Sequence[str], cwd: Path, env: Optional[Dict[str, str]] = None,
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
    import classad2 as module

    return module


@pytest.fixture
def htcondor2():
    """HTCondor's config bindings: skipped on PyPy only, required on CPython."""
    if IS_PYPY:
        pytest.skip("HTCondor's bindings have no PyPy build")
    import htcondor2 as module

    return module
