"""Attack 2: exported shell functions. bash, ``/bin/sh`` on EL nodes, imports
``BASH_FUNC_<name>%%`` from its environment even as ``sh``, and looks functions up before
regular built-ins and PATH: a job (or an Lmod user's ordinary ``module`` export, carried by
``getenv``) could replace ``[``, ``read``, ``sed``... and run code on the host as the pilot.
The wrapper's first pass uses only keywords, special built-ins (which POSIX mode looks up
before functions) and commands by absolute path; the runtime, which runs on the host (here a
bash script in front of the fake runtime, as some sites' are), never gets the functions: they
reach the job inside the container through ``/usr/bin/env`` in the image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _attack import (
    COMMAND_NAMES,
    MODES,
    SHELLS,
    Glidein,
    build_glidein,
    printing_job,
    seen,
    shell_argv,
)
from conftest import write_executable

LMOD = "() {  eval $($LMOD_CMD bash \"$@\") && eval $(${LMOD_SETTARG_CMD:-:} -s sh)\n}"


@pytest.fixture(scope="module", params=MODES)
def glidein(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Glidein:
    built = build_glidein(tmp_path_factory.mktemp(f"functions_{request.param}"), request.param)
    bash = shutil.which("bash")
    assert bash
    runtime = built.runtime
    runtime.rename(runtime.with_name("apptainer.real"))  # a site's shell script in front
    runtime.with_name("apptainer.real.fake").symlink_to("apptainer.fake")
    write_executable(runtime, f'#!{bash}\nexec "$(dirname -- "$0")/apptainer.real" "$@"\n')
    return built


def functions(markers: Path) -> dict[str, str]:
    """An exported function for every command name the wrapper uses: each leaves a mark."""
    markers.mkdir(exist_ok=True)
    return {f"BASH_FUNC_{name}%%": f"() {{ /usr/bin/touch {markers}/{number}; }}"
            for number, name in enumerate(COMMAND_NAMES)}


@pytest.mark.parametrize("shell", SHELLS)
def test_no_exported_function_runs_before_the_container(glidein: Glidein, shell: str,
                                                        tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"functions_{shell}")
    markers = tmp_path / "markers"
    job = printing_job(glidein)
    env = glidein.job_env(sandbox, **functions(markers))
    proc = glidein.run(shell_argv(shell, tmp_path), glidein.job_argv(job, sandbox, "x"),
                       sandbox, env)
    view = seen(proc)
    assert view["argv"] == ["x"]
    ran = sorted(COMMAND_NAMES[int(mark.name)] for mark in markers.iterdir())
    assert ran == [], f"the job's functions ran on the host: {ran}"
    call = glidein.calls()[-1]
    assert glidein.image in call  # started in its container


@pytest.mark.parametrize("shell", SHELLS)
def test_an_lmod_users_job_runs_and_keeps_its_functions_inside(glidein: Glidein, shell: str,
                                                               tmp_path: Path) -> None:
    sandbox = glidein.sandbox(f"lmod_{shell}")
    job = printing_job(glidein)
    env = glidein.job_env(sandbox, **{"BASH_FUNC_module%%": LMOD,
                                      "BASH_FUNC_ml%%": "() {  eval $($LMOD_DIR/ml_cmd \"$@\")\n}",
                                      "LMOD_CMD": "/usr/share/lmod/lmod/libexec/lmod"})
    view = seen(glidein.run(shell_argv(shell, tmp_path), glidein.job_argv(job, sandbox, "y"),
                            sandbox, env))
    assert view["argv"] == ["y"]
    inside = view["env"]
    assert isinstance(inside, dict)
    if glidein.mode == "wrapper":  # native: HTCondor's -C (--cleanenv) keeps them out anyway
        assert inside["APPTAINER_CONTAINER"] == glidein.image
        # dash and busybox drop every variable that is not a shell name from what they start,
        # container or not; bash keeps them, and so does the wrapper
        assert inside.get("BASH_FUNC_module%%") == (LMOD if shell == "bash-as-sh" else None)
