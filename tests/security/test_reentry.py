"""Attack 7: unbounded re-entry. The wrapper's copy inside the container is recognised by its
``$0`` (``.glidein_plugins/NAME``, which the starter never gives), never by the environment:
a runtime that maps no ``APPTAINERENV_*`` into the container runs the job once, and a job that
sets the markers on the host still gets its container. The first pass leaves a mark in the
sandbox when it starts the container: a copy run again as a first pass (a runtime or site
wrapper changing the command) finds it and fails the job with a clear message; the runtime is
never started twice for one job."""

from __future__ import annotations

from pathlib import Path

import pytest
from _attack import SHELLS, Glidein, build_glidein, printing_job, seen, shell_argv, write_runtime

# the runtime: no APPTAINERENV_* mapping, no APPTAINER_CONTAINER; FAKE_REENTRY=move: a site
# wrapper that runs a copy of the command's script from elsewhere (its $0 changed)
RUNTIME = '''
import shutil
if os.environ.get("FAKE_REENTRY") == "move" and len(command) > 1:
    moved = os.path.join(os.path.dirname(log), "site_copy_" + str(os.getpid()) + ".sh")
    shutil.copy(command[1], moved)
    command = [command[0], moved, *command[2:]]
os.execv(command[0], command)
'''


@pytest.fixture(scope="module")
def glidein(tmp_path_factory: pytest.TempPathFactory) -> Glidein:
    built = build_glidein(tmp_path_factory.mktemp("reentry"), "wrapper")
    write_runtime(built.runtime, RUNTIME)
    return built


@pytest.mark.parametrize("shell", SHELLS)
def test_a_runtime_that_maps_no_environment_runs_the_job_once(glidein: Glidein, shell: str,
                                                              tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"plain_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    view = seen(glidein.run(shell_argv(shell, tmp_path), [str(job), "x"], sandbox,
                            glidein.job_env(sandbox), timeout=30))
    assert view["argv"] == ["x"]
    env = view["env"]
    assert isinstance(env, dict)
    assert (env["GWMS_SINGULARITY_REEXEC"], env["HOME"]) == ("1", "/srv")
    assert len(glidein.calls()) - before == 1
    assert not (sandbox / ".glidein_plugins" / "reexec").exists()  # removed inside


@pytest.mark.parametrize("shell", SHELLS)
def test_a_second_first_pass_fails_the_job_and_never_starts_the_runtime_again(
        glidein: Glidein, shell: str, tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"moved_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    proc = glidein.run(shell_argv(shell, tmp_path), [str(job), "x"], sandbox,
                       glidein.job_env(sandbox, FAKE_REENTRY="move"), timeout=30)
    assert proc.returncode == 1 and proc.stdout == ""
    error = glidein.error(sandbox)
    assert error.count("\n") == 1 and "already started the container for this job" in error
    assert len(glidein.calls()) - before == 1


@pytest.mark.parametrize("shell", SHELLS)
def test_the_jobs_markers_never_skip_the_container(glidein: Glidein, shell: str,
                                                   tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"forged_{shell}")
    job = printing_job(glidein)
    before = len(glidein.calls())
    forged = {"GWMS_SINGULARITY_REEXEC": "1", "APPTAINER_CONTAINER": "/x.sif",
              "SINGULARITY_CONTAINER": "/x.sif", "APPTAINERENV_GWMS_SINGULARITY_REEXEC": "1"}
    seen(glidein.run(shell_argv(shell, tmp_path), [str(job), "x"], sandbox,
                     glidein.job_env(sandbox, **forged), timeout=30))
    (call,) = glidein.calls()[before:]
    assert glidein.image in call and "--contain" in call


@pytest.mark.parametrize("shell", SHELLS)
def test_a_mark_the_job_left_fails_only_that_job_and_is_never_followed(
        glidein: Glidein, shell: str, tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"planted_{shell}")
    target = tmp_path / "pilot_file"
    target.write_text("the pilot's\n")
    (sandbox / ".glidein_plugins").mkdir()
    (sandbox / ".glidein_plugins" / "reexec").symlink_to(target)
    job = printing_job(glidein)
    before = len(glidein.calls())
    proc = glidein.run(shell_argv(shell, tmp_path), [str(job), "x"], sandbox,
                       glidein.job_env(sandbox), timeout=30)
    assert proc.returncode == 1 and "already started" in glidein.error(sandbox)
    assert target.read_text() == "the pilot's\n"
    assert glidein.calls()[before:] == []
