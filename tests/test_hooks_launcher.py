"""hooks/glidein_plugins_setup.sh run as glidein_startup.sh runs it: from an untarred package
directory, with the glidein work dir as cwd, a relative glidein_config, stdin from /dev/null,
and a PATH we control (real interpreters, or fake ones that are too old, broken or hung)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT, make_work_dir

HOOK = Path("hooks", "glidein_plugins_setup.sh")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\Z")
# what the hook itself needs from PATH (timeout is optional, used when present)
TOOLS = ("cat", "cut", "date", "mv", "rm", "sed", "sleep", "tail", "timeout", "tr")
VERSION_CHECK = "sys.version_info"  # a fake Python recognises the hook's version check by this


def make_package(dest: Path) -> Path:
    """The package as a factory ships it, untarred: DIR/{hooks,glidein_plugins,factory_configs}."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("glidein_plugins", "hooks", "factory_configs"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    # an entry of ours, to prove the hook hands its factory_configs directory to the package
    (dest / "factory_configs" / "zz_launcher_test.yaml").write_text(
        "version: 1\nentries:\n  TEST_ENTRY:\n    attributes:\n"
        "      GLIDEIN_SINGULARITY_REQUIRE: NEVER\n")
    return dest


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("untarred") / "glidein_plugins_pkg")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH directory holding only the tools the hook needs: no interpreter at all."""
    path = tmp_path / "bin"
    path.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (path / tool).symlink_to(found)
    return path


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def real_python(path: Path) -> Path:
    """``path`` runs this test's interpreter (a wrapper, so that a virtualenv stays one)."""
    return script(path, f'exec "{sys.executable}" "$@"\n')


def fake_python(path: Path, on_version_check: str, otherwise: str = "exit 0") -> Path:
    """A program named like a Python that answers the hook's version check with a shell snippet."""
    return script(path, f'case "$*" in\n  *{VERSION_CHECK}*) {on_version_check} ;;\nesac\n'
                        f"{otherwise}\n")


def run_hook(package: Path, work: Path, bin_dir: Path, shell: str | None = None,
             env: dict[str, str] | None = None,
             script_id: str = "entry") -> subprocess.CompletedProcess:
    """``[SHELL] HOOK glidein_config ID </dev/null`` in ``work``, PATH = ``bin_dir`` only."""
    environ = {"PATH": str(bin_dir), "GLIDEIN_PLUGINS_PYTHON_TIMEOUT": "2", **(env or {})}
    argv = [str(package / HOOK), "glidein_config", script_id]
    if shell:
        program, *args = shell.split()
        argv = [shutil.which(program) or program, *args, *argv]
    return subprocess.run(argv, cwd=work, env=environ, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=90)


def result_xml(work: Path) -> ET.Element:
    """The parsed otrb_output.xml, after the checks GlideinWMS' error_augment.sh makes."""
    text = (work / "otrb_output.xml").read_text()
    lines = text.splitlines()
    assert lines[0] == '<?xml version="1.0"?>'
    assert any(line.startswith("<OSGTestResult ") for line in lines[:4])
    assert any("<result>" in line for line in lines[:8])
    assert any("</OSGTestResult>" in line for line in lines[-4:])
    root = ET.fromstring(text)
    assert root.tag == "OSGTestResult"
    assert root.get("version") == "4.3.1"
    for metric in root.iter("metric"):
        assert TIMESTAMP.match(metric.get("ts", "")), metric.get("ts")
    return root


def failure(root: ET.Element) -> tuple:
    """``(failure type, detail)`` of an ERROR result."""
    assert root.findtext("result/status") == "ERROR"
    metric = root.find("result/metric[@name='failure']")
    assert metric is not None
    return metric.text, " ".join((root.findtext("detail") or "").split())


def leftovers(work: Path) -> list:
    return sorted(p.name for p in work.iterdir() if p.name.startswith(".glidein_plugins_setup"))


SHELLS = [None, "dash", "busybox sh", "bash"]


@pytest.mark.parametrize("shell", SHELLS, ids=["shebang", "dash", "busybox", "bash"])
def test_python3_on_path_runs_setup_and_publishes(package: Path, bin_dir: Path, tmp_path: Path,
                                                    shell: str | None) -> None:
    if shell and not shutil.which(shell.split()[0]):
        pytest.skip(f"{shell} is not installed")
    real_python(bin_dir / "python3")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    # neither PYTHONPATH (-E) nor a module in the work dir may shadow the package's imports
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for where in (shadow, work):
        (where / "pluggy.py").write_text("raise ImportError('shadowed')\n")
    proc = run_hook(package, work, bin_dir, shell, {"PYTHONPATH": str(shadow)},
                    script_id="main")
    assert proc.returncode == 0, proc.stderr
    root = result_xml(work)
    assert root.get("id") == "main"
    assert root.findtext("result/status") == "OK"
    assert f"using {bin_dir / 'python3'} (Python 3." in proc.stderr
    # the entry's YAML from the package's factory_configs made the Factory side NEVER
    config = (work / "glidein_config").read_text().splitlines()
    assert "GWMS_SINGULARITY_STATUS NEVER" in config
    assert "HAS_SINGULARITY False" in config
    names = [line.split()[0] for line in (work / "condor_vars.lst").read_text().splitlines()
             if line and not line.startswith("#")]
    assert {"HAS_SINGULARITY", "GWMS_SINGULARITY_STATUS"} <= set(names)
    assert leftovers(work) == []


@pytest.mark.parametrize("chosen", ["env", "fallback"])
def test_glidein_plugins_python_is_tried_first(package: Path, bin_dir: Path, tmp_path: Path,
                                               chosen: str) -> None:
    """GLIDEIN_PLUGINS_PYTHON wins over PATH; when unusable, the search goes on and says why."""
    work = make_work_dir(tmp_path / "work")
    fake_python(bin_dir / "python3", "printf 3.12.1; exit 0", "exit 99")  # must not be used
    wanted = str(tmp_path / "no" / "such" / "python") if chosen == "fallback" else sys.executable
    if chosen == "fallback":
        real_python(bin_dir / "python3")
    proc = run_hook(package, work, bin_dir, env={"GLIDEIN_PLUGINS_PYTHON": wanted})
    assert proc.returncode == 0, proc.stderr
    assert result_xml(work).findtext("result/status") == "OK"
    if chosen == "env":
        assert f"using {sys.executable} (Python 3." in proc.stderr
    else:
        assert f"{wanted}: not an executable file" in proc.stderr
        assert f"using {bin_dir / 'python3'} (Python 3." in proc.stderr


def test_no_usable_python_reports_wn_resource(package: Path, bin_dir: Path,
                                              tmp_path: Path) -> None:
    """Too old, broken, hung and missing interpreters: a WN_Resource failure naming each."""
    fake_python(bin_dir / "python3", "printf 2.7.18; exit 1")
    fake_python(bin_dir / "python", "exit 1")
    fake_python(bin_dir / "python3.9", "exec sleep 300")
    fake_python(bin_dir / "python3.12", "printf 3.12.0; exit 0", "exit 0")
    (bin_dir / "python3.12").chmod(0o644)  # not executable: not found in PATH
    work = make_work_dir(tmp_path / "work")
    (work / "otrb_output.xml").write_text("stale\n")
    odd = str(tmp_path / "a<b>&c" / "python")
    proc = run_hook(package, work, bin_dir, env={
        "GLIDEIN_PLUGINS_PYTHON": odd,
        "GLIDEIN_PLUGINS_PYTHON_CANDIDATES": "python3 python3.12 python3.9 python "
                                             f"{tmp_path}/platform-python",
    })
    assert proc.returncode == 1, proc.stderr
    kind, detail = failure(result_xml(work))
    assert kind == "WN_Resource"
    for expected in (
        "needs Python 3.9 or newer",
        f"{odd}: not an executable file",  # &, <, > came through the XML intact
        f"{bin_dir}/python3: Python 2.7.18 is older than 3.9",
        "python3.12: not found in PATH",
        f"{bin_dir}/python3.9: version check timed out after 2 s",
        f"{bin_dir}/python: not a usable Python",
        f"{tmp_path}/platform-python: not an executable file",
    ):
        assert expected in detail, detail
    assert leftovers(work) == []


@pytest.mark.parametrize(("body", "kind", "words"), [
    ('echo "crashed early" >&2; exit 7', "Corruption", ("exited with code 7", "crashed early")),
    ("exit 0", "Corruption", ("exited with code 0 without writing",)),
], ids=["crash", "silent"])
def test_python_that_writes_no_xml_is_reported(package: Path, bin_dir: Path, tmp_path: Path,
                                               body: str, kind: str, words: tuple) -> None:
    """A stale XML is removed first; a run that leaves none gets a failure XML, never an OK."""
    fake_python(bin_dir / "python3", "printf 3.11.4; exit 0", body)
    work = make_work_dir(tmp_path / "work")
    (work / "otrb_output.xml").write_text(
        '<?xml version="1.0"?>\n<OSGTestResult id="entry" version="4.3.1">\n  <result>\n'
        "    <status>OK</status>\n  </result>\n</OSGTestResult>\n")
    proc = run_hook(package, work, bin_dir)
    assert proc.returncode == 1
    found, detail = failure(result_xml(work))
    assert found == kind
    for word in words:
        assert word in detail, detail


def test_missing_dependency_is_a_wn_resource_failure(bin_dir: Path, tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    (package / "pluggy.py").write_text("raise ImportError('no pluggy on this node')\n")
    real_python(bin_dir / "python3")
    work = make_work_dir(tmp_path / "work")
    proc = run_hook(package, work, bin_dir)
    assert proc.returncode == 1
    kind, detail = failure(result_xml(work))
    assert kind == "WN_Resource"
    assert "no pluggy on this node" in detail
    assert f"{bin_dir / 'python3'} (Python 3." in detail


def test_hook_is_posix_sh() -> None:
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            proc = subprocess.run([shell, "-n", str(ROOT / HOOK)], capture_output=True,
                                  text=True, timeout=30)
            assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):  # optional: catches bashisms and quoting slips
        proc = subprocess.run(["shellcheck", "-s", "sh", str(ROOT / HOOK)], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout
    text = (ROOT / HOOK).read_text()
    assert text.startswith("#!/bin/sh\n")
    assert not re.search(r"^\s*eval\b|\beval\s", text, re.MULTILINE)
    assert os.access(ROOT / HOOK, os.X_OK)
