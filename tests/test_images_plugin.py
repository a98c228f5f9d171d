"""The built-in ``images`` plugin on real directory trees: a small CVMFS under ``CVMFS_MOUNT_DIR``
(tag links as CVMFS has them, absolute into ``/cvmfs`` and relative), local images, restrictions,
legacy variables, errors naming their line, a stale mount, and image selection by the runner."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from conftest import glidein_result, make_work_dir, run_cli, startd_values

from glidein_plugins.builtin import images as plugin
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.container import image_checks
from glidein_plugins.container.images import refusal
from glidein_plugins.engine import manager
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.engine.runner import Runner
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import Facts, Image

OSG = "/cvmfs/singularity.opensciencegrid.org/opensciencegrid"


class Cvmfs:
    """A CVMFS tree at ``root``: OSG's el9 tag an absolute link into ``/cvmfs`` (as CVMFS
    publishes them), el8 a relative link, el7 a plain directory; ``images.example.org`` holds
    the directories ``a`` to ``d`` and the file ``el9.sif``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        osg = root / "singularity.opensciencegrid.org"
        self.el9 = self._image(osg / ".images" / "ab" / "cdef")
        self.el8 = self._image(osg / ".images" / "12" / "3456")
        self.el7 = self._image(osg / "opensciencegrid" / "osgvo-el7:latest")
        (osg / "opensciencegrid" / "osgvo-el9:latest").symlink_to(
            "/cvmfs/singularity.opensciencegrid.org/.images/ab/cdef")
        (osg / "opensciencegrid" / "osgvo-el8:latest").symlink_to("../.images/12/3456")
        self.repo = root / "images.example.org"
        for name in "abcd":
            self._image(self.repo / name)
        (self.repo / "el9.sif").write_text("SIF")

    @staticmethod
    def _image(path: Path) -> Path:
        for sub in ("etc", "srv", "cvmfs", "tmp"):
            (path / sub).mkdir(parents=True)
        return path

    def real(self, path: Path) -> str:
        return os.path.realpath(path)


@pytest.fixture
def cvmfs(tmp_path: Path) -> Cvmfs:
    return Cvmfs(tmp_path / "cvmfs")


def make_context(tmp_path: Path, values: dict[str, str], environ: dict[str, str] | None = None,
                 settings: dict[str, dict[str, object]] | None = None,
                 budget: float = 60.0) -> Context:
    """A context whose glidein_config holds ``values``, one per line in the order given."""
    entry = EntryConfig("TEST_ENTRY", settings={
        name: {key: Setting(value, "test.yaml:1") for key, value in items.items()}
        for name, items in (settings or {}).items()})
    text = "".join(f"{key} {value}\n" for key, value in values.items())
    return Context(entry, glidein_config.parse(text), tmp_path, Deadline(budget), environ or {})


def contribute(context: Context) -> dict[str, Image]:
    return {image.platform: image for image in plugin.glidein_images_contribute(context)}


def notes(context: Context) -> str:
    return "\n".join(event.message for event in context.trace)


# -- sources ------------------------------------------------------------------------------------


def test_osg_defaults_are_rebased_and_resolved_to_one_revision(tmp_path, cvmfs):
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(cvmfs.root)})
    images = contribute(context)
    assert list(images) == ["rhel9", "rhel8", "rhel7"]
    # el9's tag links to /cvmfs/...: followed under CVMFS_MOUNT_DIR, as cvmfs_resolve_path does
    assert images["rhel9"].uri == cvmfs.real(cvmfs.el9)
    assert images["rhel8"].uri == cvmfs.real(cvmfs.el8)
    assert images["rhel7"].uri == cvmfs.real(cvmfs.el7)
    # the configured path is kept beside the real one
    assert images["rhel9"].source == f"OSG default, configured as {OSG}/osgvo-el9:latest"
    assert f"rhel9: {OSG}/osgvo-el9:latest -> {cvmfs.real(cvmfs.el9)} (OSG default) usable" \
        in notes(context)


def test_osg_defaults_only_when_nothing_is_configured(tmp_path, cvmfs):
    image = cvmfs.repo / "a"
    configured = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(cvmfs.root),
                                         "SINGULARITY_IMAGES_DICT": f"default:{image}"})
    assert [(i.platform, i.uri) for i in contribute(configured).values()] == [
        ("default", str(image))]
    switched_off = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(cvmfs.root)},
                                settings={"images": {"osg_defaults": False}})
    assert contribute(switched_off) == {}


def test_legacy_variables_override_the_dict(tmp_path, cvmfs):
    a, b, c, d = (cvmfs.repo / name for name in "abcd")
    context = make_context(tmp_path, {
        "CVMFS_MOUNT_DIR": str(cvmfs.root),
        "SINGULARITY_IMAGES_DICT": f"rhel7:{a},rhel6:{b},rhel7:{a}",
        "SINGULARITY_IMAGE_DEFAULT7": str(c),
    }, environ={"SINGULARITY_IMAGE_DEFAULT": str(d)})
    assert {p: (i.uri, i.source) for p, i in contribute(context).items()} == {
        "rhel7": (str(c), "SINGULARITY_IMAGE_DEFAULT7"),
        "rhel6": (str(b), "SINGULARITY_IMAGES_DICT"),
        "default": (str(d), "SINGULARITY_IMAGE_DEFAULT"),  # read from the environment
    }


def test_glidein_config_wins_over_the_environment(tmp_path, cvmfs):
    context = make_context(
        tmp_path, {"SINGULARITY_IMAGES_DICT": f"rhel9:{cvmfs.repo / 'a'}",
                   "CVMFS_MOUNT_DIR": str(cvmfs.root)},
        environ={"SINGULARITY_IMAGES_DICT": f"rhel9:{cvmfs.repo / 'b'}",
                 "CVMFS_MOUNT_DIR": "/elsewhere"})
    assert contribute(context)["rhel9"].uri == str(cvmfs.repo / "a")


# -- restrictions -------------------------------------------------------------------------------


@pytest.mark.parametrize("restrictions, usable", [
    (None, ["cv", "sif"]),
    ("cvmfs", ["cv", "sif"]),
    ("remote", ["cv", "sif", "local", "registry"]),
    ("cvmfs,remote", ["cv", "sif", "registry"]),
    (" CVMFS , any ", ["cv", "sif"]),
])
def test_restrictions(tmp_path, cvmfs, restrictions, usable):
    local = tmp_path / "local" / "el9"
    local.mkdir(parents=True)
    images = {
        "cv": "/cvmfs/images.example.org/a",  # rebased on CVMFS_MOUNT_DIR
        "sif": "/cvmfs/images.example.org/el9.sif",
        "local": str(local),
        "registry": "docker://hub.example.org/el9:tag",
        "gone": "/cvmfs/images.example.org/gone",
        "relative": "images/el9.sif",
        "empty": "",
    }
    values = {"CVMFS_MOUNT_DIR": str(cvmfs.root),
              "SINGULARITY_IMAGES_DICT": ",".join(f"{k}:{v}" for k, v in images.items())}
    if restrictions is not None:
        values["SINGULARITY_IMAGE_RESTRICTIONS"] = restrictions
    context = make_context(tmp_path, values)
    found = contribute(context)
    assert list(found) == usable
    assert found["sif"].uri == str(cvmfs.repo / "el9.sif")
    trace = notes(context)
    assert "command failed" not in trace  # stat's exit 1 for a missing path is an answer
    assert ("gone: /cvmfs/images.example.org/gone -> " f"{cvmfs.repo / 'gone'} "
            "(SINGULARITY_IMAGES_DICT) unusable: does not exist") in trace
    assert "relative: images/el9.sif (SINGULARITY_IMAGES_DICT) refused: neither an absolute " \
        "path nor a registry URI" in trace
    assert "empty: - (SINGULARITY_IMAGES_DICT) refused: empty image URI" in trace
    if "local" not in usable:
        assert f"local: {local} (SINGULARITY_IMAGES_DICT) refused: not in CVMFS" in trace
    if "registry" not in usable:
        assert "registry: docker://hub.example.org/el9:tag (SINGULARITY_IMAGES_DICT) refused: " \
            "remote image: SINGULARITY_IMAGE_RESTRICTIONS does not include 'remote'" in trace


@pytest.mark.parametrize("test_image, usable, note", [
    ("TEST_DIR", True, "the probe's test image TEST_DIR serves as 'default'"),
    ("docker://hub.example.org/t:1", True,
     "the probe's test image docker://hub.example.org/t:1 serves as 'default'"),
    ("/nowhere/test.sif", False,
     "no usable image, and the test image /nowhere/test.sif is unusable: does not exist"),
    ("", False, "SINGULARITY_IMAGE_RESTRICTIONS includes 'test' but the probe has no "
                "test_image setting"),
])
def test_restriction_test_falls_back_on_the_probe_test_image(tmp_path, cvmfs, test_image,
                                                             usable, note):
    test_dir = tmp_path / "test-image"
    test_dir.mkdir()
    test_image, note = (text.replace("TEST_DIR", str(test_dir)) for text in (test_image, note))
    context = make_context(tmp_path, {
        "CVMFS_MOUNT_DIR": str(cvmfs.root),
        "SINGULARITY_IMAGES_DICT": "rhel9:/cvmfs/images.example.org/gone",
        "SINGULARITY_IMAGE_RESTRICTIONS": "cvmfs,test",
    }, settings={"probe": {"test_image": test_image}})
    found = list(plugin.glidein_images_contribute(context))
    assert found == ([Image("default", test_image, "test image (settings.probe.test_image)")]
                     if usable else [])
    assert note in notes(context)


def test_restriction_test_is_not_used_while_an_image_is_usable(tmp_path, cvmfs):
    context = make_context(tmp_path, {
        "CVMFS_MOUNT_DIR": str(cvmfs.root),
        "SINGULARITY_IMAGES_DICT": f"rhel9:{cvmfs.repo / 'a'}",
        "SINGULARITY_IMAGE_RESTRICTIONS": "test",
    }, settings={"probe": {"test_image": "docker://hub.example.org/test:1"}})
    assert list(contribute(context)) == ["rhel9"]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, environ, failure_type, message", [
    ({"SINGULARITY_IMAGE_RESTRICTIONS": "cvmfs,nope,Remote"}, {}, FailureType.CONFIG,
     "glidein_config:2: SINGULARITY_IMAGE_RESTRICTIONS='cvmfs,nope,Remote': unknown "
     "restriction nope (known: cvmfs, remote, test, any)"),
    ({}, {"SINGULARITY_IMAGE_RESTRICTIONS": "cvfms"}, FailureType.CONFIG,
     "environment: SINGULARITY_IMAGE_RESTRICTIONS='cvfms': unknown restriction cvfms"),
    ({"SINGULARITY_IMAGES_DICT": "rhel9:/cvmfs/a,:/cvmfs/b"}, {}, FailureType.VO_CONFIG,
     "glidein_config:2: SINGULARITY_IMAGES_DICT: images dict item ':/cvmfs/b' has no "
     "platform key"),
    ({}, {"SINGULARITY_IMAGES_DICT": "rhel9:/cvmfs/a\nrhel8:/cvmfs/b"}, FailureType.VO_CONFIG,
     "environment: SINGULARITY_IMAGES_DICT: the images dict holds a newline"),
])
def test_bad_configuration_fails_naming_where(tmp_path, values, environ, failure_type,
                                              message):
    context = make_context(tmp_path, {"GLIDEIN_Entry_Name": "TEST_ENTRY", **values}, environ)
    with pytest.raises(GlideinFailure) as caught:
        plugin.glidein_images_contribute(context)
    assert caught.value.failure_type is failure_type
    assert message in caught.value.message


@pytest.mark.parametrize("settings, message", [
    ({"osg_defaults": "no"}, "test.yaml:1: settings.images.osg_defaults: expected true or "
                             "false, got 'no'"),
    ({"timeout": 0}, "test.yaml:1: settings.images.timeout: expected a positive number"),
    ({"timeout": "fast"}, "test.yaml:1: settings.images.timeout: expected a positive"),
    ({"timeout": float("nan")}, "settings.images.timeout: expected a positive number"),
    ({"timeout": 10**400}, "settings.images.timeout: expected a positive number"),
    ({"timout": 5}, "settings.images.timout: unknown setting (expected one of: "),
])
def test_bad_settings_fail_naming_where(tmp_path, settings, message):
    context = make_context(tmp_path, {}, settings={"images": settings})
    with pytest.raises(GlideinFailure) as caught:
        plugin.glidein_images_contribute(context)
    assert caught.value.failure_type is FailureType.CONFIG
    assert message in caught.value.message


def test_an_image_that_cannot_be_advertised_is_dropped(tmp_path, cvmfs):
    quoted = cvmfs.repo / "it's"
    quoted.mkdir()
    context = make_context(tmp_path, {
        "CVMFS_MOUNT_DIR": str(cvmfs.root),
        "SINGULARITY_IMAGES_DICT": f"rhel9:{quoted},rhel8:{cvmfs.repo / 'a'}"})
    assert list(contribute(context)) == ["rhel8"]
    assert f"rhel9: {quoted} (SINGULARITY_IMAGES_DICT) unusable: cannot be advertised" \
        in notes(context)


# -- a stale CVMFS ------------------------------------------------------------------------------


def test_a_resolver_that_hangs_leaves_only_what_it_had_not_answered(tmp_path, cvmfs,
                                                                    monkeypatch):
    """The resolver as a stale repository leaves it: it answers for the first image (a link
    to a real directory), then hangs reading the second link (``readlink`` stuck on the dead
    mount); killed at the timeout, the second image is reported unchecked."""
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / "readlink").write_text('#!/bin/sh\ncase $2 in */link-b) exec sleep 86400 ;; esac\n'
                                    'exec /usr/bin/readlink "$@"\n')
    (fakes / "readlink").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fakes}:{os.environ['PATH']}")
    a, b = cvmfs.repo / "link-a", cvmfs.repo / "link-b"
    a.symlink_to("a")
    b.symlink_to("b")
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(cvmfs.root),
                                      "SINGULARITY_IMAGES_DICT": f"rhel9:{a},rhel8:{b}"},
                           settings={"images": {"timeout": 1.0}})
    started = time.monotonic()
    found = contribute(context)
    assert list(found) == ["rhel9"] and found["rhel9"].uri == str(cvmfs.repo / "a")
    assert time.monotonic() - started < 15  # the timeout is 1 s; generous for a loaded machine
    trace = notes(context)
    assert "CVMFS images not resolved to their real paths: " in trace
    assert f"rhel8: {b} (SINGULARITY_IMAGES_DICT) unusable: could not be checked: " \
           "/bin/sh: timed out" in trace


def test_a_hanging_stat_ends_within_the_timeout(tmp_path, cvmfs, fake_bin_dir, monkeypatch):
    fake_bin_dir.install_stat()
    monkeypatch.setenv("PATH", f"{fake_bin_dir.dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_STAT_HANG", str(cvmfs.root))
    context = make_context(tmp_path, {"CVMFS_MOUNT_DIR": str(cvmfs.root)},
                           settings={"images": {"timeout": 1.0}})
    started = time.monotonic()
    assert contribute(context) == {}
    assert time.monotonic() - started < 15  # the timeout is 1 s; generous for a loaded machine
    assert "unusable: could not be checked: stat: timed out" in notes(context)


# -- selection ----------------------------------------------------------------------------------

IMAGES = (Image("rhel8", "/i/8"), Image("rhel9", "/i/9"), Image("default", "/i/d"))


@pytest.mark.parametrize("platforms, chosen", [
    (("rhel9", "rhel8"), "rhel9"),
    (("rhel8", "rhel9"), "rhel8"),
    (("rhel7", "default", "rhel9"), "default"),
    (("rhel7",), None),
    ((), None),
])
def test_image_select_keeps_the_order_of_preference(platforms, chosen):
    image = plugin.glidein_image_select(Facts(images=IMAGES), platforms)
    assert (image.platform if image else None) == chosen


RUNTIME_PLUGIN = """
from glidein_plugins import RuntimeCandidate, RuntimeProbe, hookimpl

@hookimpl
def glidein_runtime_discover():
    return [RuntimeCandidate("/opt/test/bin/apptainer", "test")]

@hookimpl
def glidein_runtime_probe(candidate):
    return RuntimeProbe(candidate, True, version="1.3.4", flavour="apptainer",
                        privilege="unprivileged")
"""
OURS = ("mode", "images", "singularity")
OTHERS = tuple(name for name in BUILTINS if name not in OURS)


def test_the_runner_chooses_the_jobs_first_platform(tmp_path, cvmfs):
    site = tmp_path / "site"
    site.mkdir()
    (site / "test_runtime.py").write_text(RUNTIME_PLUGIN)
    entry = EntryConfig("TEST_ENTRY", disable=OTHERS, directories=(str(site),))
    config = glidein_config.parse(textwrap.dedent(f"""\
        GLIDEIN_Singularity_Use PREFERRED
        CVMFS_MOUNT_DIR {cvmfs.root}
        SINGULARITY_IMAGES_DICT rhel8:{cvmfs.repo / 'a'},rhel9:{cvmfs.repo / 'b'}
        GLIDEIN_REQUIRED_OS rhel8,rhel9
        REQUIRED_OS rhel9,rhel8
        """))
    context = Context(entry, config, tmp_path, Deadline(60), {})
    report = Runner(manager.build(entry, {}), context).setup()
    assert report.failure is None
    assert report.facts.image == Image("rhel9", str(cvmfs.repo / "b"), "SINGULARITY_IMAGES_DICT")
    assert any(event.message == f"default image for rhel9,rhel8: rhel9 {cvmfs.repo / 'b'}"
               for event in report.trace)


# -- a whole setup: GLIDEIN_REQUIRED_OS is never written ----------------------------------------


def test_setup_publishes_usable_images_and_leaves_glidein_required_os(tmp_path, cvmfs,
                                                                     classad2):
    site = tmp_path / "site"
    site.mkdir()
    (site / "test_runtime.py").write_text(RUNTIME_PLUGIN)
    factory = tmp_path / "factory.yaml"
    factory.write_text(textwrap.dedent(f"""\
        version: 1
        defaults:
          plugins:
            disable: [{", ".join(OTHERS)}]
            directories: [{site}]
        """))
    work = make_work_dir(tmp_path / "work", {
        "GLIDEIN_Singularity_Use": "PREFERRED",
        "GLIDEIN_REQUIRED_OS": "rhel8,rhel9",
        "CVMFS_MOUNT_DIR": str(cvmfs.root),
        "SINGULARITY_IMAGES_DICT": f"rhel8:{OSG}/osgvo-el8:latest,rhel7:/cvmfs/gone",
    })
    before = (work / "glidein_config").read_text()
    proc = run_cli(["setup", "--config", str(factory), "glidein_config", "entry"], work,
                   env={"PATH": "/usr/bin:/bin"})
    result = glidein_result(proc, work)
    assert result.exit_code == 0, (proc.stdout, proc.stderr)
    lines = (work / "glidein_config").read_text().splitlines()
    assert [line for line in lines if line.startswith("GLIDEIN_REQUIRED_OS ")] == [
        "GLIDEIN_REQUIRED_OS rhel8,rhel9"]
    assert "GLIDEIN_REQUIRED_OS rhel8,rhel9" in before
    history = work / "glidein_config.history"
    assert "GLIDEIN_REQUIRED_OS" not in (history.read_text() if history.exists() else "")
    assert "GLIDEIN_REQUIRED_OS" not in result.condor_vars
    machine = startd_values(result, classad2)
    assert machine["SINGULARITY_IMAGES_DICT"] == f"rhel8:{cvmfs.real(cvmfs.el8)}"


@pytest.mark.parametrize("uri", ["/cvmfs/../tmp/img", "/cvmfs/repo/../../etc"])
def test_dot_dot_cannot_leave_cvmfs(uri: str) -> None:
    allowed = frozenset({"cvmfs"})
    assert "'..'" in refusal(uri, allowed, "/cvmfs")


def test_a_cvmfs_link_leading_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cvmfs"
    (root / "repo").mkdir(parents=True)
    outside = tmp_path / "outside-image"
    outside.mkdir()
    (root / "repo" / "el9").symlink_to(outside)
    work = tmp_path / "work"
    work.mkdir()
    text = f"CVMFS_MOUNT_DIR {root}\nSINGULARITY_IMAGES_DICT rhel9:/cvmfs/repo/el9\n"
    context = Context(EntryConfig("TEST"), glidein_config.parse(text), work, Deadline(30),
                      {"PATH": "/usr/bin:/bin"})
    assert plugin.glidein_images_contribute(context) == []
    assert any("refused" in event.message and str(outside) in event.message
               for event in context.trace)


# ---- a missing image: warning by default, fatal by opt-in (issue 14) -----------------------------

def _context(tmp_path: Path, values: str, settings: dict[str, object] | None = None) -> Context:
    entry = EntryConfig("TEST", settings={"images": {
        key: Setting(value, "entry.yaml:3") for key, value in (settings or {}).items()}})
    return Context(entry, glidein_config.parse(values), tmp_path, Deadline(60), {})


@pytest.mark.parametrize(("value", "required"), [
    ("", False), ("false", False), ("FALSE", False), (" false ", False),
    # the reference compares the lower-cased value with "false": anything else requires one
    ("true", True), ("True", True), ("1", True), ("0", True), ("no", True),
])
def test_singularity_image_required_reads_as_the_reference(tmp_path, value, required):
    context = _context(tmp_path, f"SINGULARITY_IMAGE_REQUIRED {value}\n")
    found = image_checks.required_by(context, Facts())
    assert bool(found) is required
    if required:
        assert found.startswith(f"SINGULARITY_IMAGE_REQUIRED={value.strip()} (glidein_config:1)")


def test_singularity_image_required_is_met_by_an_image_of_a_common_platform(tmp_path):
    context = _context(tmp_path, "SINGULARITY_IMAGE_REQUIRED true\n")
    assert image_checks.required_by(context, Facts(images=(Image("rhel7", "/cvmfs/x"),))) == ""
    assert image_checks.required_by(context, Facts(images=(Image("el9", "/cvmfs/x"),))) != ""


def test_require_platform_image_names_its_setting(tmp_path):
    context = _context(tmp_path, "", {"require_platform_image": True})
    assert image_checks.required_by(context, Facts(images=(Image("rhel9", "/cvmfs/x"),))) == (
        "entry.yaml:3: settings.images.require_platform_image is true (an image for the node's "
        "own platforms is required)")
    image = Image("rhel9", "/cvmfs/x")
    assert image_checks.required_by(context, Facts(images=(image,), image=image)) == ""


def test_what_is_missing_names_platforms_lists_restrictions_and_verdicts(tmp_path):
    context = _context(tmp_path, "GLIDEIN_REQUIRED_OS rhel9,rhel8\n"
                                 "SINGULARITY_IMAGE_RESTRICTIONS cvmfs,remote\n")
    context.state("images")["verdicts"] = {"rhel9": "/x (SINGULARITY_IMAGES_DICT) unusable: "
                                                    "does not exist"}
    summary, details = image_checks.missing(context, Facts(), ["rhel9", "rhel8"])
    assert summary == ("no usable image for platforms rhel9,rhel8 (GLIDEIN_REQUIRED_OS="
                       "rhel9,rhel8 meeting REQUIRED_OS=any) after SINGULARITY_IMAGE_RESTRICTIONS"
                       "=cvmfs,remote (usable: none)")
    assert details == ("rhel9: /x (SINGULARITY_IMAGES_DICT) unusable: does not exist; "
                       "none configured for rhel8")
    assert image_checks.missing(context, Facts(), []) == (
        "GLIDEIN_REQUIRED_OS=rhel9,rhel8 and REQUIRED_OS=any have no platform in common, so no "
        "image serves this node", "")
