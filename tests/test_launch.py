"""The container invocation for a job (``glidein_plugins.jobstart.launch.build``) and the built-in
``launch`` plugin: every rule, on real files (a fake CVMFS tree with real symlinks; the image's
real path is found by the real bounded child process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, FakeCvmfs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glidein_plugins.config.model import EntryConfig
from glidein_plugins.engine import manager
from glidein_plugins.engine.calls import Stop
from glidein_plugins.engine.runner import Runner
from glidein_plugins.gpu import assignment, container
from glidein_plugins.jobstart import launch, launch_env, setup_state
from glidein_plugins.jobstart import settings as launch_config
from glidein_plugins.jobstart.records import (
    BindState,
    ImageState,
    ModeState,
    RuntimeState,
    SetupState,
)
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.protocol.htcondor.job_ad import Ad
from glidein_plugins.spec import results
from glidein_plugins.spec.context import Context, Deadline

RUNTIME = "/opt/apptainer/bin/apptainer"
PROD = ["--ipc", "--contain", "--pid"]


def node_state(fake_cvmfs: FakeCvmfs, tmp_path: Path, **changes) -> SetupState:
    """What setup decided on a PREFERRED node: a proven runtime, the fake CVMFS images."""
    images = [ImageState(key, str(fake_cvmfs.images[key]), "dict") for key in ("rhel9", "rhel8")]
    state = SetupState(
        entry="E", work_dir=str(tmp_path / "glide"), mode=ModeState("PREFERRED"),
        has_singularity=True,
        runtime=RuntimeState(RUNTIME, version="1.3.4", features={
            "nested": False, "contain": True, "pid_namespaces": True}),
        images=images, default_image=images[0],
        binds=[BindState(str(fake_cvmfs.root), "/cvmfs"), BindState("/etc/hosts"),
               BindState("/data", "/mnt/data", "ro")],
        launch=dict(launch_config.SETTINGS), tmp_dir=str(tmp_path / "glide" / "tmp"),
        required_os="rhel9,rhel8", restrictions=["cvmfs"], cvmfs_root=str(fake_cvmfs.root))
    return state.replace(**changes)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """The job's sandbox (its cwd), with characters a shell would mangle."""
    path = tmp_path / "execute" / "dir_1 $x'\"y"
    path.mkdir(parents=True)
    return path


def job(sandbox: Path, *argv: str, job_ad: dict | None = None,
        machine_ad: dict | None = None) -> launch.JobRequest:
    return launch.JobRequest(argv or (f"{sandbox}/job.sh",), Ad(job_ad or {}),
                             Ad(machine_ad or {}), str(sandbox))


def built(state: SetupState, request, **environ: str) -> launch.Invocation:
    found = launch.build(state, request, environ)
    assert isinstance(found, launch.Invocation), found
    return found


def refused(state: SetupState, request, **environ: str) -> launch.Refusal:
    found = launch.build(state, request, environ)
    assert isinstance(found, launch.Refusal), found
    assert "\n" not in found.reason
    return found


def options(invocation: launch.Invocation) -> list[str]:
    """The options between ``exec`` and the image."""
    argv = list(invocation.argv)
    return argv[2:argv.index(invocation.image)]


def pairs(invocation: launch.Invocation) -> dict[str, str]:
    """What goes into the container by name: APPTAINERENV_X and SINGULARITYENV_X agree."""
    apptainer = {name[len("APPTAINERENV_"):]: value for name, value in invocation.env.items()
                 if name.startswith("APPTAINERENV_")}
    singularity = {name[len("SINGULARITYENV_"):]: value
                   for name, value in invocation.env.items()
                   if name.startswith("SINGULARITYENV_")}
    assert apptainer == singularity
    return apptainer


def test_the_invocation_uses_the_production_options(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                    sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path)
    found = built(state, job(sandbox, f"{sandbox}/job.sh", "a b", ""),
                  HOME="/home/pilot", PATH="/home/pilot/bin:/usr/bin", LD_LIBRARY_PATH="/x",
                  KEEP="me", APPTAINER_CACHEDIR="/home/pilot/.apptainer/cache")
    image = str(fake_cvmfs.images["rhel9"])
    assert found.argv == (RUNTIME, "exec", "--home", f"{sandbox}:/srv", "--pwd", "/srv", *PROD,
                          "--bind", f"{fake_cvmfs.root}:/cvmfs,/etc/hosts,/data:/mnt/data:ro",
                          image, "/srv/job.sh", "a b", "")
    assert found.image == image and found.warnings == ()
    assert pairs(found) == {"GWMS_SINGULARITY_REEXEC": "1"}
    env = found.env
    assert (env["KEEP"], env["HOME"], env["PATH"]) == ("me", "/home/pilot", launch_env.CLEAN_PATH)
    assert "LD_LIBRARY_PATH" not in env
    # the runtime's caches under the glidein's tmp dir, whatever the environment said
    tmp = tmp_path / "glide" / "tmp" / "apptainer"
    for prefix in ("APPTAINER", "SINGULARITY"):
        assert env[f"{prefix}_CACHEDIR"] == str(tmp / "cache")
        assert env[f"{prefix}_TMPDIR"] == str(tmp / "tmp")


def test_results_job_request_is_accepted_too(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                             sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path)
    ours = built(state, job(sandbox, "x"))
    theirs = built(state, results.JobRequest(("x",), {}, {}, str(sandbox)))
    assert ours == theirs


# -- the image ----------------------------------------------------------------------------------

def cvmfs_links(fake_cvmfs: FakeCvmfs, tmp_path: Path) -> dict[str, str]:
    """Symlinks in the fake CVMFS, as CVMFS has them: a tag to a revision (relative), an
    absolute /cvmfs link (only right once rebased on the mount), one leaving CVMFS."""
    osg = fake_cvmfs.images["rhel9"].parent
    (osg / "el9-current").symlink_to("osgvo-el9:latest")
    (osg / "el9-absolute").symlink_to(
        "/cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest")
    outside = tmp_path / "outside"
    outside.mkdir()
    (osg / "escape").symlink_to(outside)
    return {"real": str(fake_cvmfs.images["rhel9"]), "outside": str(outside)}


@pytest.mark.parametrize(("image", "restrictions", "expected"), [
    ("/cvmfs/singularity.opensciencegrid.org/opensciencegrid/el9-current", "cvmfs", "real"),
    ("{root}/singularity.opensciencegrid.org/opensciencegrid/el9-current", "cvmfs", "real"),
    ("/cvmfs/singularity.opensciencegrid.org/opensciencegrid/el9-absolute", "cvmfs", "real"),
    ("docker://alpine:3", "cvmfs,remote", "docker://alpine:3"),
    ("{outside}", "any", "outside"),
])
def test_the_job_image_is_checked_and_resolved(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, image: str, restrictions: str,
        expected: str) -> None:
    where = cvmfs_links(fake_cvmfs, tmp_path)
    state = node_state(fake_cvmfs, tmp_path, restrictions=restrictions.split(","))
    asked = image.format(root=fake_cvmfs.root, **where)
    found = built(state, job(sandbox, job_ad={"SingularityImage": f'"{asked}"'}))
    assert found.image == where.get(expected, expected)
    assert found.argv[len(found.argv) - 2] == found.image


@pytest.mark.parametrize(("image", "restrictions", "why"), [
    ("docker://alpine:3", "cvmfs", "is a remote image, and this entry allows local images"),
    ("{outside}", "cvmfs", "is not in CVMFS"),
    ("/cvmfs/singularity.opensciencegrid.org/opensciencegrid/escape", "cvmfs",
     "which is not in CVMFS"),
    ("/cvmfs/singularity.opensciencegrid.org/opensciencegrid/missing", "cvmfs",
     "does not exist"),
    ("images/mine.sif", "any", "neither an absolute path nor a registry URI"),
])
def test_a_forbidden_job_image_is_refused_and_never_replaced(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, image: str, restrictions: str,
        why: str) -> None:
    where = cvmfs_links(fake_cvmfs, tmp_path)
    state = node_state(fake_cvmfs, tmp_path, restrictions=restrictions.split(","))
    found = refused(state, job(sandbox, job_ad={"SingularityImage": f'"{image.format(**where)}"'}))
    assert why in found.reason and not found.fallback_to_host  # the job asked for this image


def test_an_image_expression_is_refused(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                        sandbox: Path) -> None:
    found = refused(node_state(fake_cvmfs, tmp_path), job(sandbox, job_ad={
        "SingularityImage": 'ifThenElse(true, "/cvmfs/a", "/cvmfs/b")'}))
    assert found.reason.startswith("the job's SingularityImage is not a string")


@pytest.mark.parametrize(("required_os", "entry_os", "platform"), [
    ("rhel8,rhel9", "rhel9,rhel8", "rhel8"),  # the job's order of preference is kept
    ("rhel9,rhel8", "rhel8,rhel9", "rhel9"),
    ("rhel7,rhel8", "any", "rhel8"),  # no rhel7 image: the next one
    ("any", "rhel8", "rhel8"),
    (None, "rhel9,rhel8", "default"),  # no REQUIRED_OS: the node's default image
])
def test_required_os_picks_the_image_in_the_jobs_order(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, required_os: str | None,
        entry_os: str, platform: str) -> None:
    state = node_state(fake_cvmfs, tmp_path, required_os=entry_os)
    ad = {} if required_os is None else {"REQUIRED_OS": f'"{required_os}"'}
    found = built(state, job(sandbox, job_ad=ad))
    wanted = state.default_image.uri if platform == "default" else str(
        fake_cvmfs.images[platform])
    assert found.image == wanted


def test_no_image_for_the_required_os_is_refused(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                 sandbox: Path) -> None:
    found = refused(node_state(fake_cvmfs, tmp_path),
                    job(sandbox, job_ad={"REQUIRED_OS": '"rhel6"'}))
    assert found.reason == ("no image here for the job's REQUIRED_OS=rhel6 (GLIDEIN_REQUIRED_OS="
                            "rhel9,rhel8; images: rhel9, rhel8)")
    assert found.fallback_to_host  # PREFERRED, and the job named no image


@pytest.mark.parametrize(("mode", "changes", "ad", "why", "fallback"), [
    ("NEVER", {}, {}, "containers are not used on this glidein (mode NEVER)", True),
    ("PREFERRED", {"runtime": None, "has_singularity": False, "reason": "no runtime\nat all"},
     {}, "no working container runtime on this glidein: no runtime at all", True),
    ("PREFERRED", {"runtime": None, "has_singularity": False}, {"SingularityImage": '"/x"'},
     "no working container runtime", False),
    ("REQUIRED", {"default_image": None}, {},
     "the job names no image and this glidein has no default image", False),
    ("PREFERRED", {"default_image": None}, {}, "no default image", True),
])
def test_refusals_say_why_and_whether_the_host_may_run_the_job(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, mode: str, changes: dict,
        ad: dict, why: str, fallback: bool) -> None:
    state = node_state(fake_cvmfs, tmp_path, mode=ModeState(mode), **changes)
    found = refused(state, job(sandbox, job_ad=ad))
    assert why in found.reason and found.fallback_to_host is fallback


def test_a_sandbox_path_with_a_colon_is_refused(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    sandbox = tmp_path / "a:b"
    sandbox.mkdir()
    assert "holds ':'" in refused(node_state(fake_cvmfs, tmp_path), job(sandbox)).reason


# -- the options --------------------------------------------------------------------------------

def runtime_with(**features: bool) -> RuntimeState:
    return RuntimeState(RUNTIME, features={"nested": False, "contain": True,
                                           "pid_namespaces": True, **features},
                        reasons={"nested": "APPTAINER_CONTAINER is set (/img)"})


@pytest.mark.parametrize(("runtime", "launch_settings", "environ", "ad", "expected"), [
    ({}, {}, {}, {}, PROD),
    ({"pid_namespaces": False}, {}, {}, {}, ["--ipc", "--contain"]),
    ({}, {"pid_namespaces": False}, {}, {}, ["--ipc", "--contain"]),
    ({}, {}, {"SINGULARITY_DISABLE_PID_NAMESPACES": "1"}, {}, ["--ipc", "--contain"]),
    ({}, {}, {}, {"SINGULARITY_DISABLE_PID_NAMESPACES": "true"}, ["--ipc", "--contain"]),
    ({"nested": True, "contain": False, "pid_namespaces": False}, {}, {}, {}, []),
    ({"contain": False, "pid_namespaces": False}, {}, {}, {}, []),  # no devpts
    ({}, {}, {"APPTAINER_CONTAINER": "/outer.sif"}, {}, PROD),  # the job's: setup decides
    ({}, {"extra_options": ["--no-eval", "-C"]}, {}, {}, [*PROD, "--cleanenv", "--no-eval",
                                                          "-C"]),
])
def test_contain_and_pid_only_where_they_work(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, runtime: dict,
        launch_settings: dict, environ: dict, ad: dict, expected: list[str]) -> None:
    state = node_state(fake_cvmfs, tmp_path, runtime=runtime_with(**runtime),
                       launch={**launch_config.SETTINGS, **launch_settings})
    found = built(state, job(sandbox, job_ad=ad), **environ)
    wanted = ["--home", f"{sandbox}:/srv", "--pwd", "/srv", *expected]
    if "--cleanenv" in expected:  # extra options come after the computed ones
        wanted.remove("--cleanenv")
    assert options(found)[:-2] == wanted  # then --bind BINDS


def test_nested_drops_containing_extra_options_with_a_warning(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path,
                       runtime=runtime_with(nested=True, contain=False, pid_namespaces=False),
                       launch={**launch_config.SETTINGS,
                               "extra_options": ["-C", "--no-eval", "--containall", "-p"]})
    found = built(state, job(sandbox))
    assert options(found)[4:-2] == ["--no-eval"]
    assert not {"-C", "--containall", "-c", "--contain", "-p", "--pid"} & set(found.argv)
    assert found.warnings == ("runtime options -C --containall -p dropped: nested "
                              "(APPTAINER_CONTAINER is set (/img))",)


@pytest.mark.parametrize(("vendors", "machine", "environ", "ad", "flags"), [
    (["nvidia"], {"AssignedGPUs": '"CUDA0"'}, {"CUDA_VISIBLE_DEVICES": "0"}, {}, ["--nv"]),
    (["nvidia"], {}, {"CUDA_VISIBLE_DEVICES": "GPU-c4a646d7"}, {}, ["--nv"]),
    (["amd"], {}, {"ROCR_VISIBLE_DEVICES": "1"}, {}, ["--rocm"]),
    (["nvidia", "amd"], {"AssignedGPUs": '"GPU-1,GPU-2"'}, {}, {}, ["--nv", "--rocm"]),
    (["nvidia"], {}, {"CUDA_VISIBLE_DEVICES": "10000"}, {}, []),  # HTCondor: no GPU
    (["nvidia"], {"AssignedGPUs": '""'}, {}, {}, []),
    (["nvidia"], {}, {}, {"GPU_USE": "true"}, ["--nv"]),  # the job asks (GlideinWMS)
    ([], {"AssignedGPUs": '"CUDA0"'}, {}, {}, ["--nv"]),  # HTCondor names NVIDIA devices
    ([], {"AssignedGPUs": '"OCL0"'}, {}, {}, []),  # unknown vendor: never blindly
])
def test_gpu_flags_follow_the_slot_and_the_devices(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, vendors: list[str],
        machine: dict, environ: dict, ad: dict, flags: list[str]) -> None:
    state = node_state(fake_cvmfs, tmp_path, gpus=[{"vendor": vendor, "name": "gpu"}
                                                   for vendor in vendors])
    found = built(state, job(sandbox, job_ad=ad, machine_ad=machine), **environ)
    assert [option for option in found.argv if option in ("--nv", "--rocm")] == flags
    assert options(found)[7:7 + len(flags)] == flags  # after --ipc --contain --pid
    kept = pairs(found)
    assert {name: kept[name] for name in container.PRESERVED if name in kept} == environ
    # GPUs expected but of no vendor setup knows: said, never guessed
    assert any("no --nv or --rocm" in warning for warning in found.warnings) is (
        not flags and not vendors)


# -- the environment ----------------------------------------------------------------------------

JOB_ENV = {
    "PATH": "/job/bin", "LD_LIBRARY_PATH": "/job/lib", "PYTHONPATH": "/job/py",
    "LD_PRELOAD": "/job/evil.so", "KEEP": "1", "GLIDEIN_Proxy_URL": "http://squid:3128",
    "GLIDEIN_Site": "SITE", "CUDA_VISIBLE_DEVICES": "0", "_CONDOR_SLOT": "slot1_1",
    "FOO": "from the job", "SECRET": "s3cr3t",
}


@pytest.mark.parametrize(("container_env", "clearlist", "cleanenv", "gone", "kept"), [
    ("", "", False, {"LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD"}, set()),
    ("clearpaths", "SECRET", False, {"LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD", "SECRET"},
     set()),
    ("keepall", "", False, set(), set()),
    ("keepall", "SECRET,NOT_SET", False, {"SECRET"}, set()),  # the clear-list in any case
    ("clearall", "", True, {"LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD"},
     {"GLIDEIN_Proxy_URL"}),
    ("clearall,osgset", "", True, {"LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD"},
     {"GLIDEIN_Proxy_URL", "GLIDEIN_Site", "_CONDOR_SLOT", "FOO"}),  # osgset implies condorset
    ("clear", "SECRET", True, {"LD_LIBRARY_PATH", "PYTHONPATH", "LD_PRELOAD", "SECRET"},
     {"GLIDEIN_Proxy_URL", "GLIDEIN_Site", "_CONDOR_SLOT", "FOO"}),
])
def test_environment_hygiene(tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path,
                             container_env: str, clearlist: str, cleanenv: bool,
                             gone: set[str], kept: set[str]) -> None:
    state = node_state(fake_cvmfs, tmp_path, container_env=container_env,
                       container_env_clearlist=clearlist)
    request = job(sandbox, job_ad={"Environment": '"FOO=\'from the job\' X=1"'})
    found = built(state, request, **JOB_ENV)
    assert ("--cleanenv" in found.argv) is cleanenv
    assert not gone & set(found.env)
    assert {name: found.env[name] for name in set(JOB_ENV) - gone - {"PATH"}} == {
        name: JOB_ENV[name] for name in set(JOB_ENV) - gone - {"PATH"}}
    assert found.env["PATH"] == launch_env.CLEAN_PATH  # the runtime's own: never the job's
    # the marker and the GPU assignment always, the asked sets under --cleanenv
    assert pairs(found) == {"GWMS_SINGULARITY_REEXEC": "1", "CUDA_VISIBLE_DEVICES": "0",
                            **{name: JOB_ENV[name] for name in kept}}


def test_the_vo_steps_inside_survive_cleanenv(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                              sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path, container_env="clearall")
    found = built(state, job(sandbox), **{launch_env.INSIDE_STEPS: "/glidein/vo_inside.sh"})
    assert pairs(found)[launch_env.INSIDE_STEPS] == "/glidein/vo_inside.sh"


@pytest.mark.parametrize(("container_env", "warning"), [
    ("keepall,clearpaths", "GLIDEIN_CONTAINER_ENV: keepall ignored: a clear option is present"),
    ("clearpaths,bogus", "GLIDEIN_CONTAINER_ENV: unknown option bogus ignored"),
])
def test_inconsistent_environment_options_are_warned_about(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, container_env: str,
        warning: str) -> None:
    found = built(node_state(fake_cvmfs, tmp_path, container_env=container_env), job(sandbox),
                  LD_LIBRARY_PATH="/x")
    assert any(item.startswith(warning) for item in found.warnings)
    assert "LD_LIBRARY_PATH" not in found.env  # clearpaths applies


def test_cleanenv_in_extra_options_keeps_the_variables_too(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path,
                       launch={**launch_config.SETTINGS, "extra_options": ["--cleanenv"]})
    found = built(state, job(sandbox), GLIDEIN_Proxy_URL="http://squid")
    assert found.argv.count("--cleanenv") == 1
    both = built(state.replace(container_env="clearall"), job(sandbox))
    assert both.argv.count("--cleanenv") == 1
    assert pairs(found)["GLIDEIN_Proxy_URL"] == "http://squid"


def test_job_set_runtime_variables_are_dropped_with_a_warning(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path) -> None:
    """The container's variables and every option the runtime reads from its environment
    (binds, overlays...): none is the job's. The runtime's dirs are replaced, an empty one is
    dropped without a word, GlideinWMS's SINGULARITY_DISABLE_PID_NAMESPACES stays."""
    found = built(node_state(fake_cvmfs, tmp_path), job(sandbox),
                  APPTAINERENV_LD_PRELOAD="/evil.so", SINGULARITYENV_PATH="/evil",
                  APPTAINERENV_GWMS_SINGULARITY_REEXEC="0", APPTAINER_BIND="/:/host",
                  SINGULARITY_BINDPATH="/home", APPTAINER_OVERLAY="/x.img",
                  APPTAINER_CACHEDIR="/home/u/.cache", SINGULARITY_CONTAINALL="",
                  SINGULARITY_DISABLE_PID_NAMESPACES="1")
    assert pairs(found) == {"GWMS_SINGULARITY_REEXEC": "1"}
    assert found.warnings == ("not passed into the container (set by the job?): "
                              "APPTAINERENV_GWMS_SINGULARITY_REEXEC, APPTAINERENV_LD_PRELOAD, "
                              "APPTAINER_BIND, APPTAINER_OVERLAY, SINGULARITYENV_PATH, "
                              "SINGULARITY_BINDPATH",)
    assert {name for name in found.env if name.startswith(launch_env.RUNTIMES)} == {
        "APPTAINER_CACHEDIR", "APPTAINER_TMPDIR", "SINGULARITY_CACHEDIR", "SINGULARITY_TMPDIR",
        "SINGULARITY_DISABLE_PID_NAMESPACES", "APPTAINERENV_GWMS_SINGULARITY_REEXEC",
        "SINGULARITYENV_GWMS_SINGULARITY_REEXEC"}
    assert found.env["APPTAINER_CACHEDIR"].startswith(str(tmp_path / "glide" / "tmp"))


def test_sandbox_paths_are_rewritten_to_srv(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                            sandbox: Path) -> None:
    argv = [f"{sandbox}/job.sh", f"--out={sandbox}/o", f"{sandbox}2/x", f"/x{sandbox}",
            str(sandbox), f"{sandbox}:{sandbox}/a", "plain"]
    found = built(node_state(fake_cvmfs, tmp_path), job(sandbox, *argv),
                  X509_USER_PROXY=f"{sandbox}/x509up_u1000", X509_CERT_DIR="/etc/grid-security",
                  _CONDOR_JOB_AD=f"{sandbox}/.job.ad", _CONDOR_SCRATCH_DIR=str(sandbox),
                  OTHER=f"{sandbox}/y")
    assert list(found.argv[-len(argv):]) == [
        "/srv/job.sh", "--out=/srv/o", f"{sandbox}2/x", f"/x{sandbox}", "/srv", "/srv:/srv/a",
        "plain"]
    assert pairs(found) == {"GWMS_SINGULARITY_REEXEC": "1", "X509_USER_PROXY": "/srv/x509up_u1000",
                            "_CONDOR_JOB_AD": "/srv/.job.ad", "_CONDOR_SCRATCH_DIR": "/srv"}
    assert found.env["OTHER"] == f"{sandbox}/y"  # only X509_* and _CONDOR_* are rewritten
    assert found.env["X509_USER_PROXY"] == f"{sandbox}/x509up_u1000"  # the runtime's own


_ARG = st.text(st.one_of(st.sampled_from(" \t\n'\"$;&|`\\*?~{}()<>#=%!"), st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00")), max_size=20)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(_ARG, min_size=1, max_size=8))
def test_job_arguments_reach_the_invocation_unchanged(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path, argv: list[str]) -> None:
    """Each argument is one argv item after the image: never split, joined or quoted."""
    found = built(node_state(fake_cvmfs, tmp_path), job(sandbox, *argv))
    assert found.argv[found.argv.index(found.image, 2) + 1:] == tuple(argv)
    assert f"{sandbox}:/srv" in found.argv  # the sandbox path, quotes and $ included


def test_the_constants_agree_with_the_gpu_modules() -> None:
    assert launch.NO_GPU == assignment.NONE_VALUES


# -- the built-in plugin ------------------------------------------------------------------------

def plugin_context(work: Path, environ: dict[str, str], state: SetupState | None = None
                   ) -> tuple[Runner, Context]:
    entry = EntryConfig("E")
    context = Context(entry, glidein_config.parse(""), work, Deadline(30), environ)
    if state is not None:
        context.state("launch")[launch_config.STATE_KEY] = state
    return Runner(manager.build(entry, {}), context), context


def test_the_builtin_plugin_gives_what_build_gives(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                   sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path)
    path = tmp_path / "state.json"
    setup_state.save(path, state)
    request = results.JobRequest(("/srv/job.sh", "a b"), {},
                                 {"GLIDEIN_PLUGINS_STATE": f'"{path}"'}, str(sandbox))
    environ = {"GLIDEIN_PLUGINS_STATE": "/the/jobs/own.json", "APPTAINERENV_X": "1"}
    runner, context = plugin_context(tmp_path, environ)
    found = runner.invocation(state.facts(), request)
    expected = launch.build(state, request, environ)
    assert isinstance(found, results.ContainerInvocation)
    assert (found.argv, dict(found.env), found.image) == (expected.argv, expected.env,
                                                          expected.image)
    assert any(event.level == "warning" and "APPTAINERENV_X" in event.message
               for event in context.trace)


def test_the_builtin_plugin_leaves_a_refusal_to_the_caller(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, sandbox: Path) -> None:
    state = node_state(fake_cvmfs, tmp_path, default_image=None)
    runner, context = plugin_context(tmp_path, {}, state)
    request = results.JobRequest(("x",), {}, {}, str(sandbox))
    assert runner.invocation(state.facts(), request) is None
    assert any(event.message.startswith("no container: the job names no image")
               and event.message.endswith("(the job may run on the host)")
               for event in context.trace)


def test_the_builtin_plugin_without_a_state_is_a_failure(tmp_path: Path) -> None:
    runner, _ = plugin_context(tmp_path, {})
    with pytest.raises(Stop, match="no setup state: the machine ad has no GLIDEIN_PLUGINS_STATE"):
        runner.invocation(results.Facts(), results.JobRequest(("x",)))


def test_the_per_job_path_needs_neither_pluggy_nor_yaml(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                      sandbox: Path) -> None:
    """Importing ``launch`` loads no heavy module at all; a whole job start (load the state,
    read the ads, build) never loads pluggy, YAML or the plugin context."""
    path = tmp_path / "state.json"
    setup_state.save(path, node_state(fake_cvmfs, tmp_path))
    (sandbox / ".job.ad").write_text('RequestGPUs = 0\nREQUIRED_OS = "rhel8"\n')
    heavy = ("{'pluggy', 'yaml', 'json', 'typing', 'dataclasses', 're',"
             " 'glidein_plugins.spec.results', 'glidein_plugins.spec.context'}")
    code = ("import sys; import glidein_plugins.jobstart.launch; "
            f"print(*sorted(set(sys.modules) & {heavy}))"
            "; from glidein_plugins.protocol.htcondor import job_ad; "
            "from glidein_plugins.jobstart import launch, setup_state; "
            f"state = setup_state.load({str(path)!r}); "
            f"ad = job_ad.read({str(sandbox / '.job.ad')!r}); "
            f"job = launch.JobRequest(['x'], ad, None, {str(sandbox)!r}); "
            "found = launch.build(state, job, {}); "
            "assert found.ok, found; "
            "print(*sorted(set(sys.modules) & {'pluggy', 'yaml', 'glidein_plugins.spec.context'}))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["", ""]
