"""The operator's path, end to end, as the operator guide (docs/operator/deploy.md) tells it:
build the wheel, install it (and a VO plugin from its own distribution, found through its entry
point) into a fresh virtual environment with no source tree on ``sys.path``, ``check-config``,
``pack``, unpack into an empty directory, and run the setup hook there on Debian's ``pypy3``
(Python 3.9) as the node's only Python, then on the system ``python3``.

Runs in tox's ``operator`` environment (``-m operator``): it needs pypy3, and pip reaches the
package index for pluggy, PyYAML and psutil at the versions constraints.txt pins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    FakeCvmfs,
    clean_env,
    make_work_dir,
    run_cli,
    run_setup_script,
    unpack,
)

from glidein_plugins.tarball import pack

pytestmark = pytest.mark.operator

CONFIG = """\
version: 1
entries:
  SAMPLE_SITE_ce1:
    plugins:
      enable: [samplevo]
    settings:
      samplevo:
        site: Operator_Site
    attributes:
      GLIDEIN_SINGULARITY_REQUIRE: PREFERRED
"""
TIMEOUT = 600
IGNORED = shutil.ignore_patterns(".git", ".tox", "build", "dist", "*.egg-info", "__pycache__",
                                 ".hypothesis", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                 "venv")


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(part) for part in command], cwd=cwd, env=env or clean_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, f"{command}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def pypy3() -> str:
    found = shutil.which("pypy3")
    if found is None:  # .ci/run installs it; tox skips this environment without it
        pytest.fail("this test needs Debian's pypy3 (apt-get install pypy3)")
    return found


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheels built from a copy of the checkout, and a fresh venv with both installed."""
    tmp = tmp_path_factory.mktemp("operator")
    source = shutil.copytree(ROOT, tmp / "source", ignore=IGNORED)
    wheels = tmp / "wheels"
    for project in (source, source / "tests" / "plugins" / "sample_vo_dist"):
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--wheel-dir", wheels, project, cwd=tmp)
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp)
    python = venv / "bin" / "python"
    # the operator's install: every dependency from the index, pinned (PIP_CONSTRAINT)
    run(python, "-m", "pip", "install", "--quiet", *sorted(wheels.glob("*.whl")), cwd=tmp,
        env=clean_env(PIP_CONSTRAINT=str(ROOT / "constraints.txt")))
    configs = tmp / "configs"
    configs.mkdir()
    (configs / "sample.yaml").write_text(CONFIG)
    return {"tmp": tmp, "venv": venv, "python": python, "configs": configs}


@pytest.fixture(scope="module")
def tarball(operator: dict[str, Path], pypy3: str) -> Path:
    """``glidein-plugins pack`` run from the venv, in an empty directory."""
    empty = operator["tmp"] / "empty"
    empty.mkdir()
    where = run(operator["python"], "-c", "import glidein_plugins; print(glidein_plugins.__file__)",
                cwd=empty)
    assert where.startswith(str(operator["venv"])), where  # no source tree on sys.path
    tool = operator["venv"] / "bin" / "glidein-plugins"
    run(tool, "check-config", operator["configs"] / "sample.yaml", cwd=empty)
    out = run(tool, "pack", "--output", operator["tmp"] / "out", "--factory-configs",
              operator["configs"], "--bytecode-for", pypy3, "--bytecode-for",
              operator["python"], cwd=empty)
    assert "glidein-plugins-sample-vo 0.3.1" in out and "vendored: pluggy" in out
    return operator["tmp"] / "out" / pack.tarball_name()


def test_the_wheel_install_packs_the_same_bytes_as_the_checkout(
        tmp_path: Path, operator: dict[str, Path], tarball: Path, pypy3: str,
        installed: dict[str, Path]) -> None:
    proc = run_cli(["pack", "--output", str(tmp_path), "--factory-configs",
                    str(operator["configs"]), "--bytecode-for", pypy3, "--bytecode-for",
                    str(operator["python"])], tmp_path,
                   {"PYTHONPATH": os.pathsep.join([str(ROOT), str(installed["sample_vo_dist"])])})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / pack.tarball_name()).read_bytes() == tarball.read_bytes()


@pytest.mark.parametrize("node_python", ["pypy3", "/usr/bin/python3"])
def test_the_tarball_runs_the_setup_and_the_vo_plugin_on_the_node(
        tmp_path: Path, tarball: Path, fake_cvmfs: FakeCvmfs, node_python: str) -> None:
    python = shutil.which(node_python)
    if python is None:
        pytest.fail(f"no {node_python} on this machine")
    only = tmp_path / "node-bin" / "python3"  # the node's only python3
    only.parent.mkdir()
    only.symlink_to(python)
    work = unpack(tarball, tmp_path / "work")
    make_work_dir(work, {"GLIDEIN_Entry_Name": "SAMPLE_SITE_ce1",
                         "GLIDEIN_Singularity_Use": "PREFERRED"})
    fake_cvmfs.bin.install_runtime("apptainer")
    image = fake_cvmfs.add_image("sample-vo.example.org/images/el9")  # the plugin's image
    proc, result = run_setup_script(work, "hooks/glidein_plugins_setup.sh", str(only),
                                    fake_cvmfs)
    version = "3.9." if node_python == "pypy3" else "3."
    assert f"using {only} (Python {version}" in proc.stderr, proc.stderr
    assert result.status == "OK", result.detail
    assert result.config["HAS_SINGULARITY"] == "True"
    assert result.config["SAMPLEVO_SITE"] == "Operator_Site"
    assert result.config["SAMPLEVO_READY"] == "True"
    assert str(image) in result.config["SINGULARITY_IMAGES_DICT"]
    assert "SAMPLEVO_SITE" in result.condor_vars
