"""The built-in ``binds`` plugin on real directory trees: GlideinWMS's merge order, CVMFS
rebasing, malformed lists naming their line, refusals with reasons, the missing-target check in
a directory image, de-duplication by the runner, and 10,000 binds checked by one ``stat``."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from glidein_plugins.builtin import binds as plugin
from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.engine import manager
from glidein_plugins.engine.registry import BUILTINS
from glidein_plugins.engine.runner import Runner
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline
from glidein_plugins.spec.results import (
    Bind,
    Facts,
    GpuDevice,
    Image,
    RuntimeCandidate,
    RuntimeProbe,
)

DEFAULTS = [Bind(path, origin="default") for path in (
    "/hadoop", "/ceph", "/hdfs", "/lizard", "/mnt/hadoop", "/mnt/hdfs", "/etc/hosts",
    "/etc/localtime")]
FE, FACTORY = "GLIDEIN_SINGULARITY_BINDPATH", "GLIDEIN_SINGULARITY_BINDPATH_DEFAULT"


def make_context(tmp_path: Path, values: dict[str, str], environ: dict[str, str] | None = None,
                 timeout: object = None) -> Context:
    """A context whose glidein_config holds ``values``, one per line in the order given."""
    settings = {} if timeout is None else {"binds": {"timeout": Setting(timeout, "test.yaml:1")}}
    text = "".join(f"{key} {value}\n" for key, value in values.items())
    return Context(EntryConfig("TEST_ENTRY", settings=settings), glidein_config.parse(text),
                   tmp_path, Deadline(60), environ or {})


def runtime(missing_target: bool | None) -> RuntimeProbe:
    features = {} if missing_target is None else {"missing_target": missing_target}
    return RuntimeProbe(RuntimeCandidate("/opt/bin/apptainer", "test"), True, features=features)


def refused(verdicts: list) -> dict[Bind, str]:
    assert all(not verdict.ok for verdict in verdicts)
    return {verdict.bind: verdict.reason for verdict in verdicts}


# -- what is offered ----------------------------------------------------------------------------


@pytest.mark.parametrize("cvmfs_root, gpus", [("", False), ("/opt/cvmfs", True)])
def test_offered_in_glideinwms_order(tmp_path, cvmfs_root, gpus):
    values = {FE: "/fe/data, /cvmfs/repo.org/x:/x:ro, /cvmfs/repo.org/y"}
    if cvmfs_root:
        values["CVMFS_MOUNT_DIR"] = cvmfs_root
    context = make_context(tmp_path, values, environ={FACTORY: "/site/scratch:/scratch:rw"})
    facts = Facts(gpus=(GpuDevice("nvidia", "A100"),) if gpus else ())
    root = cvmfs_root or "/cvmfs"
    expected = [
        Bind("/fe/data", origin=FE),
        Bind(f"{root}/repo.org/x", "/x", "ro", FE),  # /cvmfs sources rebased
        Bind(f"{root}/repo.org/y", "" if root == "/cvmfs" else "/cvmfs/repo.org/y", "", FE),
        Bind("/site/scratch", "/scratch", "rw", FACTORY),  # from the environment
        *DEFAULTS,
        Bind(root, "" if root == "/cvmfs" else "/cvmfs", origin="CVMFS"),
        *([Bind("/etc/OpenCL/vendors", origin="GPU")] if gpus else []),
    ]
    assert plugin.glidein_binds_contribute(context, facts) == expected


def test_glidein_config_wins_over_the_environment(tmp_path):
    context = make_context(tmp_path, {FACTORY: "/from/config"},
                           environ={FACTORY: "/from/env", FE: "/fe/env"})
    offered = plugin.glidein_binds_contribute(context, Facts())
    assert offered[:2] == [Bind("/fe/env", origin=FE), Bind("/from/config", origin=FACTORY)]


@pytest.mark.parametrize("values, environ, failure_type, message", [
    ({FE: "/ok,relative/dir"}, {}, FailureType.VO_CONFIG,
     "glidein_config:2: GLIDEIN_SINGULARITY_BINDPATH (Frontend): bind 'relative/dir': the "
     "source must be an absolute path"),
    ({FACTORY: "/a:/b:rx"}, {}, FailureType.CONFIG,
     "glidein_config:2: GLIDEIN_SINGULARITY_BINDPATH_DEFAULT (Factory): bind '/a:/b:rx': "
     "option 'rx' is not one of ro, rw"),
    ({}, {FACTORY: "/a:/b:/c:/d"}, FailureType.CONFIG,
     "environment: GLIDEIN_SINGULARITY_BINDPATH_DEFAULT (Factory): bind '/a:/b:/c:/d': "
     "expected src[:dst[:opts]]"),
    ({}, {FE: "/a\n/b"}, FailureType.VO_CONFIG,
     "environment: GLIDEIN_SINGULARITY_BINDPATH (Frontend): the bind list holds a newline"),
])
def test_a_malformed_list_fails_naming_where(tmp_path, values, environ, failure_type, message):
    context = make_context(tmp_path, {"GLIDEIN_Entry_Name": "TEST_ENTRY", **values}, environ)
    with pytest.raises(GlideinFailure) as caught:
        plugin.glidein_binds_contribute(context, Facts())
    assert caught.value.failure_type is failure_type
    assert caught.value.message.startswith(message), caught.value.message


# -- validation ---------------------------------------------------------------------------------


def test_refusals_and_their_reasons(tmp_path):
    present = tmp_path / "present"
    present.mkdir()
    binds = [
        Bind(str(present)),
        Bind(str(present), "/srv"),
        Bind(str(present), "/proc/"),
        Bind(str(present), "/"),
        Bind(str(tmp_path / "absent"), "/data"),
        Bind("relative", "/rel"),  # a VO plugin's mistakes
        Bind(str(present), "/a,b"),
        Bind(str(present), "/x/../etc"),
    ]
    verdicts = plugin.glidein_binds_validate(make_context(tmp_path, {}), Facts(), binds)
    assert refused(verdicts) == {
        binds[1]: "destination /srv would mask the container's own directory",
        binds[2]: "destination /proc/ would mask the container's own directory",
        binds[3]: "destination / would mask the container's own directory",
        binds[4]: f"source {tmp_path / 'absent'} does not exist",
        binds[5]: "source 'relative' is not an absolute path without '..'",
        binds[6]: "bind path '/a,b' cannot be written in a bind list",
        binds[7]: "destination '/x/../etc' is not an absolute path without '..'",
    }


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A directory image holding /etc/hosts and /cvmfs, but no /hadoop."""
    image = tmp_path / "image"
    (image / "etc").mkdir(parents=True)
    (image / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (image / "cvmfs").mkdir()
    return image


@pytest.mark.parametrize("missing_target, image, checked", [
    (False, "DIR", True),
    (True, "DIR", False),  # the runtime creates missing targets (underlay/overlay)
    (None, "DIR", False),  # the probe did not say: not checked
    (False, "SIF", False),  # an image file: its content is not looked at
    (False, "docker://hub.example.org/el9:1", False),
])
def test_destinations_missing_in_a_directory_image(tmp_path, image_dir, missing_target, image,
                                                   checked):
    sif = tmp_path / "el9.sif"
    sif.write_text("SIF")
    image = image.replace("DIR", str(image_dir)).replace("SIF", str(sif))
    source = tmp_path / "source"
    source.mkdir()
    binds = [Bind(str(source), "/etc/hosts"), Bind(str(source), "/cvmfs"),
             Bind(str(source), "/hadoop")]
    facts = Facts(runtime=runtime(missing_target), image=Image("rhel9", image))
    verdicts = plugin.glidein_binds_validate(make_context(tmp_path, {}), facts, binds)
    assert refused(verdicts) == ({binds[2]: (
        f"destination /hadoop does not exist in image {image}, and the runtime cannot bind "
        "onto a missing target (no underlay/overlay)")} if checked else {})


@pytest.mark.parametrize("timeout", ["soon", float("nan"), 10**400, 0])
def test_bad_timeout_setting_fails_naming_where(tmp_path, timeout):
    with pytest.raises(GlideinFailure) as caught:
        plugin.glidein_binds_validate(make_context(tmp_path, {}, timeout=timeout), Facts(), [])
    assert caught.value.failure_type is FailureType.CONFIG
    assert caught.value.message == ("test.yaml:1: settings.binds.timeout: expected a positive "
                                    f"number of seconds, got {timeout!r}")


def test_ten_thousand_binds_take_one_stat(tmp_path, monkeypatch):
    """Every path (all on one mount) goes to one ``stat`` process: counted by a ``stat`` on
    PATH that logs each start and runs the real one."""
    real_stat = shutil.which("stat")
    assert real_stat is not None
    log = tmp_path / "stat.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "stat"
    wrapper.write_text(f'#!/bin/sh\necho started >> "{log}"\nexec "{real_stat}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sources = [tmp_path / f"s{n}" for n in range(100)]
    for source in sources:
        source.mkdir()
    binds = [Bind(str(sources[n % 100] if n % 2 else tmp_path / "gone" / str(n)), f"/d/{n}")
             for n in range(10_000)]
    verdicts = plugin.glidein_binds_validate(make_context(tmp_path, {}), Facts(), binds)
    assert log.read_text().splitlines() == ["started"]
    assert {bind.target for bind in refused(verdicts)} == {f"/d/{n}" for n in range(0, 10_000, 2)}


# -- through the runner -------------------------------------------------------------------------

SITE_PLUGIN = """
from glidein_plugins import GpuDevice, RuntimeCandidate, RuntimeProbe, hookimpl

@hookimpl
def glidein_runtime_discover():
    return [RuntimeCandidate("/opt/test/bin/apptainer", "test")]

@hookimpl
def glidein_runtime_probe(candidate):
    return RuntimeProbe(candidate, True, version="1.3.4", flavour="apptainer",
                        privilege="unprivileged", features={"missing_target": False})

@hookimpl
def glidein_gpu_detect():
    return [GpuDevice("nvidia", "A100", uuid="GPU-1")]
"""
OURS = ("mode", "images", "binds", "singularity")


def run_setup(tmp_path: Path, config: str) -> tuple[Facts, str]:
    """A setup with our built-ins and a site plugin (a runtime that cannot bind onto missing
    targets, one GPU): the facts and the trace, one line per event."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "test_site.py").write_text(SITE_PLUGIN)
    entry = EntryConfig("TEST_ENTRY", directories=(str(site),),
                        disable=tuple(name for name in BUILTINS if name not in OURS))
    context = Context(entry, glidein_config.parse(textwrap.dedent(config)), tmp_path,
                      Deadline(60), {})
    report = Runner(manager.build(entry, {}), context).setup()
    assert report.failure is None, report.failure
    messages = "\n".join(f"{event.plugin}: {event.message}" for event in report.trace)
    return report.facts, messages


def test_runner_keeps_the_first_bind_per_destination_and_checks_the_image(tmp_path,
                                                                          image_dir):
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    facts, messages = run_setup(tmp_path, f"""\
        GLIDEIN_Singularity_Use PREFERRED
        SINGULARITY_IMAGES_DICT rhel9:{image_dir}
        SINGULARITY_IMAGE_RESTRICTIONS remote
        {FE} {data}:/cvmfs,/etc/hosts
        {FACTORY} {other}:/cvmfs:ro,{other}:/hadoop
        """)
    assert facts.image == Image("rhel9", str(image_dir), "SINGULARITY_IMAGES_DICT")
    kept = {bind.destination: bind for bind in facts.binds}
    assert kept["/cvmfs"] == Bind(str(data), "/cvmfs", origin=FE)  # the Frontend's came first
    assert kept["/etc/hosts"] == Bind("/etc/hosts", origin=FE)
    for loser, origin, winner, winner_origin in [
        (f"{other} -> /cvmfs", FACTORY, data, FE),
        ("/cvmfs -> /cvmfs", "CVMFS", data, FE),
        ("/etc/hosts -> /etc/hosts", "default", "/etc/hosts", FE),
        ("/hadoop -> /hadoop", "default", other, FACTORY),
    ]:
        assert f"{loser} ({origin}) dropped: {winner} ({winner_origin}) binds there first" \
            in messages
    rejected = {verdict.bind.destination: verdict.reason for verdict in facts.rejected_binds}
    assert rejected["/hadoop"] == (
        f"binds: destination /hadoop does not exist in image {image_dir}, and the runtime "
        "cannot bind onto a missing target (no underlay/overlay)")
    # the GPU plugin found a GPU: the OpenCL vendor directory is offered, kept or refused
    assert "/etc/OpenCL/vendors" in {*kept, *rejected}
