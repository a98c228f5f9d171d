"""``glidein-plugins factory-xml --entry NAME``: the entry's ``<attrs>`` and ``<files>`` for
glideinWMS.xml, parsed with xml.etree, with GlideinWMS's attribute names, naming files that
exist once the factory has packed and unpacked the tarball where the XML says."""

from __future__ import annotations

import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from glidein_plugins.tarball import pack

UNTAR = {"cond_attr": "GLIDEIN_PLUGINS_ENABLED", "dir": "glidein_plugins",
         "absdir_outattr": "GLIDEIN_PLUGINS_DIR"}
EXAMPLE = ROOT / "factory_configs" / "example.yaml"


@pytest.fixture(scope="module")
def factory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A factory's directory: the tarball packed there, and unpacked in ``glidein_plugins/``."""
    directory = tmp_path_factory.mktemp("factory")
    proc = run_cli(["pack", "--output", str(directory)], directory)
    assert proc.returncode == 0, proc.stderr
    (directory / "glidein_plugins").mkdir()
    subprocess.run(["tar", "-xzf", str(directory / pack.tarball_name()), "-C",
                    str(directory / "glidein_plugins")], check=True, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=60)
    return directory


def entry_xml(factory_dir: Path, entry: str, *args: str) -> ET.Element:
    proc = run_cli(["factory-xml", "--entry", entry, "--factory-dir", str(factory_dir),
                    "--config", str(EXAMPLE), *args], factory_dir)
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(f"<entry name='{entry}'>{proc.stdout}</entry>")
    assert [child.tag for child in root] == ["attrs", "files"]
    return root


@pytest.mark.parametrize(("entry", "require"), [
    ("EXAMPLE_SITE_ce1_containers", "REQUIRED"),
    ("EXAMPLE_SITE_ce2_preferred", "PREFERRED"),
    ("an_entry_without_a_section", "OPTIONAL"),  # the embedded defaults
])
def test_the_attrs_enable_the_plugins_and_pass_the_entry_settings_on(
        factory_dir: Path, entry: str, require: str) -> None:
    attrs = {attr.get("name"): attr.attrib for attr in entry_xml(factory_dir, entry).iter("attr")}
    assert attrs["GLIDEIN_PLUGINS_ENABLED"]["value"] == "1"
    assert attrs["GLIDEIN_PLUGINS_ENABLED"]["type"] == "int"
    assert attrs.get("GLIDEIN_SINGULARITY_REQUIRE", {}).get("value") == require
    for attr in attrs.values():
        assert attr["type"] in ("string", "int") and attr["const"] == "True"


def test_the_files_are_the_tarball_and_the_three_scripts_inside_it(factory_dir: Path) -> None:
    files = entry_xml(factory_dir, "EXAMPLE_SITE_ce1_containers").findall("files/file")
    tarball, setup, wrapper, periodic = files
    assert tarball.get("untar") == "True" and tarball.get("relfname") == pack.tarball_name()
    assert [options.attrib for options in tarball] == [UNTAR]
    assert (setup.get("executable"), setup.get("wrapper"), setup.get("period")) == (
        "True", "False", None)
    assert (wrapper.get("executable"), wrapper.get("wrapper")) == ("False", "True")
    assert (periodic.get("executable"), periodic.get("period"), periodic.get("prefix")) == (
        "True", "600", "NOPREFIX")
    with tarfile.open(tarball.get("absfname", "")) as tar:
        members = set(tar.getnames())
    unpacked = factory_dir / "glidein_plugins"
    for script, name in ((setup, "setup"), (wrapper, "wrapper"), (periodic, "periodic")):
        path = Path(script.get("absfname", ""))
        assert path.is_file() and path.name == f"glidein_plugins_{name}.sh"
        assert path.relative_to(unpacked).as_posix() in members
    for file in files:
        assert file.get("const") == "True" and Path(file.get("absfname", "")).is_absolute()


def test_a_tarball_path_can_be_given(factory_dir: Path) -> None:
    tarball = entry_xml(factory_dir, "x", "--tarball", "/srv/gp/gp-1.tar.gz").find("files/file")
    assert tarball is not None
    assert (tarball.get("absfname"), tarball.get("relfname")) == ("/srv/gp/gp-1.tar.gz",
                                                                  "gp-1.tar.gz")


def test_a_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nentries:\n  X:\n    budget_seconds: [1\n")
    proc = run_cli(["factory-xml", "--entry", "X", "--config", str(bad)], tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{bad}:" in proc.stderr and not proc.stdout
