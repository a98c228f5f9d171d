"""Attack 1: a job whose argv looks like HTCondor's own container line. With
``transfer_executable = false``, the executable being the runtime setup proved and the
arguments ``exec --bind <glidein dir> <any image> <cmd>``, the job asked to be run on the host
with its own options. HTCondor's line exists only in native mode: the setup's decision and the
machine ad say which mode it is, never argv's shape; in wrapper mode the job's argv is always
the payload, started in the container the entry's rules build."""

from __future__ import annotations

from pathlib import Path

import pytest
from _attack import SHELLS, Glidein, build_glidein, printing_job, seen, shell_argv


@pytest.fixture(scope="module")
def wrapper_glidein(tmp_path_factory: pytest.TempPathFactory) -> Glidein:
    return build_glidein(tmp_path_factory.mktemp("argv_wrapper"), "wrapper")


@pytest.fixture(scope="module")
def native_glidein(tmp_path_factory: pytest.TempPathFactory) -> Glidein:
    return build_glidein(tmp_path_factory.mktemp("argv_native"), "native")


def hostile_argv(glidein: Glidein, job: Path) -> list[str]:
    """The runtime with the job's own options: the glidein dir bound in, no containment."""
    return [str(glidein.runtime), "exec", "--bind", f"{glidein.work}:/glidein",
            glidein.image, str(job), "owned"]


@pytest.mark.parametrize("shell", SHELLS)
def test_in_wrapper_mode_a_runtime_line_is_the_payload(wrapper_glidein: Glidein, shell: str,
                                                       tmp_path: Path) -> None:
    glidein = wrapper_glidein
    sandbox = glidein.sandbox(f"argv_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    argv = hostile_argv(glidein, job)
    view = seen(glidein.run(shell_argv(shell, tmp_path), argv, sandbox, glidein.job_env(sandbox)))
    assert view["argv"] == ["owned"]
    wrapped = glidein.calls()[before]
    image_at = wrapped.index(glidein.image)
    options = wrapped[:image_at]
    assert f"{glidein.work}:/glidein" not in options and "--contain" in options
    assert wrapped[image_at + 1:] == ["/bin/sh", ".glidein_plugins/condor_job_wrapper.sh",
                                      *argv]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_machine_ad_saying_native_does_not_make_a_wrapper_glidein_native(
        wrapper_glidein: Glidein, shell: str, tmp_path: Path) -> None:
    """The decision is setup's: even an ad claiming native mode (the standalone wrapper reads
    it from the sandbox) leaves the job's argv the payload."""
    glidein = wrapper_glidein
    sandbox = glidein.sandbox(f"ad_{shell}")
    job = printing_job(glidein)
    env = glidein.job_env(sandbox)
    ad = Path(env["_CONDOR_MACHINE_AD"])
    ad.write_text(ad.read_text() + 'GLIDEIN_CONTAINER_LAUNCH = "native"\n')
    before = len(glidein.calls())
    argv = hostile_argv(glidein, job)
    seen(glidein.run(shell_argv(shell, tmp_path), argv, sandbox, env))
    wrapped = glidein.calls()[before]
    assert f"{glidein.work}:/glidein" not in wrapped[:wrapped.index(glidein.image)]


@pytest.mark.parametrize("shell", SHELLS)
def test_in_native_mode_only_htcondors_options_count(native_glidein: Glidein, shell: str,
                                                     tmp_path: Path) -> None:
    """HTCondor's line around the same job: corrected, and the job's part left as it is."""
    glidein = native_glidein
    sandbox = glidein.sandbox(f"native_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    argv = glidein.job_argv(job, sandbox, "x")
    view = seen(glidein.run(shell_argv(shell, tmp_path), argv, sandbox,
                            glidein.job_env(sandbox)))
    assert view["argv"] == ["x"]
    (call,) = glidein.calls()[before:]
    assert call == argv[1:]  # HTCondor's line: nothing to correct on this node


@pytest.mark.parametrize("shell", SHELLS)
def test_native_required_without_htcondors_line_gets_its_container(
        native_glidein: Glidein, shell: str, tmp_path: Path) -> None:
    """REQUIRED: HTCondor starts every job's container; a job it started none for is
    contained by the wrapper, never run on the host."""
    glidein = native_glidein
    sandbox = glidein.sandbox(f"native_bare_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    proc = glidein.run(shell_argv(shell, tmp_path), [str(job), "y"], sandbox,
                       glidein.job_env(sandbox))
    assert seen(proc)["argv"] == ["y"]
    (wrapped,) = glidein.calls()[before:]
    assert wrapped[wrapped.index(glidein.image) + 1:] == [
        "/bin/sh", ".glidein_plugins/condor_job_wrapper.sh", str(job), "y"]
