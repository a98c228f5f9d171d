"""The reference VO plugins (``osg``, ``cms``, ``atlas``) on fake nodes: real ``glidein-plugins
setup`` and ``run --json`` processes with a fake CVMFS tree and fake runtimes, judged by the
result XML, glidein_config/condor_vars.lst (evaluated by HTCondor's parser) and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCvmfs, glidein_result, make_work_dir, run_cli, startd_values

OSG_APPTAINER = ("oasis.opensciencegrid.org", "mis", "apptainer", "current", "bin")


def config(tmp_path: Path, plugins: list[str], settings: dict[str, Any] | None = None) -> Path:
    """A factory config enabling ``plugins`` with ``settings`` (JSON is YAML)."""
    path = tmp_path / "vo.yaml"
    path.write_text("version: 1\ndefaults: " + json.dumps(
        {"plugins": {"enable": plugins}, "settings": settings or {}}) + "\n")
    return path


def report(cvmfs: FakeCvmfs, conf: Path, **env: str) -> dict[str, Any]:
    proc = run_cli(["run", "--json", "--config", str(conf)], conf.parent, cvmfs.env(**env))
    assert "Traceback" not in proc.stderr, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def attributes(result: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in result["attributes"]}


def osg_apptainer(cvmfs: FakeCvmfs, **behaviour: Any) -> Path:
    return cvmfs.bin.install_runtime("apptainer", directory=cvmfs.root.joinpath(*OSG_APPTAINER),
                                     **behaviour)


def cms_images(cvmfs: FakeCvmfs) -> dict[str, Path]:
    found = {}
    for n in (9, 8, 7):
        image = cvmfs.root / "singularity.opensciencegrid.org" / "cmssw" / f"cms:rhel{n}"
        for sub in ("srv", "cvmfs", "tmp"):
            (image / sub).mkdir(parents=True)
        found[f"rhel{n}"] = image
    return found


# -- osg ------------------------------------------------------------------------------------------


def test_osg_setup_publishes_osg_runtime_images_and_names(tmp_path, fake_cvmfs, classad2):
    apptainer = osg_apptainer(fake_cvmfs)
    fake_cvmfs.bin.install_runtime("apptainer")  # on PATH too: OSG's comes first
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    conf = config(tmp_path, ["osg"])
    proc = run_cli(["setup", "--config", str(conf), "glidein_config", "entry"], work,
                   fake_cvmfs.env())
    result = glidein_result(proc, work)
    assert result.status == "OK", result.detail
    values = startd_values(result, classad2)
    assert values["OSG_CVMFS_APPTAINER"] is True
    assert values["OSG_SINGULARITY_PATH"] == values["SINGULARITY_PATH"] == str(apptainer)
    assert values["OSG_SINGULARITY_VERSION"] == "1.3.4"
    assert values["SINGULARITY_IMAGES_DICT"] == fake_cvmfs.images_dict()
    for name in ("OSG_CVMFS_APPTAINER", "OSG_SINGULARITY_PATH", "OSG_SINGULARITY_VERSION"):
        assert name in result.condor_vars


def test_osg_fills_only_platforms_the_dict_leaves_out(tmp_path, fake_cvmfs):
    osg_apptainer(fake_cvmfs)
    own = tmp_path / "cvmfs" / "vo.example.org" / "el9"
    (own / "srv").mkdir(parents=True)
    result = report(fake_cvmfs, config(tmp_path, ["osg"]),
                    SINGULARITY_IMAGES_DICT=f"rhel9:{own}")
    images = {image["platform"]: (image["uri"], image["source"]) for image in result["images"]}
    assert images["rhel9"] == (str(own), "SINGULARITY_IMAGES_DICT")  # never overridden
    assert images["rhel8"] == (str(fake_cvmfs.images["rhel8"]), "OSG image")
    assert result["runtime"]["source"] == "OSG Apptainer in CVMFS"


def test_osg_without_its_apptainer_says_why_and_uses_another(tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer")
    result = report(fake_cvmfs, config(tmp_path, ["osg"]))
    rejected = {probe["path"]: probe for probe in result["rejected_runtimes"]}
    assert str(fake_cvmfs.root.joinpath(*OSG_APPTAINER, "apptainer")) in rejected
    values = attributes(result)
    assert values["OSG_CVMFS_APPTAINER"] == "False"
    assert str(fake_cvmfs.bin.dir / "apptainer") in values["OSG_CVMFS_APPTAINER_REASON"]


# -- cms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("site_exists", [True, False])
def test_cms_images_and_siteconf_bind(tmp_path, fake_cvmfs, site_exists):
    fake_cvmfs.bin.install_runtime("apptainer")
    images = cms_images(fake_cvmfs)
    siteconf = fake_cvmfs.root / "cms.cern.ch" / "SITECONF" / "T2_XX_Test"
    if site_exists:
        siteconf.mkdir(parents=True)
    result = report(fake_cvmfs, config(tmp_path, ["cms"]), CMS_LOCAL_SITE="T2_XX_Test")
    assert {image["platform"]: image["uri"] for image in result["images"]} == \
        {key: str(path) for key, path in images.items()}
    target = "/cvmfs/cms.cern.ch/SITECONF/local"
    kept = [bind for bind in result["binds"] if bind["destination"] == target]
    dropped = [bind for bind in result["rejected_binds"] if bind["destination"] == target]
    assert (kept if site_exists else dropped)[0]["source"] == str(siteconf)
    assert not (dropped if site_exists else kept)
    if not site_exists:
        assert "does not exist" in dropped[0]["reason"]


def test_cms_entry_config_is_required_mode(tmp_path):
    """The shipped cms.yaml makes its entry REQUIRED: a bare node fails, it is not skipped."""
    proc = run_cli(["run", "--json", "--config", str(Path("factory_configs/cms.yaml").resolve()),
                    "--entry", "CMS_T2_XX_Example_ce1"], tmp_path,
                   {"GLIDEIN_PLUGINS_DISABLE": "gpus"})
    assert json.loads(proc.stdout)["mode"]["factory"] == "REQUIRED"


# -- atlas ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fail", "ok"), [("", True), ("nounderlay", False)])
def test_atlas_vetoes_without_underlay(tmp_path, fake_cvmfs, classad2, fail, ok):
    fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    cache = tmp_path / "scratch-atlas"
    cache.mkdir()
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    conf = config(tmp_path, ["atlas"], {"atlas": {"cache_binds": [f"{cache}:/atlas-cache"]}})
    proc = run_cli(["setup", "--config", str(conf), "glidein_config", "entry"], work,
                   fake_cvmfs.env())
    result = glidein_result(proc, work)
    assert result.status == "OK", result.detail  # the node stays usable for others
    values = startd_values(result, classad2)
    assert values["HAS_SINGULARITY"] is True
    assert values["ATLAS_CONTAINER_OK"] is ok
    if ok:
        assert "ATLAS_CONTAINER_OK_REASON" not in values
    else:
        reason = values["ATLAS_CONTAINER_OK_REASON"]
        assert "underlay" in reason and str(fake_cvmfs.images["rhel9"]) in reason


def test_atlas_refuses_a_cache_that_is_a_file(tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer")
    cache = tmp_path / "cache-file"
    cache.write_text("")
    result = report(fake_cvmfs, config(tmp_path, ["atlas"], {
        "atlas": {"cache_binds": [f"{cache}:/atlas-cache"]}}))
    dropped = {bind["source"]: bind["reason"] for bind in result["rejected_binds"]}
    assert "not a directory" in dropped[str(cache)]
    values = attributes(result)
    assert values["ATLAS_CONTAINER_OK"] == "False"
    assert str(cache) in values["ATLAS_CONTAINER_OK_REASON"]


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("plugin", "settings", "key", "message"), [
    ("osg", {"priority": "first"}, "priority", "an integer"),
    ("osg", {"apptainer": "bin/apptainer"}, "apptainer", "absolute path"),
    ("osg", {"image": True}, "image", "unknown setting"),
    ("cms", {"images": "yes"}, "images", "true or false"),
    ("cms", {"siteconf_target": "local"}, "siteconf_target", "an absolute path"),
    ("atlas", {"cache_binds": "/a:/b"}, "cache_binds", "a list of strings"),
    ("atlas", {"cache_binds": ["a:/b"]}, "cache_binds", "absolute path"),
    ("atlas", {"timeout": 0}, "timeout", "positive number"),
])
def test_bad_settings_fail_naming_where(tmp_path, fake_cvmfs, plugin, settings, key, message):
    fake_cvmfs.bin.install_runtime("apptainer")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    conf = config(tmp_path, [plugin], {plugin: settings})
    proc = run_cli(["setup", "--config", str(conf), "glidein_config", "entry"], work,
                   fake_cvmfs.env())
    result = glidein_result(proc, work)
    assert (result.status, result.failure) == ("ERROR", "Config"), result.detail
    assert "vo.yaml:2" in result.detail and f"settings.{plugin}.{key}" in result.detail
    assert message in result.detail
