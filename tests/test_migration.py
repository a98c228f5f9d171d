"""Drop-in for GlideinWMS's ``singularity_setup.sh`` where matchmaking depends on it (issue 14),
end to end: ``glidein-plugins setup`` as a real process on a node with the kit's fake runtime
and fake CVMFS, judged by what glidein_config and condor_vars.lst leave in the machine ad.

* No usable image for the node's platforms, and an empty ``GLIDEIN_REQUIRED_OS`` ∩
  ``REQUIRED_OS``: as the reference, the runtime is proven with a test image and
  ``HAS_SINGULARITY=True`` advertised; ``SINGULARITY_IMAGE_REQUIRED`` and
  ``settings.images.require_platform_image`` opt into failing, naming what is missing.
* Test images in the reference's order, local and remote.
* Both scripts in one glidein, either order: ``tests/data/reference/singularity_advertise.sh``
  reproduces the reference's writes (see its header); whenever ours publishes last, the names
  both own form one consistent set.

What the reference itself does on the same nodes: ``test_reference_side_by_side.py``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import FakeCvmfs, GlideinResult, glidein_result, make_work_dir, run_cli

REFERENCE_STAND_IN = Path(__file__).parent / "data" / "reference" / "singularity_advertise.sh"
BUILTIN_TEST_IMAGE = "oras://ghcr.io/apptainer/alpine:latest"
PREFIXES = ("SINGULARITY_", "GWMS_SINGULARITY_", "CONTAINERSW_", "GWMS_CONTAINERSW_")
DETAILS = ("PATH", "VERSION", "FULL_VERSION", "MODE")


def setup(tmp_path: Path, env: dict[str, str], frontend: str = "PREFERRED",
          settings: dict[str, dict[str, object]] | None = None, work: Path | None = None,
          **values: str) -> GlideinResult:
    """Our setup on a glidein (``work``, else a new one with ``values``); ``settings`` per
    plugin go in a factory config."""
    if work is None:
        work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": frontend, **values})
    args = ["setup", "glidein_config", "entry"]
    if settings:
        config = tmp_path / "entry.yaml"
        config.write_text("version: 1\ndefaults:\n  settings:\n" + "".join(
            f"    {plugin}:\n" + "".join(f"      {key}: {json.dumps(value)}\n"
                                         for key, value in chosen.items())
            for plugin, chosen in settings.items()))
        args += ["--config", str(config)]
    return glidein_result(run_cli(args, work, env), work)


def machine_ad(result: GlideinResult) -> dict[str, str]:
    """What ``condor_startup.sh`` (``set_var``) makes of condor_vars.lst and glidein_config:
    an empty value without a default is left out, and fails the glidein if Required=Y."""
    ad = {}
    for name, row in result.condor_vars.items():
        _, _, default, condor_name, required, export, _ = row.split()
        value = result.config.get(name, "")
        if not value:
            assert required != "Y", f"condor_startup.sh would fail: {name} required, empty"
            if default == "-":
                continue
            value = default
        if export == "Y":
            ad[name if condor_name == "+" else condor_name] = value
    return ad


def assert_one_consistent_set(ad: dict[str, str]) -> None:
    """HAS_SINGULARITY True: every prefix says the same of the runtime, and GLIDEIN_PROVIDES
    names its mode once; False: no runtime detail and no singularity/ item at all."""
    provided = [item for item in ad.get("GLIDEIN_PROVIDES", "").split(",")
                if item.startswith("singularity/")]
    if ad.get("HAS_SINGULARITY") == "True":
        for detail in DETAILS:
            assert len({ad.get(prefix + detail) for prefix in PREFIXES}) == 1, (detail, ad)
        # the set, not the list: the reference appends its item again when it runs last
        assert set(provided) == {f"singularity/{ad['SINGULARITY_MODE']}"}, ad
        assert "HAS_SINGULARITY_REASON" not in ad
    else:
        assert ad.get("HAS_SINGULARITY") == "False", ad
        assert not [prefix + detail for prefix in PREFIXES for detail in DETAILS
                    if prefix + detail in ad], ad
        assert provided == [], ad
        assert not [name for name in ad if name.startswith(("SINGULARITY_CAN_",
                                                            "GLIDEIN_SINGULARITY_TEST"))]


def reference_advertises(work: Path, *args: str) -> None:
    subprocess.run([str(REFERENCE_STAND_IN), str(work / "glidein_config"), *args], check=True,
                   timeout=30)


# ---- no usable image for the node's platforms ---------------------------------------------------

def no_image_nodes(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> dict[str, dict[str, str]]:
    """glidein_config values (and CVMFS_MOUNT_DIR) giving no usable image, as in the issue."""
    empty_cvmfs = tmp_path / "empty-cvmfs"
    empty_cvmfs.mkdir(exist_ok=True)
    outside = tmp_path / "outside-cvmfs.sif"
    outside.write_text("sif")
    return {
        "dict unset, no CVMFS": {"CVMFS_MOUNT_DIR": str(empty_cvmfs)},
        "dict empty, no CVMFS": {"SINGULARITY_IMAGES_DICT": "",
                                 "CVMFS_MOUNT_DIR": str(empty_cvmfs)},
        "image missing": {"SINGULARITY_IMAGES_DICT": "rhel9:/cvmfs/nowhere/el9"},
        "refused: not in CVMFS": {"SINGULARITY_IMAGES_DICT": f"default:{outside}"},
        "refused: remote": {"SINGULARITY_IMAGES_DICT": "rhel9:docker://almalinux:9"},
        "legacy SINGULARITY_IMAGE_DEFAULT7 missing": {
            "SINGULARITY_IMAGE_DEFAULT7": "/cvmfs/nowhere/el7",
            "CVMFS_MOUNT_DIR": str(empty_cvmfs)},
    }


NODES = ["dict unset, no CVMFS", "dict empty, no CVMFS", "image missing",
         "refused: not in CVMFS", "refused: remote", "legacy SINGULARITY_IMAGE_DEFAULT7 missing"]


@pytest.mark.parametrize("frontend", ["PREFERRED", "REQUIRED"])
@pytest.mark.parametrize("node", NODES)
def test_no_usable_image_still_advertises_the_proven_runtime(tmp_path, fake_cvmfs, node,
                                                             frontend):
    binary = fake_cvmfs.bin.install_runtime("apptainer")
    values = no_image_nodes(tmp_path, fake_cvmfs)[node]
    result = setup(tmp_path, fake_cvmfs.env(), frontend, **values)
    assert result.exit_code == 0, result.stdout
    ad = machine_ad(result)
    assert (ad["HAS_SINGULARITY"], ad["GWMS_SINGULARITY_STATUS"]) == ("True", frontend)
    assert ad["SINGULARITY_PATH"] == str(binary)
    assert (ad["GLIDEIN_SINGULARITY_TEST_IMAGE"], ad["GLIDEIN_SINGULARITY_TEST_IMAGE_ORIGIN"]) == (
        BUILTIN_TEST_IMAGE, "GlideinWMS built-in test image")
    assert "GLIDEIN_CONTAINER_PLATFORMS" not in ad  # no image of ours: jobs bring their own
    assert_one_consistent_set(ad)
    warning = next(line for line in result.stdout.splitlines() if "no usable image for" in line)
    assert "[warning]" in warning and "only jobs that bring their own image" in warning
    assert "SINGULARITY_IMAGE_RESTRICTIONS=cvmfs (the default)" in warning


@pytest.mark.parametrize("node", NODES)
def test_singularity_image_required_makes_a_missing_image_fatal_and_names_it(
        tmp_path, fake_cvmfs, node):
    fake_cvmfs.bin.install_runtime("apptainer")
    values = {**no_image_nodes(tmp_path, fake_cvmfs)[node], "SINGULARITY_IMAGE_REQUIRED": "True"}
    preferred = setup(tmp_path / "p", fake_cvmfs.env(), "PREFERRED", **values)
    assert preferred.exit_code == 0, preferred.stdout
    ad = machine_ad(preferred)
    assert ad["HAS_SINGULARITY"] == "False"
    reason = ad["HAS_SINGULARITY_REASON"]
    assert reason.startswith("no usable image for platforms default,rhel9,rhel8,rhel7,rhel6 ")
    assert "SINGULARITY_IMAGE_REQUIRED=True (glidein_config:" in reason
    assert_one_consistent_set(ad)
    assert fake_cvmfs.bin.exec_calls(fake_cvmfs.bin.dir / "apptainer") == [], "nothing probed"
    required = setup(tmp_path / "r", fake_cvmfs.env(), "REQUIRED", **values)
    assert (required.exit_code, required.failure) == (1, "WN_Resource")
    assert "Singularity is REQUIRED but no usable image for platforms" in required.detail


def test_the_reasons_name_each_image_and_the_restriction_that_refused_it(tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer")
    outside = tmp_path / "el8.sif"
    outside.write_text("sif")
    result = setup(tmp_path, fake_cvmfs.env(), "REQUIRED", SINGULARITY_IMAGE_REQUIRED="yes",
                   SINGULARITY_IMAGES_DICT=f"rhel9:docker://almalinux:9,rhel8:{outside}",
                   GLIDEIN_REQUIRED_OS="rhel9,rhel8,rhel7")
    assert result.exit_code == 1
    assert ("no usable image for platforms rhel9,rhel8,rhel7 (GLIDEIN_REQUIRED_OS=rhel9,rhel8,"
            "rhel7 meeting REQUIRED_OS=any) after SINGULARITY_IMAGE_RESTRICTIONS=cvmfs (the "
            "default) (usable: none), and SINGULARITY_IMAGE_REQUIRED=yes (glidein_config:"
            ) in result.detail
    assert ("requires an image for default,rhel9,rhel8,rhel7,rhel6 or the node's platforms: "
            "rhel9: docker://almalinux:9 (SINGULARITY_IMAGES_DICT) "
            "refused: remote image: SINGULARITY_IMAGE_RESTRICTIONS does not include 'remote'; "
            f"rhel8: {outside} (SINGULARITY_IMAGES_DICT) refused: not in CVMFS ("
            ) in result.detail
    assert "none configured for rhel7" in result.detail


# ---- GLIDEIN_REQUIRED_OS ∩ REQUIRED_OS empty -----------------------------------------------------

def test_an_empty_os_intersection_warns_and_still_advertises(tmp_path, fake_cvmfs):
    binary = fake_cvmfs.bin.install_runtime("apptainer")
    result = setup(tmp_path, fake_cvmfs.env(), "REQUIRED", GLIDEIN_REQUIRED_OS="rhel8",
                   REQUIRED_OS="rhel9", SINGULARITY_IMAGES_DICT=fake_cvmfs.images_dict())
    assert result.exit_code == 0, result.stdout
    ad = machine_ad(result)
    assert ad["HAS_SINGULARITY"] == "True"
    # proven locally with a usable image of the dict (the reference's setup ignores REQUIRED_OS)
    assert ad["GLIDEIN_SINGULARITY_TEST_IMAGE"] == str(fake_cvmfs.images["rhel9"])
    assert ad["GLIDEIN_SINGULARITY_TEST_IMAGE_ORIGIN"].startswith("images dict (rhel9)")
    assert ad["GLIDEIN_CONTAINER_PLATFORMS"] == "rhel8"  # what the entry allows, as before
    assert result.config["GLIDEIN_REQUIRED_OS"] == "rhel8"  # kept (the reference writes any)
    assert "GLIDEIN_REQUIRED_OS=rhel8 and REQUIRED_OS=rhel9 have no platform in common" in (
        result.stdout)
    assert [call for call in fake_cvmfs.bin.calls(binary) if "docker://" in " ".join(call)
            or "oras://" in " ".join(call)] == [], "no network needed"


@pytest.mark.parametrize("frontend", ["PREFERRED", "REQUIRED"])
def test_require_platform_image_refuses_an_empty_os_intersection(tmp_path, fake_cvmfs,
                                                                 frontend):
    fake_cvmfs.bin.install_runtime("apptainer")
    result = setup(tmp_path, fake_cvmfs.env(), frontend,
                   {"images": {"require_platform_image": True}}, GLIDEIN_REQUIRED_OS="rhel8",
                   REQUIRED_OS="rhel9", SINGULARITY_IMAGES_DICT=fake_cvmfs.images_dict())
    message = ("GLIDEIN_REQUIRED_OS=rhel8 and REQUIRED_OS=rhel9 have no platform in common, so "
               "no image serves this node, and ")
    if frontend == "REQUIRED":
        assert (result.exit_code, result.failure) == (1, "WN_Resource")
        assert message in result.detail
        assert "settings.images.require_platform_image is true" in result.detail
    else:
        assert result.exit_code == 0
        ad = machine_ad(result)
        assert ad["HAS_SINGULARITY"] == "False" and message in ad["HAS_SINGULARITY_REASON"]
        assert_one_consistent_set(ad)


def test_singularity_image_required_is_met_by_an_image_of_another_platform(tmp_path, fake_cvmfs):
    """As in the reference, SINGULARITY_IMAGE_REQUIRED asks for an image, not for one of the
    node's platforms."""
    fake_cvmfs.bin.install_runtime("apptainer")
    result = setup(tmp_path, fake_cvmfs.env(), "REQUIRED", GLIDEIN_REQUIRED_OS="rhel6",
                   SINGULARITY_IMAGE_REQUIRED="true",
                   SINGULARITY_IMAGES_DICT=fake_cvmfs.images_dict())
    assert result.exit_code == 0, result.stdout
    assert machine_ad(result)["HAS_SINGULARITY"] == "True"


# ---- test images ---------------------------------------------------------------------------------

def test_apptainer_test_image_from_glidein_config_and_the_environment_first(tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer")
    configured, exported = tmp_path / "configured.sif", tmp_path / "exported.sif"
    configured.write_text("sif")
    exported.write_text("sif")
    empty = tmp_path / "empty-cvmfs"
    empty.mkdir()
    values = {"CVMFS_MOUNT_DIR": str(empty), "APPTAINER_TEST_IMAGE": str(configured)}
    result = setup(tmp_path / "a", fake_cvmfs.env(), **values)
    assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == str(configured)
    assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE_ORIGIN"].startswith(
        "APPTAINER_TEST_IMAGE (glidein_config:")
    result = setup(tmp_path / "b", fake_cvmfs.env(APPTAINER_TEST_IMAGE=str(exported)), **values)
    assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == str(exported)


@pytest.mark.parametrize(("restrictions", "proven"), [("cvmfs", False), ("cvmfs,remote", True)])
def test_remote_test_images_can_be_limited_to_what_the_restrictions_allow(
        tmp_path, fake_cvmfs, restrictions, proven):
    fake_cvmfs.bin.install_runtime("apptainer")
    empty = tmp_path / "empty-cvmfs"
    empty.mkdir()
    result = setup(tmp_path, fake_cvmfs.env(), "REQUIRED", {"probe": {"remote_test_image": False}},
                   CVMFS_MOUNT_DIR=str(empty), SINGULARITY_IMAGE_RESTRICTIONS=restrictions)
    if proven:
        assert result.exit_code == 0, result.stdout
        assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == BUILTIN_TEST_IMAGE
    else:
        assert (result.exit_code, result.failure) == (1, "WN_Resource")
        assert "test image problem, not a missing runtime" in result.detail
        assert "remote, and the probe's remote_test_image setting is off" in result.detail


def test_a_remote_test_image_that_cannot_be_pulled_is_reported_as_such(tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer", fail="noremote")
    empty = tmp_path / "empty-cvmfs"
    empty.mkdir()
    result = setup(tmp_path, fake_cvmfs.env(), "PREFERRED", CVMFS_MOUNT_DIR=str(empty))
    ad = machine_ad(result)
    assert ad["HAS_SINGULARITY"] == "False"
    assert ad["HAS_SINGULARITY_REASON"].startswith(
        "test image problem, not a missing runtime: 1 runtime(s) found, none proven with the "
        f"test image {BUILTIN_TEST_IMAGE} (GlideinWMS built-in test image)")


# ---- both scripts in one glidein -----------------------------------------------------------------

REFERENCE_TRUE = ("True", "PREFERRED", "/opt/other/apptainer", "1.2.0", "apptainer version 1.2.0",
                  "privileged")


@pytest.mark.parametrize("images", ["some", "none"])
def test_reference_true_then_ours_false_clears_the_reference_s_runtime(tmp_path, fake_cvmfs,
                                                                       classad2, images):
    """With no images dict the reference publishes it empty and required: ours makes it not
    required, or condor_startup.sh would fail the glidein (machine_ad checks)."""
    fake_cvmfs.bin.install_runtime("apptainer", fail="exit255")
    work = make_work_dir(tmp_path / "work", {
        "GLIDEIN_Singularity_Use": "PREFERRED", "GLIDEIN_PROVIDES": "cvmfs",
        **({"SINGULARITY_IMAGES_DICT": fake_cvmfs.images_dict()} if images == "some" else {})})
    reference_advertises(work, *REFERENCE_TRUE)
    result = setup(tmp_path, fake_cvmfs.env(), work=work)
    assert result.exit_code == 0, result.stdout
    ad = machine_ad(result)
    assert ad["HAS_SINGULARITY"] == "False" and "exit code 255" in ad["HAS_SINGULARITY_REASON"]
    assert_one_consistent_set(ad)
    assert ad["GLIDEIN_PROVIDES"] == "cvmfs"
    assert result.condor_vars["SINGULARITY_PATH"] == "SINGULARITY_PATH S - + N Y +"
    if images == "some":
        assert ad["SINGULARITY_IMAGES_DICT"] == fake_cvmfs.images_dict()  # an input: kept
    else:
        assert result.condor_vars["SINGULARITY_IMAGES_DICT"].split()[4] == "N"
    assert ad["GLIDEIN_REQUIRED_OS"] == "any"  # the reference's rewrite, already done
    for name, value in ad.items():  # HTCondor's parser takes every value
        classad2.ExprTree(f'"{value}"' if result.condor_vars[name].split()[1] == "S" else value)


@pytest.mark.parametrize("reference", [REFERENCE_TRUE, ("False", "PREFERRED")])
def test_reference_then_ours_true_overwrites_every_name(tmp_path, fake_cvmfs, reference):
    binary = fake_cvmfs.bin.install_runtime("apptainer")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED",
                                             "GLIDEIN_PROVIDES": "cvmfs,gpu"})
    reference_advertises(work, *reference)
    result = setup(tmp_path, fake_cvmfs.env(), work=work)
    ad = machine_ad(result)
    assert ad["HAS_SINGULARITY"] == "True"
    assert {ad[prefix + "PATH"] for prefix in PREFIXES} == {str(binary)}
    assert ad["GLIDEIN_PROVIDES"] == "cvmfs,gpu,singularity/unprivileged"
    assert_one_consistent_set(ad)


@pytest.mark.parametrize("fail", ["", "exit255"])
def test_ours_then_the_reference_agreeing_stays_consistent(tmp_path, fake_cvmfs, fail):
    """Ours first: the reference overwrites the names it owns; where both found the same,
    the set stays consistent (where they disagree, the reference's last word is its own)."""
    binary = fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED",
                                             "GLIDEIN_PROVIDES": "cvmfs"})
    ours = setup(tmp_path, fake_cvmfs.env(), work=work)
    assert ours.exit_code == 0
    if fail:
        reference_advertises(work, "False", "PREFERRED")
    else:
        reference_advertises(work, "True", "PREFERRED", str(binary), "1.3.4",
                             "apptainer version 1.3.4", "unprivileged")
    result = glidein_result(subprocess.CompletedProcess([], 0, "", ""), work)
    assert_one_consistent_set(machine_ad(result))


def test_ours_twice_replaces_its_own_earlier_true(tmp_path, fake_cvmfs):
    """A stale True of ours (a rerun after the runtime broke) is cleared like the reference's."""
    fake_cvmfs.bin.install_runtime("apptainer")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    assert setup(tmp_path, fake_cvmfs.env(), work=work).exit_code == 0
    fake_cvmfs.bin.install_runtime("apptainer", fail="exit255")
    (work / ".glidein_plugins" / "probe_cache.json").unlink()
    result = setup(tmp_path, fake_cvmfs.env(), work=work)
    ad = machine_ad(result)
    assert ad["HAS_SINGULARITY"] == "False"
    assert_one_consistent_set(ad)


def test_the_dry_run_says_which_image_proved_the_runtime_or_why_none_was_looked_for(
        tmp_path, fake_cvmfs):
    fake_cvmfs.bin.install_runtime("apptainer")
    args = ["run", "--set", "GLIDEIN_Singularity_Use=PREFERRED",
            "--set", "SINGULARITY_IMAGES_DICT=rhel9:/cvmfs/none/el9"]
    out = run_cli(args, tmp_path, fake_cvmfs.env()).stdout
    assert f"; proven with {BUILTIN_TEST_IMAGE} (GlideinWMS built-in test image))" in out
    out = run_cli([*args, "--set", "SINGULARITY_IMAGE_REQUIRED=true"], tmp_path,
                  fake_cvmfs.env()).stdout
    assert "Runtime: not looked for (no usable image for platforms default," in out
