"""End to end on a node with the kit's fake runtimes (``testing/fakes``) and a fake CVMFS tree:
``glidein-plugins setup`` and ``glidein-plugins run`` as real processes, with the real built-in
plugins (discovery, probe, images, binds, singularity), judged by what they leave behind: the
result XML, glidein_config and condor_vars.lst, whose values HTCondor's own parser evaluates.
GPU detection is off (``FakeBin.env``): what is published is the container protocol's alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    FakeCvmfs,
    GlideinResult,
    glidein_result,
    make_work_dir,
    report_table,
    run_cli,
    startd_values,
)

PREFIXES = ("SINGULARITY_", "GWMS_SINGULARITY_", "CONTAINERSW_", "GWMS_CONTAINERSW_")
DETAILS = ("PATH", "VERSION", "FULL_VERSION", "MODE")
FLAGS = ("SINGULARITY_CAN_BIND_MISSING_TARGET", "SINGULARITY_CAN_USE_PID_NAMESPACES",
         "SINGULARITY_CAN_USE_CONTAIN")
PUBLISHED = {  # name -> condor_vars type, with a proven runtime
    # the reference's names, so that existing Frontend expressions keep matching
    "HAS_SINGULARITY": "C", "GWMS_SINGULARITY_STATUS": "S",
    **{prefix + detail: "S" for prefix in PREFIXES for detail in DETAILS},
    "SINGULARITY_IMAGES_DICT": "S", "GLIDEIN_PROVIDES": "S",
    "HAS_UNPRIVILEGED_USER_NAMESPACES": "S",
    # what the probes learnt, under names of our own
    **dict.fromkeys(FLAGS, "C"), "GLIDEIN_NESTED_CONTAINER": "C",
    "GLIDEIN_NESTED_CONTAINER_REASON": "S", "GLIDEIN_CONTAINER_PLATFORMS": "S",
}
# names the HTCondor startd computes itself: a glidein must never publish them
HTCONDOR_OWNED = {"hassingularity", "singularityversion", "hassandboximage", "hassif",
                  "haspidnamespaces", "singularityusernamespaces", "singularityofflinereason"}
USERNS = ("enabled", "disabled", "unavailable", "error")


def setup(work: Path, env: dict[str, str], *args: str) -> GlideinResult:
    proc = run_cli(["setup", "glidein_config", "entry", *args], work, env)
    return glidein_result(proc, work)


def work_dir(tmp_path: Path, frontend: str, **values: str) -> Path:
    return make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": frontend, **values})


def probe_settings(tmp_path: Path, **settings: str) -> tuple[str, ...]:
    """``--config`` arguments for a factory config giving the ``probe`` plugin ``settings``."""
    if not settings:
        return ()
    config = tmp_path / "probe.yaml"
    config.write_text("version: 1\ndefaults:\n  settings:\n    probe:\n" + "".join(
        f"      {key}: {json.dumps(value)}\n" for key, value in settings.items()))
    return ("--config", str(config))


def functional_tests(fake_cvmfs: FakeCvmfs, binary: Path) -> list[list[str]]:
    """The ``exec ... IMAGE cat /proc/self/uid_map`` calls of ``binary`` (the probe's others run
    concurrently with it, in any order)."""
    return [call for call in fake_cvmfs.bin.exec_calls(binary)
            if call[-2:] == ["cat", "/proc/self/uid_map"]]


def assert_published(result: GlideinResult, names: dict[str, str]) -> None:
    """Each name is in glidein_config with its condor_vars line; no HTCondor-owned name is."""
    for name, kind in names.items():
        assert name in result.config, (name, result.stdout)
        assert result.condor_vars.get(name) == f"{name} {kind} - + N Y +"
    assert not {name.lower() for name in result.condor_vars} & HTCONDOR_OWNED


@pytest.mark.parametrize(("frontend", "name", "version", "mode", "short"), [
    ("PREFERRED", "apptainer", "apptainer version 1.3.4", "privileged", "1.3.4"),
    ("REQUIRED", "apptainer", "apptainer version 1.2.5", "fakeroot", "1.2.5"),
    ("REQUIRED", "singularity", "singularity-ce version 4.1.3", "unprivileged", "4.1.3"),
    ("PREFERRED", "singularity", "singularity-ce version 3.11.4-1.el8", "unprivileged",
     "3.11.4-1.el8"),
])
def test_a_proven_runtime_is_published_in_each_privilege_mode(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2, htcondor2, frontend: str, name: str,
        version: str, mode: str, short: str) -> None:
    binary = fake_cvmfs.bin.install_runtime(name, version=version, mode=mode)
    work = work_dir(tmp_path, frontend, GLIDEIN_PROVIDES="cvmfs,gpu")
    result = setup(work, fake_cvmfs.env())
    assert result.exit_code == 0, result.stdout
    assert (result.metrics["use_singularity"], result.metrics["singularity_mode"]) == (
        "True", frontend)
    assert_published(result, PUBLISHED)
    ad = startd_values(result, classad2)
    assert (ad["HAS_SINGULARITY"], ad["GWMS_SINGULARITY_STATUS"]) == (True, frontend)
    described = {"PATH": str(binary), "VERSION": short, "FULL_VERSION": version, "MODE": mode}
    for prefix in PREFIXES:
        assert {detail: ad[prefix + detail] for detail in DETAILS} == described
    assert ad["SINGULARITY_IMAGES_DICT"] == fake_cvmfs.images_dict()  # rebased on the mount
    assert ad["GLIDEIN_CONTAINER_PLATFORMS"] == "rhel9,rhel8,rhel7"
    assert ad["GLIDEIN_PROVIDES"] == f"cvmfs,gpu,singularity/{mode}"  # appended, as the reference
    assert all(ad[flag] is True for flag in FLAGS)
    assert ad["GLIDEIN_NESTED_CONTAINER"] is False and ad["GLIDEIN_NESTED_CONTAINER_REASON"]
    assert ad["HAS_UNPRIVILEGED_USER_NAMESPACES"] in USERNS
    # jobs match on the platforms with HTCondor's string-list functions (htcondor2 loads them)
    machine = classad2.ClassAd()
    for key, value in ad.items():
        machine[key] = value
    for platform, matches in (("rhel9", True), ("rhel8", True), ("rhel6", False)):
        expression = f'stringListMember("{platform}", GLIDEIN_CONTAINER_PLATFORMS)'
        assert classad2.ExprTree(expression).eval(machine) is matches, expression
    # proven once, with GlideinWMS's production options, in the default image
    functional = functional_tests(fake_cvmfs, binary)
    assert len(functional) == 1
    assert functional[0][:8] == ["exec", "--home", f"{work}:/srv", "--pwd", "/srv", "--ipc",
                                 "--contain", "--pid"]
    assert functional[0][-3] == str(fake_cvmfs.images["rhel9"])


def test_the_entry_platforms_keep_their_order_and_are_never_overwritten(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    binary = fake_cvmfs.bin.install_runtime("apptainer")
    work = work_dir(tmp_path, "REQUIRED", GLIDEIN_REQUIRED_OS="rhel8,rhel9")
    result = setup(work, fake_cvmfs.env())
    assert result.exit_code == 0, result.stdout
    # the entry's list, in its order: what jobs can ask for here, and the image proven with
    assert result.config["GLIDEIN_CONTAINER_PLATFORMS"] == "rhel8,rhel9"
    assert [call[-3] for call in functional_tests(fake_cvmfs, binary)] == [
        str(fake_cvmfs.images["rhel8"])]
    # the usable images are all advertised; GLIDEIN_REQUIRED_OS is left as the entry set it
    assert result.config["SINGULARITY_IMAGES_DICT"] == fake_cvmfs.images_dict()
    lines = (work / "glidein_config").read_text().splitlines()
    assert [line for line in lines if line.startswith("GLIDEIN_REQUIRED_OS ")] == [
        "GLIDEIN_REQUIRED_OS rhel8,rhel9"]
    assert "GLIDEIN_REQUIRED_OS" not in result.condor_vars


SIF = "test.sif"


@pytest.mark.parametrize(("fail", "env", "settings", "expected"), [
    ("", {}, {"sif_image": SIF}, {"SINGULARITY_CAN_USE_SIF": True}),
    ("nosif", {}, {"sif_image": SIF},
     {"SINGULARITY_CAN_USE_SIF": "root filesystem extraction failed"}),
    ("nopid", {}, {}, {"SINGULARITY_CAN_USE_PID_NAMESPACES": "--pid failed"}),
    ("nounderlay", {}, {},
     {"SINGULARITY_CAN_BIND_MISSING_TARGET": "missing_target doesn`t exist"}),  # ' became `
    ("nested-devpts", {}, {}, {"SINGULARITY_CAN_USE_CONTAIN": "Multiple devpts instances",
                               "SINGULARITY_CAN_USE_PID_NAMESPACES": "--pid failed"}),
    ("nested-devpts", {"APPTAINER_CONTAINER": "/outer.sif"}, {},
     {"GLIDEIN_NESTED_CONTAINER": True,
      "SINGULARITY_CAN_USE_CONTAIN": "already inside a container",
      "SINGULARITY_CAN_USE_PID_NAMESPACES": "already inside a container"}),
], ids=["sif", "nosif", "nopid", "nounderlay", "devpts", "nested"])
def test_what_the_probes_learnt_is_published_with_a_reason_for_every_false(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2, fail: str, env: dict[str, str],
        settings: dict[str, str], expected: dict[str, object]) -> None:
    """Every flag is True unless ``expected`` gives the fragment of its ``_REASON``."""
    (tmp_path / SIF).write_text("not really a SIF, the fake runtime only needs a file\n")
    settings = {key: str(tmp_path / value) for key, value in settings.items()}
    fake_cvmfs.bin.install_runtime("apptainer", fail=fail)
    result = setup(work_dir(tmp_path, "REQUIRED"), fake_cvmfs.env(**env),
                   *probe_settings(tmp_path, **settings))
    assert (result.exit_code, result.config["HAS_SINGULARITY"]) == (0, "True"), result.stdout
    ad = startd_values(result, classad2)
    flags = [*FLAGS, *(["SINGULARITY_CAN_USE_SIF"] if settings else [])]
    for flag in flags:
        reason = ad.get(f"{flag}_REASON")
        if flag in expected and expected[flag] is not True:
            assert ad[flag] is False, flag
            assert isinstance(reason, str) and str(expected[flag]) in reason, (flag, reason)
        else:
            assert (ad[flag], reason) == (True, None), flag
    assert "SINGULARITY_CAN_USE_SIF" in ad if settings else "SINGULARITY_CAN_USE_SIF" not in ad
    nested = expected.get("GLIDEIN_NESTED_CONTAINER", False)
    assert ad["GLIDEIN_NESTED_CONTAINER"] is nested
    assert ("APPTAINER_CONTAINER is set" in ad["GLIDEIN_NESTED_CONTAINER_REASON"]) is nested


def test_required_with_only_broken_runtimes_fails_naming_every_candidate(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    override = tmp_path / "site" / "apptainer"  # named by the site, but not there
    reasons = {
        str(override): "does not exist",
        str(fake_cvmfs.install_osg_binary(fail="exit255")): "exit code 255",
        str(fake_cvmfs.bin.install_runtime("apptainer", fail="fatal0")):
            "exit 0 but stderr says FATAL",
        str(fake_cvmfs.bin.install_runtime("singularity", fail="exec-garbage")):
            "instead of /proc/self/uid_map",
    }
    work = work_dir(tmp_path, "REQUIRED")
    before = {name: (work / name).read_bytes() for name in ("glidein_config", "condor_vars.lst")}
    result = setup(work, fake_cvmfs.env(GLIDEIN_SINGULARITY_BINARY_OVERRIDE=str(override)))
    assert (result.exit_code, result.failure) == (1, "WN_Resource"), result.stdout
    assert result.detail.startswith("Singularity is REQUIRED but no working container runtime "
                                    f"among {len(reasons)} tried: ")
    tried = result.detail.split(" tried: ", 1)[1].split("; ")
    for path, why in reasons.items():
        mentions = [item for item in tried if item.startswith(f"{path} (")]
        assert len(mentions) == 1 and why in mentions[0], (path, tried)
    assert {name: (work / name).read_bytes() for name in before} == before  # nothing advertised


@pytest.mark.parametrize(("frontend", "published"), [
    ("NEVER", {"HAS_SINGULARITY", "HAS_SINGULARITY_REASON", "GWMS_SINGULARITY_STATUS"}),
    ("DISABLE_GWMS", set()),
])
def test_no_runtime_is_run_when_containers_are_not_wanted(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, frontend: str, published: set[str]) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    fake_cvmfs.install_osg_binary()
    result = setup(work_dir(tmp_path, frontend), fake_cvmfs.env())
    assert result.exit_code == 0, result.stdout
    assert fake_cvmfs.bin.calls() == []
    assert set(result.condor_vars) - {"GLIDEIN_Site"} == published


def test_values_that_cannot_be_published_are_left_out_or_squeezed_not_fatal(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, classad2) -> None:
    odd = tmp_path / "it's odd" / "apptainer"  # a ' cannot go through condor_startup.sh's eval
    fake_cvmfs.bin.install_runtime("apptainer", version='apptainer version 1.3.4 "rc" $(X) \\',
                                   directory=odd.parent)
    work = work_dir(tmp_path, "REQUIRED", GLIDEIN_PROVIDES='cvmfs,"quoted"')
    result = setup(work, fake_cvmfs.env(GLIDEIN_SINGULARITY_BINARY_OVERRIDE=str(odd)))
    assert (result.exit_code, result.config["HAS_SINGULARITY"]) == (0, "True"), result.stdout
    ad = startd_values(result, classad2)  # everything published parses
    # a path is never altered to fit: left out, with the reason in the log
    assert not [name for name in ad if name.endswith("_PATH")]
    assert "SINGULARITY_PATH not published" in result.stdout
    # free text is squeezed onto one publishable line
    assert ad["SINGULARITY_FULL_VERSION"] == "apptainer version 1.3.4 `rc` $ (X) /"
    # a GLIDEIN_PROVIDES that cannot be republished is kept as it was, never clobbered
    assert result.config["GLIDEIN_PROVIDES"] == 'cvmfs,"quoted"'
    assert "GLIDEIN_PROVIDES" not in result.condor_vars
    assert "GLIDEIN_PROVIDES not published" in result.stdout


def test_run_shows_every_decision_on_the_runtime_images_and_binds(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    broken = fake_cvmfs.bin.install_runtime("apptainer", fail="fatal0")  # tried first
    chosen = fake_cvmfs.bin.install_runtime("singularity", version="singularity-ce version 4.1.3")
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    absent = tmp_path / "absent"
    env = fake_cvmfs.env(
        GLIDEIN_SINGULARITY_BINDPATH=f"{data}:/data:ro,{absent}:/absent,{other}:/proc",
        GLIDEIN_SINGULARITY_BINDPATH_DEFAULT=f"{other}:/data",  # the Frontend's /data wins
        TMPDIR=str(tmp_path))
    text = run_cli(["run", "-v"], tmp_path, env)  # -v: every decision, info ones too
    assert (text.returncode, text.stderr) == (0, ""), text.stdout
    out = text.stdout
    assert "Result:  OK (exit 0)" in out
    assert "Mode:    PREFERRED (" in out
    assert (f"Runtime: {chosen} (singularity-ce 4.1.3, unprivileged; from singularity on PATH; "
            f"proven with {fake_cvmfs.images['rhel9']} (the node's default image (rhel9)))"
            ) in out.splitlines()
    candidates = {row[1]: row[3] for row in report_table(out, "Runtime candidates")}
    assert candidates[str(broken)].startswith("rejected: ")
    assert "FATAL" in candidates[str(broken)]
    assert candidates[str(chosen)] == "chosen: singularity-ce 4.1.3, unprivileged"
    assert list(candidates).index(str(broken)) < list(candidates).index(str(chosen))
    assert f"Images (default: rhel9 {fake_cvmfs.images['rhel9']})" in out.splitlines()
    images = {row[0]: row[-1] for row in report_table(out, "Images (default: ")}
    assert images == {key: str(path) for key, path in fake_cvmfs.images.items()}
    binds = {row[1]: row for row in report_table(out, "Binds")}
    # columns: SOURCE, DESTINATION, OPTIONS, ORIGIN, DECISION
    assert (binds["/data"][0], binds["/data"][2], binds["/data"][-1]) == (str(data), "ro", "kept")
    assert binds["/absent"][-1].startswith("dropped: ") and "does not exist" in binds["/absent"][-1]
    assert binds["/proc"][-1].startswith("dropped: ") and "mask" in binds["/proc"][-1]
    assert binds["/cvmfs"][0] == str(fake_cvmfs.root) and binds["/cvmfs"][-1] == "kept"
    assert f"{other} -> /data" in out and "binds there first" in out  # the de-duplication

    proc = run_cli(["run", "--json"], tmp_path, env)
    report = json.loads(proc.stdout)
    assert (report["runtime"]["path"], report["runtime"]["privilege"]) == (str(chosen),
                                                                           "unprivileged")
    assert [(item["path"], "FATAL" in item["reason"]) for item in report["rejected_runtimes"]
            if item["path"] == str(broken)] == [(str(broken), True)]
    assert [image["platform"] for image in report["images"]] == list(fake_cvmfs.images)
    assert report["image"]["uri"] == str(fake_cvmfs.images["rhel9"])
    assert {"/data", "/cvmfs"} <= {bind["destination"] for bind in report["binds"]}
    assert {bind["destination"] for bind in report["rejected_binds"]} >= {"/absent", "/proc"}
    assert all(bind["reason"] for bind in report["rejected_binds"])


@pytest.mark.parametrize("image_required", ["", "false", "true"])
def test_required_with_a_runtime_but_no_usable_image(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                     image_required: str) -> None:
    """GlideinWMS's default: the runtime proven with the test image is advertised (jobs that
    bring their own image match); SINGULARITY_IMAGE_REQUIRED=true makes it fatal, naming the
    missing image."""
    fake_cvmfs.bin.install_runtime("apptainer")
    (tmp_path / "test-image").mkdir()  # the runtime can be proven with the probe's test image
    work = work_dir(tmp_path, "REQUIRED",
                    SINGULARITY_IMAGES_DICT=f"rhel9:{fake_cvmfs.root}/missing/el9",
                    SINGULARITY_IMAGE_REQUIRED=image_required)
    result = setup(work, fake_cvmfs.env(),
                   *probe_settings(tmp_path, test_image=str(tmp_path / "test-image")))
    if image_required == "true":
        assert (result.exit_code, result.failure) == (1, "WN_Resource"), result.stdout
        assert ("no usable image for platforms default,rhel9,rhel8,rhel7,rhel6 "
                "(GLIDEIN_REQUIRED_OS=any meeting REQUIRED_OS=any) after "
                "SINGULARITY_IMAGE_RESTRICTIONS=cvmfs (the default) (usable: none), and "
                "SINGULARITY_IMAGE_REQUIRED=true (glidein_config:") in result.detail
        assert (f"or the node's platforms: rhel9: {fake_cvmfs.root}/missing/el9 "
                "(SINGULARITY_IMAGES_DICT) unusable: ") in result.detail
        return
    assert result.exit_code == 0, result.stdout
    assert result.config["HAS_SINGULARITY"] == "True"
    assert result.config["GLIDEIN_SINGULARITY_TEST_IMAGE"] == str(tmp_path / "test-image")
    assert "only jobs that bring their own image can run here" in result.stdout
