"""Attack 6: no decision, no container. A machine ad naming no setup state used to mean "run
the job on the host" whatever the entry wanted. Setup now records its decision in every mode
(``container``, ``native``, ``bare``) beside the state; the wrapper runs a job bare only when
the decision says so, and fails the job with a clear message when it is missing, unreadable or
unknown: a publishing problem or an edited file never puts a job on the host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from _attack import FRAGMENT, SHELLS, Glidein, build_glidein, printing_job, seen, shell_argv

from glidein_plugins.jobstart import setup_state


@pytest.fixture
def glidein(tmp_path: Path) -> Glidein:
    return build_glidein(tmp_path / "node", "wrapper")


def decision_file(glidein: Glidein) -> Path:
    return glidein.work / ".glidein_plugins" / setup_state.DECISION


@pytest.mark.parametrize("damage", ["missing", "a directory", "unknown value", "empty"])
@pytest.mark.parametrize("shell", SHELLS)
def test_a_missing_or_bad_decision_fails_the_job(glidein: Glidein, shell: str, damage: str,
                                                 tmp_path: Path) -> None:
    decision = decision_file(glidein)
    if damage == "missing":
        decision.unlink()
    elif damage == "a directory":
        decision.unlink()
        decision.mkdir()
    elif damage == "unknown value":
        decision.write_text(decision.read_text().replace("container", "maybe"))
    else:
        decision.write_text("")
    sandbox = glidein.sandbox("job")
    job = printing_job(glidein)
    proc = glidein.run(shell_argv(shell, tmp_path), [str(job), "x"], sandbox,
                       glidein.job_env(sandbox))
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr  # the job never ran
    error = glidein.error(sandbox)
    assert error.count("\n") == 1
    assert ("no setup decision" in error or "not container, native or bare" in error), error
    assert glidein.calls() == []


@pytest.mark.parametrize("shell", SHELLS)
def test_the_standalone_wrapper_without_a_state_in_the_machine_ad_fails(
        glidein: Glidein, shell: str, tmp_path: Path) -> None:
    """The wrapper as the USER_JOB_WRAPPER itself: the state is the machine ad's."""
    standalone = glidein.root / "hooks" / "glidein_plugins_wrapper.sh"
    standalone.parent.mkdir()
    shutil.copy(FRAGMENT, standalone)
    sandbox = glidein.sandbox("job")
    env = glidein.job_env(sandbox)
    ad = Path(env["_CONDOR_MACHINE_AD"])
    ad.write_text("".join(line + "\n" for line in ad.read_text().splitlines()
                          if not line.startswith("GLIDEIN_PLUGINS_STATE")))
    proc = subprocess.run([*shell_argv(shell, tmp_path), str(standalone),
                           str(printing_job(glidein)), "x"],
                          cwd=sandbox, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no setup decision" in glidein.error(sandbox)
    assert glidein.calls() == []


@pytest.mark.parametrize("standalone", [False, True])
@pytest.mark.parametrize("shell", SHELLS)
def test_a_bare_decision_runs_the_job_on_the_host_and_nothing_else_does(
        tmp_path: Path, shell: str, standalone: bool) -> None:
    """NEVER: the decision beside condor_job_wrapper.sh; standalone, the machine ad's
    GWMS_SINGULARITY_STATUS = "NEVER" (setup publishes no state then). Without it, no job."""
    glidein = build_glidein(tmp_path / "never", "wrapper", frontend="NEVER")
    wrapper = glidein.wrapper
    if standalone:
        wrapper = glidein.root / "hooks" / "glidein_plugins_wrapper.sh"
        wrapper.parent.mkdir()
        shutil.copy(FRAGMENT, wrapper)
    sandbox = glidein.sandbox("job")
    env = glidein.job_env(sandbox)
    argv = [*shell_argv(shell, tmp_path), str(wrapper), str(printing_job(glidein)), "x"]
    view = seen(subprocess.run(argv, cwd=sandbox, env=env, capture_output=True, text=True,
                               timeout=60))
    assert view["argv"] == ["x"] and glidein.calls() == []
    if standalone:
        ad = Path(env["_CONDOR_MACHINE_AD"])
        ad.write_text(ad.read_text().replace("GWMS_SINGULARITY_STATUS", "ANOTHER_ATTRIBUTE"))
        proc = subprocess.run(argv, cwd=sandbox, env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1 and "no setup decision" in glidein.error(sandbox)
