"""VO plugins in the tarball: ``pack`` ships every entry-point plugin an entry enables (its
distribution's files, METADATA and entry points, licence, VERSION line), refuses one that
cannot run on a worker node naming it and why, and the node runs the shipped plugin."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import FakeCvmfs, make_work_dir, run_cli, run_setup_script, unpack

from glidein_plugins.tarball import pack

SAMPLE = "glidein_plugins_sample_vo-0.3.1.dist-info"
CONFIG = """\
version: 1
entries:
  SAMPLE_ENTRY:
    plugins:
      enable: [samplevo]
    settings:
      samplevo:
        site: Shipped_Site
"""


def installed_dist(site: Path, name: str, module: str, *, files: dict[str, str] | None = None,
                   metadata: str = "", plugin: str = "") -> Path:
    """An installed distribution as pip leaves one in ``site``: its module, METADATA,
    entry_points.txt (plugin ``plugin``, default ``module``) and RECORD."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    written = {f"{module}/__init__.py": "VALUE = 1\n", **(files or {})}
    for path, text in written.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                                   f"License: MIT\n{metadata}")
    (info / "entry_points.txt").write_text(f"[glidein_plugins]\n{plugin or module} = {module}\n")
    record = [*written, f"{info.name}/METADATA", f"{info.name}/entry_points.txt",
              f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in record))
    return site


def pack_with(tmp_path: Path, config: str, *sites: Path) -> subprocess.CompletedProcess[str]:
    configs = tmp_path / "configs"
    configs.mkdir(exist_ok=True)
    (configs / "entries.yaml").write_text(config)
    return run_cli(["pack", "--output", str(tmp_path / "out"), "--factory-configs",
                    str(configs)], tmp_path, {"PYTHONPATH": ":".join(map(str, sites))})


def entry_enabling(plugin: str, optional: bool = False) -> str:
    extra = f"\n      optional: [{plugin}]" if optional else ""
    return (f"version: 1\nentries:\n  E1:\n    plugins:\n      enable: [{plugin}]{extra}\n")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, installed: dict[str, Path]) -> Path:
    """The tarball packed with the sample VO distribution installed and enabled."""
    tmp = tmp_path_factory.mktemp("pack_vo")
    proc = pack_with(tmp, CONFIG, installed["sample_vo_dist"])
    assert proc.returncode == 0, proc.stderr
    assert "glidein-plugins-sample-vo 0.3.1" in proc.stdout
    return tmp / "out" / pack.tarball_name()


def test_an_enabled_entry_point_plugin_ships_with_its_metadata(shipped: Path) -> None:
    with tarfile.open(shipped) as tar:
        names = set(tar.getnames())
        version = tar.extractfile("VERSION").read().decode().splitlines()  # type: ignore[union-attr]
        manifest = tar.extractfile("MANIFEST").read().decode()  # type: ignore[union-attr]
    assert {"glidein_plugins_samplevo/__init__.py", f"{SAMPLE}/METADATA",
            f"{SAMPLE}/entry_points.txt", "factory_configs/entries.yaml"} <= names
    assert not [name for name in names if name.startswith(f"{SAMPLE}/") and
                name.rsplit("/", 1)[1] not in ("METADATA", "entry_points.txt")]
    assert "factory_configs/example.yaml" not in names  # --factory-configs replaces ours
    assert "glidein-plugins-sample-vo 0.3.1 unknown plugins=samplevo" in version
    assert "  glidein_plugins_samplevo/__init__.py\n" in manifest
    assert f"  {SAMPLE}/entry_points.txt\n" in manifest


def test_the_shipped_plugin_runs_on_the_node(tmp_path: Path, shipped: Path, bare_python: str,
                                             fake_cvmfs: FakeCvmfs) -> None:
    """Unpacked and run by a Python that has nothing but the tarball: the entry point is
    found in the tarball's dist-info and the plugin publishes."""
    work = unpack(shipped, tmp_path / "work")
    make_work_dir(work, {"GLIDEIN_Entry_Name": "SAMPLE_ENTRY"})
    proc, result = run_setup_script(work, "hooks/glidein_plugins_setup.sh", bare_python,
                                    fake_cvmfs)
    assert result.status == "OK", (result.detail, proc.stdout)
    assert result.config["SAMPLEVO_SITE"] == "Shipped_Site"
    assert result.config["SAMPLEVO_READY"] == "False"


@pytest.mark.parametrize(("files", "metadata", "why"), [
    ({"vo_fast/_speed.cpython-311-x86_64-linux-gnu.so": "ELF"}, "",
     "has compiled code (vo_fast/_speed.cpython-311-x86_64-linux-gnu.so): only pure Python"),
    ({}, "Requires-Python: >=3.10\n", "needs Python 3.10 or newer"),
    ({}, "Requires-Dist: requests>=2\nRequires-Dist: pytest; extra == 'test'\n",
     "requires requests, which the tarball does not ship"),
    ({"hooks/__init__.py": ""}, "", "installs hooks, which would replace the tarball's own"),
])
def test_a_plugin_that_cannot_run_on_a_node_stops_pack_naming_it(
        tmp_path: Path, files: dict[str, str], metadata: str, why: str) -> None:
    site = installed_dist(tmp_path / "site", "vo-fast", "vo_fast", files=files,
                          metadata=metadata)
    proc = pack_with(tmp_path, entry_enabling("vo_fast"), site)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("glidein-plugins: error: pack: plugin vo_fast (")
    assert "entries.yaml:5" in proc.stderr and f"vo-fast 1.0 {why}" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # the same plugin marked optional: left out, with a note
    proc = pack_with(tmp_path, entry_enabling("vo_fast", optional=True), site)
    assert proc.returncode == 0, proc.stderr
    assert f"note: plugin vo_fast: vo-fast 1.0 {why}" in proc.stdout
    with tarfile.open(tmp_path / "out" / pack.tarball_name()) as tar:
        assert not [name for name in tar.getnames() if name.startswith("vo_fast")]


def test_an_enabled_plugin_that_is_not_installed_stops_pack(tmp_path: Path) -> None:
    proc = pack_with(tmp_path, entry_enabling("nowhere"))
    assert proc.returncode == 1  # the configs are checked first, as check-config does
    assert "entries.yaml:5:16: entries.E1.plugins.enable: unknown plugin 'nowhere'" in \
        proc.stderr
    assert "nothing written" in proc.stderr and not (tmp_path / "out").exists()
    proc = pack_with(tmp_path, entry_enabling("nowhere", optional=True))
    assert proc.returncode == 0, proc.stderr
    assert "note: plugin nowhere (" in proc.stdout and "optional, left out" in proc.stdout


def test_a_plugin_optional_for_one_entry_but_enabled_by_another_must_ship(
        tmp_path: Path) -> None:
    config = entry_enabling("nowhere", optional=True) + "  E2:\n    plugins: {enable: [nowhere]}\n"
    assert pack_with(tmp_path, config).returncode == 1
