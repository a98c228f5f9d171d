"""Security defences that no other test file shows (SECURITY.md maps every threat to its tests).

Run for real: the package's own source read with ``ast``, the job wrapper started as HTCondor
starts a USER_JOB_WRAPPER (a real shell, the real Python part, the sandbox as cwd, the ads in
files), and after a real setup for a job-start plugin.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, ad_string, install_printing_job, job_view, run_cli, run_wrapper
from test_wrapper import Node, node  # noqa: F401 - the node fixture
from test_wrapper_e2e import set_up

from glidein_plugins import wrap
from glidein_plugins.testing import FakeCvmfs

PACKAGE = ROOT / "glidein_plugins"
# every way Python starts a process, or replaces this one
_EXEC = ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")
PROCESS_CALLS = frozenset({
    "os.system", "os.popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp",
    "pty.spawn", "pty.fork", "asyncio.create_subprocess_shell", "asyncio.create_subprocess_exec",
    *(f"os.exec{suffix}" for suffix in _EXEC),
    *(f"os.spawn{suffix}" for suffix in _EXEC),
    *(f"subprocess.{name}" for name in ("Popen", "run", "call", "check_call", "check_output",
                                        "getoutput", "getstatusoutput")),
})
# where the package starts processes: the bounded runner, and the wrapper's bounded path check
# (fork) and final exec of the container runtime (an argv)
EXPECTED_CALLS = {("commands.py", "subprocess.Popen"), ("wrap.py", "os.fork"),
                  ("wrap.py", "os.execve"), ("wrap.py", "os.execvpe")}


def dotted(expr: ast.expr) -> str:
    """``os.path.join`` for the expression ``os.path.join`` ('' for anything else)."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = dotted(expr.value)
        return f"{base}.{expr.attr}" if base else ""
    return ""


def test_the_package_never_runs_a_shell_and_starts_processes_in_two_places_only() -> None:
    """No ``shell=``, ``os.system`` or ``os.popen`` anywhere; ``subprocess.Popen`` only in
    ``commands.run`` (timeout, own process group killed), ``fork``/``exec`` only in the
    wrapper; nothing imported around these names (``from os import system``)."""
    found, shells, imported = set(), [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        for item in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(item, ast.Call):
                name = dotted(item.func)
                if name in PROCESS_CALLS:
                    found.add((where, name))
                if name == "subprocess.Popen":
                    start = {k.arg: k.value for k in item.keywords}.get("start_new_session")
                    assert isinstance(start, ast.Constant) and start.value is True, where
                shells += [f"{where}:{item.lineno}" for keyword in item.keywords
                           if keyword.arg == "shell"]
            elif isinstance(item, ast.ImportFrom) and item.module in ("os", "subprocess", "pty",
                                                                      "asyncio"):
                imported += [f"{where}:{item.lineno}: {item.module}.{alias.name}"
                             for alias in item.names
                             if f"{item.module}.{alias.name}" in PROCESS_CALLS]
    assert (shells, imported) == ([], [])
    assert found == EXPECTED_CALLS


def test_the_only_eval_in_the_shell_hooks_is_the_wrappers_of_its_quoted_plan() -> None:
    """The hooks ``eval`` nothing but what ``wrap.Plan.shell`` printed (single-quoted words:
    test_fuzz.py::test_the_plan_is_evaluated_by_a_real_shell_word_for_word)."""
    evals = [(path.name, line.strip()) for path in sorted((ROOT / "hooks").glob("*.sh"))
             for line in path.read_text().splitlines()
             if not line.lstrip().startswith("#") and re.search(r"(^|[\s;(|&])eval\s", line)]
    assert evals == [("glidein_plugins_wrapper.sh", '0) eval "$_gp_out" ;;')]


def test_python_tags_in_a_factory_config_are_refused_never_constructed(tmp_path: Path) -> None:
    """The YAML is read with PyYAML's safe loader: a ``!!python/...`` tag (code to run) is an
    error naming its file, line and key, and nothing is run."""
    marker = tmp_path / "constructed"
    config = tmp_path / "entry.yaml"
    config.write_text(
        "version: 1\ndefaults:\n  settings:\n"
        f"    probe: {{test_image: !!python/object/apply:os.system ['touch {marker}']}}\n"
        f"    osg: {{x: !!python/object/new:subprocess.Popen [[touch, '{marker}']]}}\n")
    proc = run_cli(["check-config", str(config)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[:2] == [
        f"{config}:{line}: defaults.settings.{key}: invalid value: could not determine a "
        f"constructor for the tag 'tag:yaml.org,2002:python/object/{tag}'"
        for line, key, tag in ((4, "probe.test_image", "apply:os.system"),
                               (5, "osg.x", "new:subprocess.Popen"))]
    assert not marker.exists()


SHADOWED = ("_json", "json", "select", "signal", "fcntl", "site", "encodings")
# (``posix``: ``open`` does not exist yet when ``encodings`` is imported)
SHADOW_MODULE = ("import posix\nposix.close(posix.open({marker!r} + '/' + __name__, "
                 "posix.O_CREAT | posix.O_WRONLY))\n")


def test_the_wrappers_python_ignores_the_jobs_python_variables_and_sandbox_modules(
        node: Node) -> None:  # noqa: F811 - the fixture
    """The job controls its sandbox (its input files) and its environment: modules named like
    those the wrapper's Python imports, in the sandbox (the cwd) or on ``PYTHONPATH``, are
    never imported (``python -I``); the job still starts in its container."""
    markers = node.root / "imported"
    markers.mkdir()
    shadow = node.root / "job_python_path"
    shadow.mkdir()
    for directory in (node.sandbox, shadow):
        for name in SHADOWED:
            (directory / f"{name}.py").write_text(SHADOW_MODULE.format(marker=str(markers)))
    env = node.env(PYTHONPATH=str(shadow))
    seen = job_view(node.run("x", env=env))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    assert len(node.calls()) == 1
    assert sorted(path.name for path in markers.iterdir()) == []


CHATTY_PLUGIN = '''"""A job-start plugin writing shell commands on its stdout (debug prints)."""

import os
import subprocess

from glidein_plugins import hookimpl


@hookimpl
def glidein_job_launch(context, job):
    marker = context.environ["MARKER_DIR"]
    print(f"touch {marker}/print")
    os.write(1, f"touch {marker}/fd1\\n".encode())
    subprocess.run(["echo", f"touch {marker}/child"], timeout=30, check=True)
    return None
'''


def test_what_a_job_start_plugin_writes_on_stdout_is_never_evaluated(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    """The wrapper ``eval``s the Python part's stdout: while plugins run, fd 1 is the job's
    stderr, so a plugin's ``print``, a write to fd 1 or a child's output is shown, never run."""
    plugins = tmp_path / "vo_plugins"
    plugins.mkdir()
    (plugins / "chatty.py").write_text(CHATTY_PLUGIN)
    glidein = set_up(tmp_path, fake_cvmfs, config=json.dumps({"version": 1, "defaults": {
        "plugins": {"directories": [str(plugins)], "enable": ["chatty"]},
        "settings": {"launch": {"failure_delay": 0}}}}))
    assert glidein.state is not None and glidein.state.job_hooks == ("chatty",)
    markers = tmp_path / "markers"
    markers.mkdir()
    sandbox = glidein.sandbox()
    proc = run_wrapper([str(install_printing_job(tmp_path / "jobs")), "x"], sandbox,
                       glidein.job_env(sandbox, MARKER_DIR=str(markers)))
    seen = job_view(proc)
    assert seen["argv"] == ["x"]
    assert seen["env"]["APPTAINER_CONTAINER"] == str(fake_cvmfs.images["rhel9"])
    assert list(markers.iterdir()) == []
    for what in ("print", "fd1", "child"):
        assert f"touch {markers}/{what}" in proc.stderr


HUGE = 1 << 20  # a 1 MiB value in the job ad


@pytest.mark.parametrize(("job_ad", "says"), [
    ({"SingularityImage": "/scratch/" + "x" * HUGE}, "the job's SingularityImage /scratch/x"),
    ({"SingularityImage": "/cvmfs/../outside.sif"}, "which is not in CVMFS"),
    ({"SingularityImage": "{root}/singularity.opensciencegrid.org/../../outside.sif"},
     "which is not in CVMFS"),
    ({"CVMFSReposList": "cms.cern.ch,../../etc"}, "CVMFSReposList names '../../etc'"),
    ({"CVMFSReposList": "cms.cern.ch/../../../etc/shadow"}, "not a repository"),
], ids=["huge-image", "dot-dot-cvmfs", "dot-dot-mount", "repo-dot-dot", "repo-path"])
def test_a_hostile_job_ad_fails_the_job_on_one_bounded_line(
        node: Node, job_ad: dict[str, str], says: str) -> None:  # noqa: F811 - the fixture
    """A job image leaving CVMFS through ``..`` (its real path is looked at, not its text), a
    repository that is a path, a 1 MiB image name: refused before any container starts, in
    one line of at most ``wrap.MESSAGE_LIMIT`` characters (HTCondor's hold reason)."""
    (node.root / "outside.sif").write_text("not in CVMFS\n")
    ad = {name: ad_string(value.format(root=node.cvmfs.root)) for name, value in job_ad.items()}
    line = node.failure(node.run("x", env=node.env(job_ad=ad)))
    assert says in line and len(line) <= wrap.MESSAGE_LIMIT
    assert node.calls() == []
    command, name, literal = node.chirped()
    assert (command, name) == ("set_job_attr", "JobWrapperFailure")
    assert len(literal) <= wrap.MESSAGE_LIMIT + 2  # the line, quoted


def test_a_huge_job_ad_attribute_does_not_stop_the_job(node: Node) -> None:  # noqa: F811
    """A 1 MiB attribute the wrapper does not use: read, and the job starts as usual."""
    seen = job_view(node.run("x", env=node.env(job_ad={"Junk": ad_string("x" * HUGE)})))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])

