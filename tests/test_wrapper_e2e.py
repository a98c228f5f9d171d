"""End to end: ``glidein-plugins setup`` on a fake node (fake runtime, fake CVMFS), then the job
wrapper run as HTCondor runs it (the job sandbox as cwd, the ads in files, the glidein's
environment), standalone and concatenated into ``condor_job_wrapper.sh`` as condor_startup.sh
builds it. The runtime (``install_container_runtime``) handles the environment as a real one
does and runs the command on the host, so the printing job shows what a job would see; what the
runtime cannot emulate (``--pwd``, the ``/srv`` bind) is read from its command line."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    FakeCvmfs,
    ad_string,
    glidein_result,
    install_container_runtime,
    install_printing_job,
    job_view,
    make_work_dir,
    run_cli,
    run_wrapper,
    runtime_calls,
    starter_view,
    write_ad,
)

from glidein_plugins.jobstart import records, setup_state

ODD_ARGS = ["two words", "it's", 'say "hi"', "$HOME", "a;b", "*", "", "line1\nline2", "-C"]
GPU = "GPU-6a3c2a0e-ffff-4a4a-9e9e-0123456789ab"
VO_PLUGIN = '''"""A VO's job-start steps: it looks at every job before the built-in launch
builds the invocation, and refuses the ones without a token."""

import os

from glidein_plugins import FailureType, GlideinFailure, hookimpl


@hookimpl
def glidein_job_launch(context, job):
    with open(context.environ["MYVO_LOG"], "a") as log:
        log.write(job.argv[-1] + "\\n")
    if not os.path.exists(os.path.join(job.cwd, "token")):
        raise GlideinFailure(FailureType.VO_CONFIG, "MyVO: no token in the sandbox")
    return None  # the built-in launch builds the invocation
'''


@dataclass
class Glidein:
    """A glidein after a real setup, ready to start jobs."""

    root: Path
    work: Path
    cvmfs: FakeCvmfs
    glidein_env: dict[str, str]
    state: records.SetupState | None  # None: setup wanted no container

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime_argv.log"

    def sandbox(self, name: str = "dir_1234") -> Path:
        sandbox = self.root / "execute" / name
        sandbox.mkdir(parents=True, exist_ok=True)
        return sandbox

    def job_env(self, sandbox: Path, job_ad: dict[str, str] | None = None,
                machine_ad: dict[str, str] | None = None, **values: str) -> dict[str, str]:
        """The job's environment: the glidein's, what condor_startup.sh exports to jobs (every
        condor_vars.lst line with a JobEnv column, its glidein_config value: the state's path,
        the launch mode...), and what the starter sets (the ads in the sandbox, the machine
        ad with every attribute condor_startup.sh gave the startd; the error file)."""
        exported, published = starter_view(self.work)
        return {
            **self.glidein_env, **exported,
            "_CONDOR_JOB_AD": str(write_ad(sandbox / ".job.ad", {
                "ClusterId": "7", "Iwd": ad_string(str(sandbox)), **(job_ad or {})})),
            "_CONDOR_MACHINE_AD": str(write_ad(sandbox / ".machine.ad", {
                "Name": ad_string("slot1_1@node"), **published, **(machine_ad or {})})),
            "_CONDOR_WRAPPER_ERROR_FILE": str(sandbox / ".job_wrapper_failure"),
            "RUNTIME_ARGV_LOG": str(self.runtime_log),
            **values,
        }

    def calls(self) -> list[list[str]]:
        """The runtime's calls made by the wrapper (setup's probes excluded)."""
        return [call for call in runtime_calls(self.runtime_log)
                if "cat" not in call and "version" not in call and "--version" not in call]


def set_up(tmp_path: Path, fake_cvmfs: FakeCvmfs, frontend: str = "REQUIRED",
           env: dict[str, str] | None = None, config: str = "", **values: str) -> Glidein:
    """``glidein-plugins setup`` on the fake node; it must succeed. With ``config``, the package
    is deployed as the tarball has it: ``PKG/glidein_plugins`` (a link to this one) and the
    entry's config in ``PKG/factory_configs``, where job start reads it too."""
    install_container_runtime(fake_cvmfs.bin)
    work = make_work_dir(tmp_path / "glidein", {"GLIDEIN_Singularity_Use": frontend, **values})
    glidein_env = fake_cvmfs.env(**(env or {}))
    if config:
        package = tmp_path / "package"
        (package / "factory_configs").mkdir(parents=True)
        (package / "glidein_plugins").symlink_to(ROOT / "glidein_plugins")
        (package / "factory_configs" / "entry.yaml").write_text(config)
        glidein_env.update(GLIDEIN_PLUGINS_CONFIG_DIR=str(package / "factory_configs"),
                           PYTHONPATH=str(package))
    result = glidein_result(run_cli(["setup", "glidein_config", "entry"], work, glidein_env), work)
    assert result.exit_code == 0, result.stdout
    path = result.config.get("GLIDEIN_PLUGINS_STATE")
    state = setup_state.load(path) if path else None
    return Glidein(tmp_path, work, fake_cvmfs, glidein_env, state)


def test_the_job_sees_its_arguments_environment_and_srv_paths(tmp_path: Path,
                                                               fake_cvmfs: FakeCvmfs) -> None:
    glidein = set_up(tmp_path, fake_cvmfs)
    sandbox = glidein.sandbox()
    job = install_printing_job(tmp_path / "jobs")
    args = [*ODD_ARGS, f"--out={sandbox}/result.txt", str(sandbox / "input.dat"),
            f"{sandbox}2/other"]
    env = glidein.job_env(sandbox, X509_USER_PROXY=str(sandbox / "x509up_u1000"),
                          TMPDIR=str(sandbox / "tmp"), TMP="/tmp", TEMP="/tmp",
                          LD_LIBRARY_PATH="/opt/lib", APPTAINERENV_SNEAKY="1")
    proc = run_wrapper([str(job), *args], sandbox, env)
    seen = job_view(proc)
    assert seen["argv"] == [*ODD_ARGS, "--out=/srv/result.txt", "/srv/input.dat",
                            f"{sandbox}2/other"]
    inside = seen["env"]
    image = str(fake_cvmfs.images["rhel9"])
    assert (inside["HOME"], inside["GWMS_SINGULARITY_REEXEC"], inside["APPTAINER_CONTAINER"]) \
        == ("/srv", "1", image)
    assert not {"TMP", "TMPDIR", "TEMP", "LD_LIBRARY_PATH", "SNEAKY"} & set(inside)
    assert inside["X509_USER_PROXY"] == "/srv/x509up_u1000"
    assert inside["_CONDOR_JOB_AD"] == "/srv/.job.ad"
    cache = glidein.work / "tmp" / "apptainer"
    assert (inside["APPTAINER_CACHEDIR"], inside["APPTAINER_TMPDIR"]) == (
        str(cache / "cache"), str(cache / "tmp"))
    assert "APPTAINERENV_SNEAKY" in proc.stderr  # dropped, with a warning
    (call,) = glidein.calls()
    contain = [] if glidein.state.runtime.feature("nested") else ["--ipc", "--contain", "--pid"]
    assert call[:call.index("--bind")] == ["exec", "--home", f"{sandbox}:/srv", "--pwd", "/srv",
                                           *contain]
    assert call[call.index(image) + 1:call.index(image) + 4] == [
        "/bin/sh", ".glidein_plugins/glidein_plugins_wrapper.sh", str(job)]


def test_in_condor_job_wrapper_the_fragments_around_it_run_as_without_containers(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    glidein = set_up(tmp_path, fake_cvmfs)
    fragment = ('printf "%s %s\\n" {name} "${{GWMS_SINGULARITY_REEXEC:-outside}}" '
                '>>"$FRAGMENT_LOG"\n')
    wrapper = glidein.work / "condor_job_wrapper.sh"
    wrapper.write_text(  # as condor_startup.sh writes it
        "#!/bin/sh\n\n# This script is started just before the user job\n"
        + fragment.format(name="before")
        + (ROOT / "hooks" / "glidein_plugins_wrapper.sh").read_text()
        + fragment.format(name="after") + "export AFTER_RAN=yes\n"
        + '\n# Condor job wrappers must replace its own image\nexec "$@"\n')
    wrapper.chmod(0o755)
    sandbox = glidein.sandbox()
    log = tmp_path / "fragments.log"
    job = install_printing_job(tmp_path / "jobs")
    env = glidein.job_env(sandbox, FRAGMENT_LOG=str(log))
    seen = job_view(run_wrapper([str(job), *ODD_ARGS], sandbox, env, wrapper=wrapper))
    assert seen["argv"] == ODD_ARGS and seen["env"]["AFTER_RAN"] == "yes"
    assert log.read_text().splitlines() == ["before outside", "before 1", "after 1"]
    assert (sandbox / ".glidein_plugins" / "condor_job_wrapper.sh").read_bytes() == \
        wrapper.read_bytes()
    (call,) = glidein.calls()
    assert ".glidein_plugins/condor_job_wrapper.sh" in call


def test_a_nested_glidein_never_contains_and_its_jobs_argv_is_always_the_payload(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    """Changed (issue 13): in wrapper mode a job whose argv looks like HTCondor's container
    line is a payload like any other, started inside its container (HTCondor's line is
    corrected only in native mode: tests/test_wrapper.py)."""
    outer = {"APPTAINER_CONTAINER": "/images/pilot.sif"}  # the glidein runs in a container
    glidein = set_up(tmp_path, fake_cvmfs, env=outer)
    assert glidein.state.runtime.feature("nested") and glidein.state.decision == "container"
    sandbox = glidein.sandbox()
    job = install_printing_job(tmp_path / "jobs")
    env = glidein.job_env(sandbox)
    seen = job_view(run_wrapper([str(job), "x"], sandbox, env))
    assert seen["argv"] == ["x"]
    image = str(fake_cvmfs.images["rhel9"])
    looks_like_htcondor = [glidein.state.runtime.path, "-s", "exec", "-S", "/tmp", "--pwd",
                           "/srv", "-B", f"{glidein.work}:/glidein", "--no-home", image,
                           str(job), "-C", "y"]
    proc = run_wrapper(looks_like_htcondor, sandbox, env)
    assert job_view(proc)["argv"] == ["-C", "y"]
    _, wrapped, own = glidein.calls()
    assert not {"--contain", "--ipc", "--pid", "-C"} & set(wrapped[:wrapped.index(image)])
    assert wrapped[wrapped.index(image) + 1:] == [
        "/bin/sh", ".glidein_plugins/glidein_plugins_wrapper.sh", *looks_like_htcondor]
    assert own == looks_like_htcondor[1:]  # the job's own call, inside its container


@pytest.mark.parametrize("container_env", ["clearpaths", "clearall"])
def test_a_gpu_slot_gets_nv_and_keeps_its_assignment(tmp_path: Path, fake_cvmfs: FakeCvmfs,
                                                      container_env: str) -> None:
    glidein = set_up(tmp_path, fake_cvmfs, GLIDEIN_CONTAINER_ENV=container_env)
    sandbox = glidein.sandbox()
    job = install_printing_job(tmp_path / "jobs")
    env = glidein.job_env(sandbox, machine_ad={"AssignedGPUs": ad_string(GPU)},
                          CUDA_VISIBLE_DEVICES=GPU, _CONDOR_AssignedGPUs=GPU)
    seen = job_view(run_wrapper([str(job), "train"], sandbox, env))
    assert seen["env"]["CUDA_VISIBLE_DEVICES"] == GPU
    (call,) = glidein.calls()
    options = call[:call.index(str(fake_cvmfs.images["rhel9"]))]
    assert "--nv" in options
    assert ("--cleanenv" in options) == (container_env == "clearall")
    other = glidein.sandbox("dir_5678")  # a slot without GPUs
    job_view(run_wrapper([str(job), "cpu"], other, glidein.job_env(other)))
    assert "--nv" not in glidein.calls()[-1]


@pytest.mark.parametrize("frontend", ["REQUIRED", "PREFERRED"])  # a veto never falls back
def test_vo_plugins_add_their_steps_at_job_start_and_may_refuse_a_job(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, frontend: str) -> None:
    plugins = tmp_path / "vo_plugins"
    plugins.mkdir()
    (plugins / "myvo.py").write_text(VO_PLUGIN)
    config = json.dumps({"version": 1, "defaults": {
        "plugins": {"directories": [str(plugins)], "enable": ["myvo"]},
        "settings": {"launch": {"failure_delay": 0}}}})
    glidein = set_up(tmp_path, fake_cvmfs, frontend, config=config)
    assert glidein.state.job_hooks == ("myvo",)
    job = install_printing_job(tmp_path / "jobs")
    log = tmp_path / "myvo.log"
    with_token = glidein.sandbox("with_token")
    (with_token / "token").write_text("t")
    seen = job_view(run_wrapper([str(job), "first"], with_token,
                                glidein.job_env(with_token, MYVO_LOG=str(log))))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(fake_cvmfs.images["rhel9"])
    without = glidein.sandbox("without_token")
    proc = run_wrapper([str(job), "second"], without,
                       glidein.job_env(without, MYVO_LOG=str(log)))
    assert proc.returncode == 1 and proc.stdout == ""
    error = (without / ".job_wrapper_failure").read_text()
    assert error.count("\n") == 1 and "MyVO: no token in the sandbox" in error
    assert log.read_text().splitlines() == ["first", "second"]
    assert len(glidein.calls()) == 1


def test_setup_without_containers_leaves_jobs_alone(tmp_path: Path,
                                                    fake_cvmfs: FakeCvmfs) -> None:
    glidein = set_up(tmp_path, fake_cvmfs, frontend="NEVER")
    assert glidein.state is None  # none published: the machine ad says NEVER
    state = setup_state.load(glidein.work / setup_state.RELATIVE_PATH)
    assert state.decision == "bare"
    sandbox = glidein.sandbox()
    job = install_printing_job(tmp_path / "jobs")
    env = glidein.job_env(sandbox)
    proc = subprocess.run([str(ROOT / "hooks" / "glidein_plugins_wrapper.sh"), str(job),
                           *ODD_ARGS], cwd=sandbox, env=env, capture_output=True, text=True,
                          timeout=60)
    assert job_view(proc)["argv"] == ODD_ARGS
    assert glidein.calls() == []
