"""vendor.lock: what the tarball ships of pluggy and PyYAML, byte for byte, wherever ``pack``
finds it (this Python's installed distributions, or wheels and sdists in ``--vendor-from``),
and the pins that make the tests run what ships."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT

from glidein_plugins.tarball import vendor

LOCKED = {dist.name: dist for dist in vendor.read_lock()}


def installed_files(name: str) -> dict[str, bytes]:
    """The installed distribution's files under their path in site-packages."""
    dist = metadata.distribution(name)
    return {item.as_posix(): Path(str(item.locate())).read_bytes() for item in dist.files or ()
            if not item.as_posix().startswith("..") and "__pycache__" not in item.as_posix()}


def make_wheel(directory: Path, name: str, change: str = "") -> Path:
    """A wheel of the installed ``name`` as pip would download it (``change``: one file whose
    bytes are altered)."""
    dist = LOCKED[name]
    path = directory / f"{name.lower()}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in installed_files(name).items():
            archive.writestr(member, data + (b"#" if member == change else b""))
    return path


def make_sdist(directory: Path, name: str) -> Path:
    """An sdist of the installed ``name``: ``NAME-VERSION/{lib,src}/MODULE`` and LICENSE."""
    dist = LOCKED[name]
    top = f"{name.lower()}-{dist.version}"
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in installed_files(name).items():
            if ".dist-info/" in member:
                if not re.search("LICEN[CS]E", member):
                    continue
                member = member.rsplit("/", 1)[1]
            else:
                member = f"lib/{member}"
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_lock_pins_pluggy_and_pyyaml_with_every_shipped_file_hashed() -> None:
    assert set(LOCKED) == {"pluggy", "PyYAML"}
    for dist in LOCKED.values():
        assert re.fullmatch(r"\d+(\.\d+)+", dist.version), dist
        assert f"{dist.module}/__init__.py" in dist.files
        assert any(name.startswith(f"licenses/{dist.name}-") for name in dist.files)
        assert not [name for name in dist.files if name.endswith((".so", ".pyd"))]


def test_the_lock_text_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "vendor.lock"
    path.write_text(vendor.format_lock(LOCKED.values(), "a header\nof two lines"))
    assert vendor.read_lock(path) == list(LOCKED.values())
    assert path.read_text() == vendor.format_lock(vendor.read_lock(path), "a header\nof two lines")
    assert vendor.LOCK.read_text().count("\n") == path.read_text().count("\n") + 1


@pytest.mark.parametrize("line", ["pluggy 1.6.0", "    abc  pluggy/__init__.py",
                                  "six 1.16.0 MIT"])
def test_a_malformed_lock_names_its_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "vendor.lock"
    path.write_text(f"# header\n{line}\n")
    with pytest.raises(vendor.VendorError, match=rf"^{re.escape(str(path))}:2: "):
        vendor.read_lock(path)


def test_the_tests_run_the_versions_that_ship() -> None:
    """tox installs through constraints.txt: what is tested is what the tarball ships."""
    for dist in LOCKED.values():
        assert metadata.version(dist.name) == dist.version, dist.name


@pytest.mark.parametrize("name", ["pluggy", "PyYAML"])
def test_the_installed_distribution_is_used_when_it_matches(name: str) -> None:
    files = vendor.files(LOCKED[name])
    assert set(files) == set(LOCKED[name].files)
    for path, data in files.items():
        assert hashlib.sha256(data).hexdigest() == LOCKED[name].files[path]


@pytest.fixture
def other_version_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if this Python had other versions of pluggy and PyYAML installed."""
    monkeypatch.setattr(vendor, "_installed",
                        lambda locked: (f"this Python has {locked.name} 0.0.1", None))


@pytest.mark.parametrize("make", [make_wheel, make_sdist])
@pytest.mark.parametrize("name", ["pluggy", "PyYAML"])
def test_a_wheel_or_sdist_gives_the_same_bytes_when_another_version_is_installed(
        tmp_path: Path, name: str, make) -> None:
    expected = vendor.files(LOCKED[name])  # from the installed distribution
    make(tmp_path, name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vendor, "_installed",
                      lambda locked: (f"this Python has {locked.name} 0.0.1", None))
        assert vendor.files(LOCKED[name], [tmp_path]) == expected
        (tmp_path / "empty").mkdir()
        with pytest.raises(vendor.VendorError, match=(
                rf"^{name} {LOCKED[name].version} \(vendor.lock\): this Python has {name} "
                rf"0.0.1; no wheel or sdist of it in {re.escape(str(tmp_path / 'empty'))}$")):
            vendor.files(LOCKED[name], [tmp_path / "empty"])
        with pytest.raises(vendor.VendorError, match=f"{tmp_path / 'none'}: not a directory"):
            vendor.files(LOCKED[name], [tmp_path / "none"])


def test_an_archive_with_other_bytes_is_refused_naming_the_file(
        tmp_path: Path, other_version_installed: None) -> None:
    wheel = make_wheel(tmp_path, "pluggy", change="pluggy/_hooks.py")
    (tmp_path / "pluggy-1.6.0.tar.gz").write_bytes(b"not gzip")
    (tmp_path / "pluggy-0.9-py3-none-any.whl").write_bytes(b"another version: not looked at")
    with pytest.raises(vendor.VendorError) as caught:
        vendor.files(LOCKED["pluggy"], [tmp_path])
    assert str(caught.value) == (
        f"pluggy {LOCKED['pluggy'].version} (vendor.lock): this Python has pluggy 0.0.1; "
        f"{wheel} differs from the lock in pluggy/_hooks.py; "
        f"{tmp_path / 'pluggy-1.6.0.tar.gz'}: not a readable wheel or sdist")


def test_the_fetch_command_names_every_locked_version() -> None:
    command = vendor.fetch_command(LOCKED.values())
    assert command == ("python3 -m pip download --no-deps --dest DIR "
                       f"'pluggy=={LOCKED['pluggy'].version}' "
                       f"'PyYAML=={LOCKED['PyYAML'].version}'")


def test_constraints_pin_every_package_and_the_shipped_versions() -> None:
    text = (ROOT / "constraints.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+?)(;.*)?$", text, re.MULTILINE)
    assert pins and all(not line or line.startswith("#") or "==" in line
                        for line in text.splitlines())
    found = {name: version for name, version, marker in pins if not marker}
    for dist in LOCKED.values():
        assert found[dist.name] == dist.version
    for name in ("tox", "pytest", "hypothesis", "ruff", "mypy", "setuptools", "virtualenv"):
        assert any(pin[0] == name for pin in pins), name


def test_tox_and_the_test_command_install_through_the_constraints() -> None:
    tox = (ROOT / "tox.ini").read_text()
    assert tox.count("PIP_CONSTRAINT = {tox_root}{/}constraints.txt") == 2  # [testenv], .pkg
    assert not re.search(r"^\s+[A-Za-z].*[<>=]=", tox.split("[testenv:lint]")[0], re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m pip install -c constraints.txt tox && python3 -m tox" in readme


def test_setup_cfg_lists_every_package_of_the_wheel() -> None:
    """setup.cfg names the packages one by one (hooks/ and factory_configs/ are mapped into
    the wheel): a new package folder must be added there, or it would not be installed."""
    text = (ROOT / "setup.cfg").read_text()
    listed = set(re.findall(r"^    (glidein_plugins[\w.]*)$", text, re.MULTILINE))
    found = {".".join(path.parent.relative_to(ROOT).parts)
             for path in (ROOT / "glidein_plugins").rglob("__init__.py")}
    assert found <= listed
    assert listed - found == {"glidein_plugins._tarball.hooks",
                              "glidein_plugins._tarball.factory_configs"}


def test_an_install_gets_exactly_the_versions_that_ship() -> None:
    """install_requires pins the locked versions: `pip install .` (or the wheel) then `pack`
    works with no download, whatever the index serves that day."""
    text = (ROOT / "setup.cfg").read_text()
    requires = text.split("install_requires =")[1].split("\n\n")[0]
    for dist in LOCKED.values():
        assert re.search(rf"^\s+{re.escape(dist.requirement)}$", requires, re.MULTILINE), dist
