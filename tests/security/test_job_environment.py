"""The wider review: what else of the job's environment and sandbox reaches the wrapper's
first pass on the host, in wrapper and native mode, under each shell. Each variable below is
one a shell, the dynamic loader or Python reads by itself; the job sets it, and nothing of its
own may run, nor may the job start otherwise than in its container. (The loader's ``LD_*``
act before any line of the wrapper: SECURITY.md L1, an xfail in tests/test_security.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from _attack import MODES, SHELLS, Glidein, build_glidein, printing_job, seen, shell_argv

EVIL = '/usr/bin/touch "{marker}"\n'


@pytest.fixture(scope="module", params=MODES)
def glidein(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Glidein:
    return build_glidein(tmp_path_factory.mktemp(f"environment_{request.param}"), request.param)


def hostile(sandbox: Path, marker: Path) -> dict[str, str]:
    """Variables that make a shell, Python or a locale-aware tool run or read the job's."""
    evil = sandbox / "evil.sh"
    evil.write_text(EVIL.format(marker=marker))
    evil.chmod(0o755)
    (sandbox / "sitecustomize.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n")
    return {
        "ENV": str(evil), "BASH_ENV": str(evil),  # startup files (interactive / bash)
        "SHELLOPTS": "xtrace:verbose", "BASHOPTS": "extglob",
        "PS4": f"$(/usr/bin/touch {marker})",  # expanded for every traced command
        "IFS": "/ae",  # word splitting, were it imported
        "CDPATH": str(sandbox), "POSIXLY_CORRECT": "",
        # (PYTHONHOME would break every Python here, the fake runtime and the job included;
        # the wrapper's runs with -I: tests/test_security.py)
        "PYTHONPATH": str(sandbox), "PYTHONSTARTUP": str(evil), "PYTHONWARNINGS": "error",
        "LC_ALL": "xx_XX.NOT-A-CHARSET", "LANG": "tr_TR.UTF-8",
        "PATH": f".:{sandbox}:/usr/bin:/bin",
        "TMPDIR": str(sandbox), "HOME": str(sandbox),
    }


@pytest.mark.parametrize("shell", SHELLS)
def test_the_jobs_shell_python_and_locale_variables_change_nothing(
        glidein: Glidein, shell: str, tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"variables_{shell}")
    marker = tmp_path / "ran"
    job = printing_job(glidein)
    before = len(glidein.calls())
    argv = glidein.job_argv(job, sandbox, "a b", "x/y")
    proc = glidein.run(shell_argv(shell, tmp_path), argv, sandbox,
                       glidein.job_env(sandbox, **hostile(sandbox, marker)))
    view = seen(proc)
    assert view["argv"] == ["a b", "x/y"]
    assert not marker.exists(), "the job's code ran on the host"
    (call,) = glidein.calls()[before:]
    assert glidein.image in call


@pytest.mark.parametrize("shell", SHELLS)
def test_huge_and_undecodable_values_reach_the_job_unchanged(glidein: Glidein, shell: str,
                                                             tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"values_{shell}")
    job = printing_job(glidein)
    odd = "caf\udce9 \udcff\udcfe"  # bytes that are not UTF-8, as the job set them
    big = "v" * 100_000
    argv = glidein.job_argv(job, sandbox, odd, big)
    view = seen(glidein.run(shell_argv(shell, tmp_path), argv, sandbox,
                            glidein.job_env(sandbox, JOB_ODD=odd, JOB_BIG=big)))
    assert view["argv"] == [odd, big]
    env = view["env"]
    assert isinstance(env, dict)
    if glidein.mode == "wrapper":  # native: HTCondor's -C passes no environment
        assert (env["JOB_ODD"], env["JOB_BIG"]) == (odd, big)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_jobs_own_names_for_the_wrappers_variables_change_nothing(
        glidein: Glidein, shell: str, tmp_path: Path) -> None:
    """Every ``_gp_*`` name the wrapper uses, set by the job to what would help it."""
    sandbox = glidein.sandbox(f"names_{shell}")
    marker = tmp_path / "ran"
    evil = sandbox / "python3"
    evil.write_text("#!/bin/sh\n" + EVIL.format(marker=marker))
    evil.chmod(0o755)
    own = sandbox / "decision"
    own.write_text(f"_gp_decision=bare\n_gp_python={evil}\n")
    forged = {"_gp_decision": "bare", "_gp_conf": str(own), "_gp_state": str(own),
              "_gp_python": str(evil), "_gp_dir": str(sandbox), "_gp_try": str(evil),
              "_gp_out": "exit 0", "_gp_rc": "0", "_gp_path": "=.",
              "GLIDEIN_PLUGINS_STATE": str(own), "GLIDEIN_PLUGINS_PYTHON": str(evil),
              "GLIDEIN_CONTAINER_LAUNCH": "native", "GLIDEIN_PLUGINS_DISABLE": "launch"}
    job = printing_job(glidein)
    before = len(glidein.calls())
    seen(glidein.run(shell_argv(shell, tmp_path), glidein.job_argv(job, sandbox, "x"),
                     sandbox, glidein.job_env(sandbox, **forged)))
    assert not marker.exists()
    (call,) = glidein.calls()[before:]
    assert glidein.image in call
