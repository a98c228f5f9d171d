"""Side by side with GlideinWMS's own ``singularity_setup.sh`` on the same simulated nodes: every
outcome that feeds matchmaking must be the same, or differ as ``docs/migration.md`` documents.

The reference is not part of this repository: the test runs only when
``GLIDEIN_PLUGINS_REFERENCE`` names a GlideinWMS checkout (or its ``creation/web_base``), e.g.::

    git clone https://github.com/glideinWMS/glideinwms /tmp/glideinwms
    GLIDEIN_PLUGINS_REFERENCE=/tmp/glideinwms PYTHONPATH=$PWD \\
        python -m pytest -q -p no:cacheprovider -m reference tests/test_reference_side_by_side.py

Each scenario builds one node (the kit's fake runtime in the place named, a fake CVMFS tree,
glidein_config values, environment), copies it, and runs the reference in one copy (``bash
singularity_setup.sh glidein_config``, bounded by ``REFERENCE_TIMEOUT``: it has no timeouts of
its own) and ours in the other. The outcome compared: the exit code, ``HAS_SINGULARITY``,
``GWMS_SINGULARITY_STATUS``, the runtime's path, version and mode when True, and whether
``condor_startup.sh`` would then fail on a Required=Y line left empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import glidein_result, make_work_dir, run_cli

from glidein_plugins.testing.glidein import gconfig_values
from glidein_plugins.testing.node import FakeBin, make_fake_bin, make_fake_cvmfs

REFERENCE_FILES = ("singularity_setup.sh", "singularity_lib.sh", "add_config_line.source",
                   "error_gen.sh")
REFERENCE_TIMEOUT = 30.0
FRONTENDS = ("DISABLE_GWMS", "NEVER", "OPTIONAL", "PREFERRED", "REQUIRED")
FACTORIES = ("NEVER", "OPTIONAL", "PREFERRED", "REQUIRED", "REQUIRED_GWMS")

# documented differences (docs/migration.md, "Outcomes that differ"): scenario -> why
HANGS = "the reference has no timeout: a hanging runtime hangs it; ours is bounded"
EMPTY_DICT = ("the reference publishes an empty SINGULARITY_IMAGES_DICT as Required=Y, so "
              "condor_startup.sh would fail the glidein; ours publishes it not required")


def reference_dir() -> Path | None:
    named = os.environ.get("GLIDEIN_PLUGINS_REFERENCE", "")
    if not named:
        return None
    for candidate in (Path(named), Path(named) / "creation" / "web_base"):
        if all((candidate / name).is_file() for name in REFERENCE_FILES):
            return candidate
    raise AssertionError(f"GLIDEIN_PLUGINS_REFERENCE={named}: no {REFERENCE_FILES[0]} there")


# deselected by default (pyproject's addopts): run with ``-m reference`` beside a checkout
pytestmark = [pytest.mark.reference, pytest.mark.skipif(
    reference_dir() is None,
    reason="GLIDEIN_PLUGINS_REFERENCE does not name a GlideinWMS checkout")]


@dataclass(frozen=True)
class Scenario:
    """A node: glidein_config ``values`` and ``env`` may name ``{rhel9}``, ``{rhel8}``,
    ``{rhel7}`` (the fake CVMFS images), ``{cvmfs}``, ``{empty}`` (a directory with no CVMFS),
    ``{node}`` (the node's own directory) and ``{local}`` (an image outside CVMFS)."""

    name: str
    values: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    fail: str = ""  # the fake runtime's failures
    where: str = "PATH"  # PATH, PATH-singularity, SINGULARITY_BIN, OVERRIDE, OSG, CONDOR, none
    differs: str = ""  # the documented difference, '' when the outcomes must be equal


def scenarios() -> list[Scenario]:
    dict9 = {"SINGULARITY_IMAGES_DICT": "rhel9:{rhel9}"}
    found = []
    for fail in ("", "exit255"):  # 5 x 5 negotiation outcomes, with a working or broken runtime
        for frontend in FRONTENDS:
            for factory in FACTORIES:
                found.append(Scenario(f"{frontend}x{factory}{'-broken' if fail else ''}",
                                      {"GLIDEIN_Singularity_Use": frontend,
                                       "GLIDEIN_SINGULARITY_REQUIRE": factory, **dict9},
                                      fail=fail))
    no_image = {
        "dict unset": ({}, {"CVMFS_MOUNT_DIR": "{empty}"}, EMPTY_DICT),
        "dict empty": ({"SINGULARITY_IMAGES_DICT": ""}, {"CVMFS_MOUNT_DIR": "{empty}"},
                       EMPTY_DICT),
        "image missing": ({"SINGULARITY_IMAGES_DICT": "rhel9:{cvmfs}/nowhere/el9"}, {}, ""),
        "not in CVMFS": ({"SINGULARITY_IMAGES_DICT": "default:{local}"}, {}, ""),
        "remote refused": ({"SINGULARITY_IMAGES_DICT": "rhel9:docker://almalinux:9"}, {}, ""),
        "legacy DEFAULT7 missing": ({"SINGULARITY_IMAGE_DEFAULT7": "{cvmfs}/nowhere/el7"},
                                    {"CVMFS_MOUNT_DIR": "{empty}"}, EMPTY_DICT),
    }
    for name, (values, env, differs) in no_image.items():
        for frontend in ("PREFERRED", "REQUIRED"):
            found.append(Scenario(f"no image: {name}, {frontend}",
                                  {"GLIDEIN_Singularity_Use": frontend, **values}, env,
                                  differs=differs))
        found.append(Scenario(f"no image: {name}, SINGULARITY_IMAGE_REQUIRED",
                              {"GLIDEIN_Singularity_Use": "PREFERRED",
                               "SINGULARITY_IMAGE_REQUIRED": "true", **values}, env))
    for frontend in ("PREFERRED", "REQUIRED"):
        found.append(Scenario(f"empty OS intersection, {frontend}", {
            "GLIDEIN_Singularity_Use": frontend, "GLIDEIN_REQUIRED_OS": "rhel8",
            "REQUIRED_OS": "rhel9", "SINGULARITY_IMAGES_DICT": "rhel9:{rhel9},rhel8:{rhel8}"}))
    preferred = {"GLIDEIN_Singularity_Use": "PREFERRED"}
    missing = {"SINGULARITY_IMAGES_DICT": "rhel9:{cvmfs}/nowhere/el9"}
    found += [
        Scenario("legacy SINGULARITY_IMAGE_DEFAULT6/7",
                 {**preferred, "SINGULARITY_IMAGE_DEFAULT7": "{rhel7}",
                  "SINGULARITY_IMAGE_DEFAULT6": "{rhel8}"}, {"CVMFS_MOUNT_DIR": "{cvmfs}"},
                 differs=EMPTY_DICT),
        Scenario("legacy SINGULARITY_IMAGE_DEFAULT7 over the dict",
                 {**preferred, "SINGULARITY_IMAGE_DEFAULT7": "{rhel7}",
                  "SINGULARITY_IMAGES_DICT": "rhel7:{cvmfs}/nowhere/el7"}),
        Scenario("dict without default or rhel9", {**preferred,
                 "SINGULARITY_IMAGES_DICT": "rhel8:{rhel8},rhel7:{rhel7}"}),
        Scenario("test image: GWMS_SINGULARITY_IMAGE_DEFAULT", {**preferred, **missing},
                 {"GWMS_SINGULARITY_IMAGE_DEFAULT": "{local}"}),
        Scenario("test image: APPTAINER_TEST_IMAGE env", {**preferred, **missing},
                 {"APPTAINER_TEST_IMAGE": "{local}"}),
        Scenario("test image: APPTAINER_TEST_IMAGE glidein_config",
                 {**preferred, **missing, "APPTAINER_TEST_IMAGE": "{local}"}),
        Scenario("test image: local test image missing", {**preferred, **missing},
                 {"APPTAINER_TEST_IMAGE": "{node}/gone.sif"}),
        Scenario("test image: remote cannot be pulled", {**preferred, **missing},
                 fail="noremote"),
        Scenario("test image: remote cannot be pulled, REQUIRED",
                 {"GLIDEIN_Singularity_Use": "REQUIRED", **missing}, fail="noremote"),
        Scenario("runtime: singularity on PATH", {**preferred, **dict9}, where="PATH-singularity"),
        Scenario("runtime: SINGULARITY_BIN", {**preferred, **dict9,
                                              "SINGULARITY_BIN": "{node}/sbin"},
                 where="SINGULARITY_BIN"),
        Scenario("runtime: override", {**preferred, **dict9}, where="OVERRIDE",
                 env={"GLIDEIN_SINGULARITY_BINARY_OVERRIDE": "{node}/override/apptainer"}),
        Scenario("runtime: OSG in CVMFS", {**preferred, **dict9}, where="OSG"),
        Scenario("runtime: CONDOR_DIR", {**preferred, **dict9, "CONDOR_DIR": "{node}/condor"},
                 where="CONDOR"),
        Scenario("runtime: none", {**preferred, **dict9}, where="none"),
        Scenario("runtime: none, REQUIRED", {"GLIDEIN_Singularity_Use": "REQUIRED", **dict9},
                 where="none"),
        Scenario("runtime: exec hangs", {**preferred, **dict9}, fail="exec-hang",
                 differs=HANGS),
    ]
    return found


def build_node(root: Path, scenario: Scenario, reference: Path) -> tuple[Path, dict[str, str]]:
    """The node's glidein work dir and environment."""
    fakes: FakeBin = make_fake_bin(root)
    cvmfs = make_fake_cvmfs(root / "cvmfs", fakes)
    (root / "empty").mkdir()
    local = root / "local.sif"
    local.write_text("sif")
    names = {**{key: str(path) for key, path in cvmfs.images.items()}, "cvmfs": str(cvmfs.root),
             "empty": str(root / "empty"), "node": str(root), "local": str(local)}
    places = {"PATH": fakes.dir / "apptainer", "PATH-singularity": fakes.dir / "singularity",
              "SINGULARITY_BIN": root / "sbin" / "apptainer",
              "OVERRIDE": root / "override" / "apptainer",
              "OSG": cvmfs.root / "oasis.opensciencegrid.org/mis/singularity/bin/singularity",
              "CONDOR": root / "condor" / "usr/libexec/apptainer"}
    if scenario.where in places:
        place = places[scenario.where]
        fakes.install_runtime(place.name, fail=scenario.fail, directory=place.parent)
    values = {key: value.format(**names) for key, value in scenario.values.items()}
    work = make_work_dir(root / "work", {
        "ADD_CONFIG_LINE_SOURCE": str(reference / "add_config_line.source"),
        "ERROR_GEN_PATH": str(reference / "error_gen.sh"), **values})
    env = cvmfs.env(**{key: value.format(**names) for key, value in scenario.env.items()})
    env = {key: value for key, value in env.items() if value}  # unset, as on a real node
    env["HOME"] = str(root)
    return work, env


def outcome(exit_code: int | None, work: Path) -> tuple[object, ...]:
    """What matchmaking sees of one run (None: it hung)."""
    if exit_code is None:
        return ("hung",)
    if exit_code != 0:
        return ("exit", exit_code)
    config = gconfig_values(work / "glidein_config")
    rows = [line.split() for line in (work / "condor_vars.lst").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    dies = sorted(row[0] for row in rows if row[4] == "Y" and not config.get(row[0]))
    has = config.get("HAS_SINGULARITY")
    seen: tuple[object, ...] = (has, config.get("GWMS_SINGULARITY_STATUS"))
    if has == "True":
        seen += tuple(config.get(f"SINGULARITY_{key}") for key in ("PATH", "VERSION", "MODE"))
    return (*seen, f"condor_startup fails on {dies}" if dies else "condor_startup ok")


def run_reference(reference: Path, work: Path, env: dict[str, str]) -> int | None:
    try:
        proc = subprocess.run(["bash", str(reference / "singularity_setup.sh"), "glidein_config"],
                              cwd=work, env=env, capture_output=True, timeout=REFERENCE_TIMEOUT,
                              start_new_session=True, check=False)
    except subprocess.TimeoutExpired:
        return None
    return proc.returncode


@pytest.mark.parametrize("scenario", scenarios(), ids=lambda scenario: scenario.name)
def test_same_matchmaking_outcome_as_the_reference(tmp_path, scenario):
    source = reference_dir()
    assert source is not None
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in REFERENCE_FILES:
        shutil.copy2(source / name, reference / name)
    ours_root, theirs_root = tmp_path / "ours", tmp_path / "theirs"
    ours_work, ours_env = build_node(ours_root, scenario, reference)
    theirs_work, theirs_env = build_node(theirs_root, scenario, reference)
    theirs_code = run_reference(reference, theirs_work, theirs_env)
    ours_code = run_cli(["setup", "glidein_config", "entry"], ours_work, ours_env,
                        timeout=120).returncode
    ours = outcome(ours_code, ours_work)
    theirs = outcome(theirs_code, theirs_work)
    # the runtime's path differs only by the node's directory
    ours = tuple(str(item).replace(str(ours_root), "NODE") for item in ours)
    theirs = tuple(str(item).replace(str(theirs_root), "NODE") for item in theirs)
    if scenario.differs:
        assert ours != theirs, f"documented as different ({scenario.differs}) but equal: {ours}"
    else:
        assert ours == theirs


@pytest.mark.parametrize("order", ["reference first", "ours first"])
@pytest.mark.parametrize("ours_says", ["True", "False"])
def test_both_scripts_in_one_glidein(tmp_path, order, ours_says):
    """The reference's script really run in the same glidein: where ours runs last, the names
    both own are one consistent set; where the reference runs last, they are consistent when
    the two agree (the reference never clears what it does not write)."""
    from test_migration import assert_one_consistent_set, machine_ad  # noqa: PLC0415

    source = reference_dir()
    assert source is not None
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in REFERENCE_FILES:
        shutil.copy2(source / name, reference / name)
    values = {"GLIDEIN_Singularity_Use": "PREFERRED", "GLIDEIN_PROVIDES": "cvmfs",
              "SINGULARITY_IMAGES_DICT": "rhel9:{rhel9}", "REQUIRED_OS": "rhel6"}
    work, env = build_node(tmp_path / "node", Scenario("both", values), reference)
    args = ["setup", "glidein_config", "entry"]
    if ours_says == "False":  # the opt-in refuses the node: no image for REQUIRED_OS
        config = tmp_path / "entry.yaml"
        config.write_text("version: 1\ndefaults:\n  settings:\n    images:\n"
                          "      require_platform_image: true\n")
        args += ["--config", str(config)]
    if order == "reference first":
        assert run_reference(reference, work, env) == 0
    assert run_cli(args, work, env).returncode == 0
    if order == "ours first":
        assert run_reference(reference, work, env) == 0
    ad = machine_ad(glidein_result(subprocess.CompletedProcess([], 0, "", ""), work)) \
        if order == "reference first" else None
    if ad is not None:
        assert ad["HAS_SINGULARITY"] == ours_says
        assert_one_consistent_set(ad)
    elif ours_says == "True":  # both True on the same runtime: consistent
        config = gconfig_values(work / "glidein_config")
        assert {config[prefix + "PATH"] for prefix in
                ("SINGULARITY_", "GWMS_SINGULARITY_", "CONTAINERSW_", "GWMS_CONTAINERSW_")} == {
            str(tmp_path / "node" / "bin" / "apptainer")}
