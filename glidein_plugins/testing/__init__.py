"""The plugin-author kit: a pytest plugin with a fake worker node and the setup phases.

Installed with glidein_plugins, it is registered through the ``pytest11`` entry point (named
``glidein_plugins.testing``, so an explicit ``pytest_plugins = ["glidein_plugins.testing"]``
in a conftest.py is harmless), and gives every test these fixtures:

``fake_bin_dir``
    an empty bin dir for fakes (``FakeBin``): ``install_runtime(name, version=, mode=, fail=,
    delay=)`` puts a fake Apptainer/Singularity there, ``install_stat()`` a stale-mount
    ``stat``, ``env()`` is the environment to run against them, ``calls()`` what was run.
``fake_runtime``
    ``fake_bin_dir`` with a working unprivileged Apptainer installed as ``apptainer``.
``fake_cvmfs``
    a CVMFS tree with the OSG el7/el8/el9 images (``FakeCvmfs``; ``add_image``,
    ``install_osg_binary``, ``images_dict``, ``env``).
``work_dir``
    a glidein work dir (``make_work_dir``): glidein_config and condor_vars.lst.
``make_ad``
    ``make_ad("job", {"RequestGPUs": 1, "SingularityImage": "/cvmfs/..."})`` writes an ad
    file in HTCondor's long format and returns its path (``write_job_ad``).
``run_phases``
    ``run_phases(plugin, glidein_config=..., environ=..., settings=...)`` runs every setup
    phase in-process with the plugin under test enabled (a module, a ``.py`` file or site
    directory, or an entry-point name) and returns the ``SetupReport``.

The functions and classes behind them are importable from here for use outside fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from glidein_plugins.testing.glidein import (
    AdValue,
    Expr,
    ad_literal,
    ad_string,
    gconfig_values,
    make_work_dir,
    write_ad,
    write_job_ad,
)
from glidein_plugins.testing.node import (
    FAKES,
    NO_GPU_DETECTION,
    RUNTIME_ENV_KEYS,
    SAFE_PATH,
    FakeBin,
    FakeCvmfs,
    bare_node_env,
    make_fake_bin,
    make_fake_cvmfs,
    write_executable,
)
from glidein_plugins.testing.phases import PluginLoadError, PluginSpec, bare_environ
from glidein_plugins.testing.phases import run_phases as run_phases_in

__all__ = [
    "FAKES", "NO_GPU_DETECTION", "RUNTIME_ENV_KEYS", "SAFE_PATH", "AdValue", "Expr", "FakeBin",
    "FakeCvmfs", "PluginLoadError", "PluginSpec", "ad_literal", "ad_string", "bare_environ",
    "bare_node_env", "fake_bin_dir", "fake_cvmfs", "fake_runtime", "gconfig_values",
    "make_ad", "make_fake_bin", "make_fake_cvmfs", "make_work_dir", "run_phases",
    "run_phases_in", "work_dir", "write_ad", "write_executable", "write_job_ad",
]


@pytest.fixture
def fake_bin_dir(tmp_path: Path) -> FakeBin:
    """An empty bin directory ``tmp_path/bin`` for fakes (see ``FakeBin``)."""
    return make_fake_bin(tmp_path)


@pytest.fixture
def fake_runtime(fake_bin_dir: FakeBin) -> FakeBin:
    """``fake_bin_dir`` with a working unprivileged Apptainer 1.3.4 installed as ``apptainer``
    (reinstall with ``install_runtime("apptainer", ...)`` to change it)."""
    fake_bin_dir.install_runtime("apptainer")
    return fake_bin_dir


@pytest.fixture
def fake_cvmfs(tmp_path: Path, fake_bin_dir: FakeBin) -> FakeCvmfs:
    """A fake CVMFS tree under ``tmp_path/cvmfs`` with the three OSG images (see ``FakeCvmfs``);
    its ``bin`` is the test's ``fake_bin_dir``."""
    return make_fake_cvmfs(tmp_path / "cvmfs", fake_bin_dir)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """A fresh glidein work dir ``tmp_path/glide_work`` (see ``make_work_dir``)."""
    return make_work_dir(tmp_path / "glide_work")


@pytest.fixture
def make_ad(tmp_path: Path) -> Callable[[str, Mapping[str, AdValue]], Path]:
    """``make_ad(kind, attributes)``: ``tmp_path/ads/KIND.ad`` written by ``write_job_ad``."""
    def make(kind: str, attributes: Mapping[str, AdValue]) -> Path:
        return write_job_ad(tmp_path / "ads" / f"{kind}.ad", attributes)

    return make


@pytest.fixture
def run_phases(work_dir: Path) -> Callable[..., Any]:
    """``run_phases(plugin, **options)``: ``glidein_plugins.testing.phases.run_phases`` in the
    test's ``work_dir`` (pass ``work_dir=`` to use another); returns the SetupReport."""
    def run(plugin: PluginSpec, **options: Any) -> Any:
        options.setdefault("work_dir", work_dir)
        return run_phases_in(plugin, **options)

    return run
