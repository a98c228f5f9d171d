"""``glidein-plugins pack``: the glidein tarball. Its contents and their normalisation, the
MANIFEST, reproducibility, the vendored pure-Python pluggy and PyYAML, and end to end: the
setup script run from the unpacked tarball, as glidein_startup.sh runs it, by a Python that has
nothing but the standard library (a bare venv), on a fake node with a working runtime."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    FakeCvmfs,
    clean_env,
    make_work_dir,
    run_cli,
    run_setup_script,
    unpack,
)

from glidein_plugins import __version__
from glidein_plugins.config import factory_config
from glidein_plugins.tarball import pack

TOP_LEVEL = {"glidein_plugins", "hooks", "factory_configs", "pluggy", "yaml", "licenses",
             "MANIFEST", "VERSION"}
HOOKS = ("glidein_plugins_setup.sh", "glidein_plugins_wrapper.sh", "glidein_plugins_periodic.sh")


def build(output: Path) -> tuple[Path, str]:
    proc = run_cli(["pack", "--output", str(output)], output.parent)
    assert proc.returncode == 0, proc.stderr
    return output / pack.tarball_name(), proc.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("pack") / "out")[0]


@pytest.fixture(scope="module")
def members(tarball: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return tar.getmembers()


@pytest.fixture(scope="module")
def unpacked(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack(tarball, tmp_path_factory.mktemp("unpacked"))


def test_building_twice_gives_identical_bytes_and_reports_the_size(tmp_path: Path,
                                                                   tarball: Path) -> None:
    again, out = build(tmp_path / "again")
    assert again.read_bytes() == tarball.read_bytes()
    size = tarball.stat().st_size
    assert f": {size} bytes" in out and "psutil is not included" in out
    assert 10_000 < size < 2_000_000
    assert tarball.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    assert not list((tmp_path / "again").glob(".*"))  # no temporary file left behind


def test_the_layout_is_one_flat_directory(members: list[tarfile.TarInfo]) -> None:
    names = [member.name for member in members]
    assert names == sorted(names)
    assert {name.split("/")[0] for name in names} == TOP_LEVEL
    assert {f"hooks/{hook}" for hook in HOOKS} <= set(names)
    assert {"glidein_plugins/__init__.py", "glidein_plugins/config/default_config.yaml",
            "glidein_plugins/builtin/__init__.py", "pluggy/__init__.py", "yaml/__init__.py",
            "factory_configs/example.yaml"} <= set(names)
    for name in names:
        assert not name.endswith(".so"), name
        assert name.endswith(".pyc") == ("__pycache__/" in name and ".py" in name), name
        if "__pycache__/" in name:  # the parsed YAML files, bytecode for this interpreter
            source = name.replace("__pycache__/", "")
            tag = f".{sys.implementation.cache_tag}.pyc"
            assert source.endswith((".yaml.json", tag)), name
            source = source[:-5] if name.endswith(".json") else source[:-len(tag)] + ".py"
            assert source in names, name
        assert not name.startswith(("/", "..")) and "/../" not in name, name
    assert not any(name.startswith(("psutil", "_yaml")) for name in names)


def test_every_entry_is_normalised(members: list[tarfile.TarInfo]) -> None:
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", ""), member
        assert member.mtime == pack.MTIME, member.name
        assert member.isdir() or member.isfile(), member.name
        executable = member.isdir() or member.name.startswith("hooks/")
        assert member.mode == (0o755 if executable else 0o644), member.name


def test_the_manifest_hashes_every_other_file_and_version_names_it(unpacked: Path) -> None:
    files = sorted(path.relative_to(unpacked).as_posix() for path in unpacked.rglob("*")
                   if path.is_file())
    manifest = {}
    for line in (unpacked / "MANIFEST").read_text().splitlines():
        digest, name = line.split("  ", 1)
        manifest[name] = digest
    assert sorted(manifest) == [name for name in files if name != "MANIFEST"]
    for name, digest in manifest.items():
        assert hashlib.sha256((unpacked / name).read_bytes()).hexdigest() == digest, name
    version = (unpacked / "VERSION").read_text().splitlines()
    assert version[0] == f"glidein_plugins {__version__}"
    assert {line.split()[0] for line in version[1:]} == {"pluggy", "PyYAML"}


def python_in(unpacked: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``python -I -S -c CODE UNPACKED``: no site-packages at all, only the standard library
    and what ``code`` puts on sys.path."""
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(unpacked)],
                          cwd=unpacked.parent, env=clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def test_the_vendored_packages_import_from_the_tarball_alone(unpacked: Path) -> None:
    """``-I -S``: no site-packages at all, so pluggy and yaml can only come from the tarball."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pluggy, yaml, glidein_plugins;"
            "print(pluggy.__file__); print(yaml.__file__); print(glidein_plugins.__file__);"
            "print(yaml.__with_libyaml__, yaml.safe_load('a: [1, 2]'))")
    proc = python_in(unpacked, code)
    assert proc.returncode == 0, proc.stderr
    *paths, last = proc.stdout.splitlines()
    assert all(Path(path).is_relative_to(unpacked) for path in paths), paths
    assert last == "False {'a': [1, 2]}"


def test_the_shipped_configurations_load_without_pyyaml(unpacked: Path) -> None:
    """Their parsed form is in the tarball: a glidein imports no YAML parser to read them."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
            "from glidein_plugins.config import factory_config;"
            "config = factory_config.load(sorted(Path(sys.argv[1], 'factory_configs')"
            ".glob('*.yaml')));"
            "print('yaml' in sys.modules, len(config.files), sorted(config.entries))")
    proc = python_in(unpacked, code)
    assert proc.returncode == 0, proc.stderr
    shipped = sorted((unpacked / "factory_configs").glob("*.yaml"))
    expected = factory_config.load(shipped)
    assert proc.stdout.split(" ", 2)[:2] == ["False", str(len(shipped) + 1)]
    assert proc.stdout.split(" ", 2)[2].strip() == str(sorted(expected.entries))


def test_the_shipped_bytecode_is_used_not_rewritten(unpacked: Path) -> None:
    """Checked against a hash of its source: valid after ``tar -m`` gave every file a new
    time; Python neither compiles the modules again nor writes a ``.pyc``."""
    def pycs() -> dict[str, bytes]:
        return {str(path): path.read_bytes() for path in unpacked.rglob("*.pyc")}

    shipped = pycs()
    assert len(shipped) > 80, "bytecode for every module"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import glidein_plugins.cli, "
            "glidein_plugins.builtin.probe, glidein_plugins.gpu.detect, yaml, pluggy")
    proc = python_in(unpacked, code)
    assert proc.returncode == 0, proc.stderr
    assert pycs() == shipped


def test_bytecode_for_another_interpreter_is_ignored_and_a_bad_one_refused(
        tmp_path: Path) -> None:
    contents = {"pkg/mod.py": b"VALUE = 42\n"}
    made = pack.bytecode(contents, [sys.executable])
    assert list(made) == [f"pkg/__pycache__/mod.{sys.implementation.cache_tag}.pyc"]
    with pytest.raises(pack.PackError, match="cannot compile with /nonexistent/python"):
        pack.bytecode(contents, ["/nonexistent/python"])
    with pytest.raises(pack.PackError, match="SyntaxError"):
        pack.bytecode({"pkg/bad.py": b"def (:\n"}, [sys.executable])


def test_the_manifest_checks_with_sha256sum(unpacked: Path) -> None:
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        pytest.skip("no sha256sum on this machine")
    proc = subprocess.run([sha256sum, "--check", "--strict", "--quiet", "MANIFEST"],
                          cwd=unpacked, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("layout", ["tarball", "glideinwms"])
def test_the_setup_script_runs_from_the_unpacked_tarball_alone(
        tmp_path: Path, tarball: Path, bare_python: str, fake_cvmfs: FakeCvmfs,
        layout: str) -> None:
    """``tarball``: unpacked into the (empty) work dir, run as ``hooks/glidein_plugins_setup.sh``.
    ``glideinwms``: as the factory-xml files deliver it: the tarball untarred into
    ``entry_X/glidein_plugins/``, the setup script shipped beside it as a file of its own."""
    work = tmp_path / "work"
    if layout == "tarball":
        unpack(tarball, work)
        script = "hooks/glidein_plugins_setup.sh"
    else:
        untarred = unpack(tarball, work / "entry_TEST_ENTRY" / "glidein_plugins")
        script = "entry_TEST_ENTRY/glidein_plugins_setup.sh"
        shutil.copy2(untarred / "hooks" / "glidein_plugins_setup.sh", work / script)
    make_work_dir(work, {"GLIDEIN_Singularity_Use": "PREFERRED"})
    binary = fake_cvmfs.bin.install_runtime("apptainer")
    proc, result = run_setup_script(work, script, bare_python, fake_cvmfs)
    assert f"using {bare_python} " in proc.stderr
    assert (result.metrics["use_singularity"], result.metrics["singularity_mode"]) == (
        "True", "PREFERRED")
    assert result.config["HAS_SINGULARITY"] == "True"
    assert result.config["SINGULARITY_PATH"] == str(binary)
    assert result.config["GWMS_SINGULARITY_STATUS"] == "PREFERRED"
    for name in ("HAS_SINGULARITY", "SINGULARITY_PATH", "GWMS_SINGULARITY_STATUS"):
        assert result.condor_vars[name].split()[1:] == ["C" if name == "HAS_SINGULARITY"
                                                        else "S", "-", "+", "N", "Y", "+"]
    package_dir = work if layout == "tarball" else work / "entry_TEST_ENTRY" / "glidein_plugins"
    assert result.config["GLIDEIN_PLUGINS_DIR"] == str(package_dir.resolve())


def _osg(cvmfs: FakeCvmfs) -> dict[str, object]:
    apptainer = cvmfs.bin.install_runtime("apptainer", directory=cvmfs.root.joinpath(
        "oasis.opensciencegrid.org", "mis", "apptainer", "current", "bin"))
    return {"SINGULARITY_PATH": str(apptainer), "OSG_SINGULARITY_PATH": str(apptainer),
            "OSG_CVMFS_APPTAINER": "True"}


def _cms(cvmfs: FakeCvmfs) -> dict[str, object]:
    cvmfs.bin.install_runtime("apptainer")
    for n in (9, 8, 7):
        cvmfs.add_image(f"singularity.opensciencegrid.org/cmssw/cms:rhel{n}")
    (cvmfs.root / "cms.cern.ch" / "SITECONF" / "T2_XX_Example").mkdir(parents=True)
    return {"GWMS_SINGULARITY_STATUS": "REQUIRED"}


def _atlas(cvmfs: FakeCvmfs) -> dict[str, object]:
    cvmfs.bin.install_runtime("apptainer")
    return {"ATLAS_CONTAINER_OK": "False"}  # the example's /scratch/atlas is not on this node


@pytest.mark.parametrize(("entry", "node", "platform"), [
    ("OSG_EXAMPLE_SITE_ce1", _osg, "osgvo-el9"),
    ("CMS_T2_XX_Example_ce1", _cms, "cmssw/cms:rhel9"),
    ("ATLAS_EXAMPLE_SITE_ce1", _atlas, "osgvo-el9"),
])
def test_the_shipped_vo_entries_run_from_the_tarball_alone(
        tmp_path: Path, tarball: Path, bare_python: str, fake_cvmfs: FakeCvmfs, entry: str,
        node: Callable[[FakeCvmfs], dict[str, object]], platform: str) -> None:
    """The osg, cms and atlas example entries of factory_configs/, as GlideinWMS delivers them
    (tarball untarred into entry_X/glidein_plugins/, the setup script beside it), run with a
    Python that has nothing but what the tarball carries."""
    work = tmp_path / "work"
    untarred = unpack(tarball, work / f"entry_{entry}" / "glidein_plugins")
    script = f"entry_{entry}/glidein_plugins_setup.sh"
    shutil.copy2(untarred / "hooks" / "glidein_plugins_setup.sh", work / script)
    make_work_dir(work, {"GLIDEIN_Entry_Name": entry, "GLIDEIN_Singularity_Use": "PREFERRED"})
    expected = node(fake_cvmfs)
    proc, result = run_setup_script(work, script, bare_python, fake_cvmfs)
    assert result.config["HAS_SINGULARITY"] == "True"
    assert platform in result.config["SINGULARITY_IMAGES_DICT"]
    for name, value in expected.items():
        assert result.config[name] == value, (name, proc.stdout)
        assert name in result.condor_vars
