"""Security defences that no other test file shows (SECURITY.md maps every threat to its tests).

Run for real: the package's own source read with ``ast``, the job wrapper started as HTCondor
starts a USER_JOB_WRAPPER (a real shell, the real Python part, the sandbox as cwd, the ads in
files), and after a real setup for a job-start plugin. The job controls its environment
(HTCondor merges it over the glidein's) and its sandbox (its input files): each attack through
them has a test below; a program of the job's that runs on the host leaves a marker file.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    WRAPPER,
    ad_string,
    install_printing_job,
    job_view,
    run_cli,
    run_wrapper,
)
from test_wrapper import Node, node  # noqa: F401 - the node fixture
from test_wrapper_e2e import VO_PLUGIN, Glidein, set_up

from glidein_plugins.jobstart import launch_env, records, reexec, report, setup_state
from glidein_plugins.testing import FakeCvmfs

PACKAGE = ROOT / "glidein_plugins"
# the module the wrapper's first pass imports (a job's own copy of it must never run)
WRAPPER_ENTRY = re.search(r"from (glidein_plugins[\w.]*) import hook",
                          (ROOT / "hooks" / "glidein_plugins_wrapper.sh").read_text()).group(1)
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
EXPECTED_CALLS = {("node/commands.py", "subprocess.Popen"), ("jobstart/path_check.py", "os.fork"),
                  ("jobstart/reexec.py", "os.execve"), ("jobstart/reexec.py", "os.execvpe")}


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
    """The hooks ``eval`` nothing but what ``Plan.shell`` printed (single-quoted words:
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
        for line, key, tag in (("4:13", "probe.test_image", "apply:os.system"),
                               ("5:11", "osg.x", "new:subprocess.Popen"))]
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


def with_drop_in(tmp_path: Path, fake_cvmfs: FakeCvmfs, name: str, source: str) -> Glidein:
    """A glidein set up with the site drop-in ``name`` (a job-start plugin) enabled."""
    plugins = tmp_path / "vo_plugins"
    plugins.mkdir()
    (plugins / f"{name}.py").write_text(source)
    return set_up(tmp_path, fake_cvmfs, config=json.dumps({"version": 1, "defaults": {
        "plugins": {"directories": [str(plugins)], "enable": [name]},
        "settings": {"launch": {"failure_delay": 0}}}}))


def test_what_a_job_start_plugin_writes_on_stdout_is_never_evaluated(
        tmp_path: Path, fake_cvmfs: FakeCvmfs) -> None:
    """The wrapper ``eval``s the Python part's stdout: while plugins run, fd 1 is the job's
    stderr, so a plugin's ``print``, a write to fd 1 or a child's output is shown, never run."""
    glidein = with_drop_in(tmp_path, fake_cvmfs, "chatty", CHATTY_PLUGIN)
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
    one line of at most ``report.MESSAGE_LIMIT`` characters (HTCondor's hold reason)."""
    (node.root / "outside.sif").write_text("not in CVMFS\n")
    ad = {name: ad_string(value.format(root=node.cvmfs.root)) for name, value in job_ad.items()}
    line = node.failure(node.run("x", env=node.env(job_ad=ad)))
    assert says in line and len(line) <= report.MESSAGE_LIMIT
    assert node.calls() == []
    command, name, literal = node.chirped()
    assert (command, name) == ("set_job_attr", "JobWrapperFailure")
    assert len(literal) <= report.MESSAGE_LIMIT + 2  # the line, quoted


def test_a_huge_job_ad_attribute_does_not_stop_the_job(node: Node) -> None:  # noqa: F811
    """A 1 MiB attribute the wrapper does not use: read, and the job starts as usual."""
    seen = job_view(node.run("x", env=node.env(job_ad={"Junk": ad_string("x" * HUGE)})))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])



# -- the job's environment and sandbox at job start (SECURITY.md L1, L2) ---------------------------

# programs the wrapper, its Python part or the runtime might look up on a PATH
LOOKED_UP = ("python3", "python", "sh", "sed", "tr", "cut", "tail", "timeout", "sleep", "rm",
             "condor_chirp", "apptainer", "singularity", "stat", "env", "mkdir", "squashfuse")
# a program of the job's: it leaves a marker, then does what the real one would
MARKING = ('#!/bin/sh\n: >"{markers}/{name}"\nfor d in /usr/bin /bin; do\n'
           '    [ -x "$d/{name}" ] && exec "$d/{name}" "$@"\ndone\nexit 127\n')


def job_programs(where: Node, directory: Path, names: tuple[str, ...] = LOOKED_UP) -> Path:
    """Marking programs in ``directory`` (the job's); returns where markers appear."""
    markers = where.root / "markers"
    markers.mkdir(exist_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text(MARKING.format(markers=markers, name=name))
        (directory / name).chmod(0o755)
    return markers


def fail_in_shell(where: Node) -> None:
    """Make the Python part impossible (setup's package gone): the shell reports alone."""
    (where.root / "empty").mkdir(exist_ok=True)
    decision = where.state_path.with_name(setup_state.DECISION)
    decision.write_text(decision.read_text().replace(str(ROOT), str(where.root / "empty")))


@pytest.mark.parametrize("flow", ["container", "python reports", "shell reports"])
def test_a_path_of_the_jobs_never_runs_its_programs_on_the_host(
        node: Node, flow: str) -> None:  # noqa: F811 - the fixture
    """``PATH=.:SANDBOX:...`` with a ``python3``, ``sed``, ``condor_chirp``... of the job's in
    the sandbox: the wrapper, its Python part and the runtime never run them; the job is
    started (or its failure reported, chirp included) as without them."""
    markers = job_programs(node, node.sandbox)
    job_ad = {} if flow == "container" else {"SingularityImage": ad_string("/images/x.sif")}
    if flow == "shell reports":
        fail_in_shell(node)
    proc = node.run("x", env=node.env(job_ad=job_ad, PATH=f".:{node.sandbox}:/usr/bin:/bin"))
    if flow == "container":
        assert job_view(proc)["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
        assert len(node.calls()) == 1
    else:
        node.failure(proc)
        assert node.chirped()[:2] == ["set_job_attr", "JobWrapperFailure"]
    assert sorted(path.name for path in markers.iterdir()) == []


def test_on_the_host_the_job_gets_its_own_path_back(node: Node) -> None:  # noqa: F811
    """PREFERRED's fallback runs the job on the host with its ``PATH``, not the wrapper's."""
    node.save("PREFERRED", has_singularity=False)
    seen = job_view(node.run("x", env=node.env(PATH="/job/bin:/usr/bin:/bin")))
    assert not seen["env"]["APPTAINER_CONTAINER"]
    assert seen["env"]["PATH"] == "/job/bin:/usr/bin:/bin"


@pytest.mark.parametrize("variable", ["GLIDEIN_PLUGINS_STATE", "GLIDEIN_PLUGINS_PYTHON",
                                      "GLIDEIN_PLUGINS_DIR"])
def test_the_jobs_state_python_and_package_variables_are_ignored(
        node: Node, variable: str) -> None:  # noqa: F811 - the fixture
    """A state of the job's saying NEVER, a Python of the job's, a package of the job's (a
    ``glidein_plugins`` whose job-start module would run as the pilot): none is used; the job
    starts in the container setup decided."""
    markers = job_programs(node, node.sandbox / "bin", ("python3",))
    own = node.sandbox / "own"
    entry = own / Path(*WRAPPER_ENTRY.split(".")).with_suffix(".py")
    entry.parent.mkdir(parents=True)
    for package in entry.parents:
        if package == own:
            break
        (package / "__init__.py").write_text("")
    entry.write_text(f"open({str(markers / 'package')!r}, 'w').close()\n")
    never = records.SetupState(entry="E", mode=records.ModeState("NEVER"))
    setup_state.save(own / "state.json", never)
    value = {"GLIDEIN_PLUGINS_STATE": str(own / "state.json"),
             "GLIDEIN_PLUGINS_PYTHON": str(node.sandbox / "bin" / "python3"),
             "GLIDEIN_PLUGINS_DIR": str(own)}[variable]
    seen = job_view(node.run("x", env=node.env(**{variable: value})))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    assert len(node.calls()) == 1
    assert sorted(path.name for path in markers.iterdir()) == []


def test_a_relative_state_in_the_machine_ad_fails_the_job_never_reads_the_sandbox(
        node: Node) -> None:  # noqa: F811 - the fixture
    """A relative path would be the sandbox's (the cwd): one line, the job does not run."""
    setup_state.save(node.sandbox / "state.json",
                     records.SetupState(entry="E", mode=records.ModeState("NEVER")))
    env = node.env(state=False, machine_ad={"GLIDEIN_PLUGINS_STATE": ad_string("state.json")})
    assert "is not an absolute path" in node.failure(node.run("x", env=env))
    assert node.calls() == []


@pytest.mark.parametrize("forged", [
    {"GWMS_SINGULARITY_REEXEC": "1", "APPTAINER_CONTAINER": "x"},
    {"GWMS_SINGULARITY_REEXEC": "1", "SINGULARITY_CONTAINER": "x", "APPTAINER_CONTAINER": "y"},
    {"APPTAINER_CONTAINER": "/pilot.sif"},  # "nested": would drop --contain --ipc --pid
], ids=["second-pass", "second-pass-singularity", "nested"])
def test_a_forged_second_pass_or_nesting_gets_the_full_container(
        node: Node, forged: dict[str, str]) -> None:  # noqa: F811 - the fixture
    """The second pass is this file run as ``/bin/sh .glidein_plugins/NAME`` (a relative
    ``$0``: HTCondor runs the USER_JOB_WRAPPER by its absolute path), and nesting is what
    setup found: on the host, the marker variables lead to the container, with every option."""
    seen = job_view(node.run("x", env=node.env(**forged)))
    image = str(node.cvmfs.images["rhel9"])
    assert seen["env"]["APPTAINER_CONTAINER"] == image
    (call,) = node.calls()
    assert call[call.index("--pwd") + 2:call.index("--pwd") + 5] == ["--ipc", "--contain",
                                                                     "--pid"]


def test_the_jobs_native_mode_variable_does_not_skip_the_container(
        node: Node) -> None:  # noqa: F811 - the fixture
    """Native mode (HTCondor starts containers) comes from the machine ad only."""
    seen = job_view(node.run("x", env=node.env(GLIDEIN_CONTAINER_LAUNCH="native")))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    assert len(node.calls()) == 1


def test_a_jobs_own_apptainer_is_a_job_like_any_other(node: Node) -> None:  # noqa: F811
    """``executable = .../apptainer``, ``arguments = exec --bind /:/host IMAGE CMD``: not
    HTCondor's container line (not the runtime setup proved, not root's): started in the
    container like any job, never run on the host."""
    own = install_printing_job(node.root / "job_bin").rename(node.root / "job_bin" / "apptainer")
    image = str(node.cvmfs.images["rhel9"])
    args = ["exec", "--bind", "/:/host", image, "/bin/sh"]
    proc = run_wrapper([str(own), *args], node.sandbox, node.env())
    seen = job_view(proc)
    assert seen["argv"] == args and seen["env"]["APPTAINER_CONTAINER"] == image
    (call,) = node.calls()
    assert call[:3] == ["exec", "--home", f"{node.sandbox}:/srv"]
    assert call[call.index(image) + 1:] == [
        "/bin/sh", ".glidein_plugins/glidein_plugins_wrapper.sh", str(own), *args]


RUNTIME_OPTIONS = {
    "APPTAINER_BIND": "/:/host", "APPTAINER_BINDPATH": "/etc:/x", "SINGULARITY_BIND": "/:/h",
    "SINGULARITY_BINDPATH": "/home", "APPTAINER_OVERLAY": "/tmp/o.img",
    "APPTAINER_NO_MOUNT": "tmp", "SINGULARITY_CONTAINALL": "", "APPTAINER_CONFIGDIR": "/x",
    "APPTAINERENV_LD_PRELOAD": "/srv/evil.so", "SINGULARITYENV_PATH": "/srv",
}


@pytest.mark.parametrize("container_env", ["clearpaths", "keepall"])
def test_the_jobs_runtime_variables_never_reach_the_runtime(
        node: Node, container_env: str) -> None:  # noqa: F811 - the fixture
    """Binds, overlays, mounts and every other option the runtime reads from its environment,
    and the container's variables: dropped, the warning naming those with a value; the
    runtime's ``PATH`` is never the job's, even with ``keepall``. (The fake runtime passes its
    environment into the container: what the job sees is what the runtime got.)"""
    node.save(container_env=container_env)
    markers = job_programs(node, node.sandbox, ("squashfuse", "fakeroot"))
    proc = node.run("x", env=node.env(**RUNTIME_OPTIONS, PATH=f"{node.sandbox}:/usr/bin:/bin"))
    inside = job_view(proc)["env"]
    assert not set(RUNTIME_OPTIONS) & set(inside)
    assert not {"LD_PRELOAD", "PATH"} & {name for name in inside if inside[name] == "/srv"}
    assert inside["PATH"] == launch_env.CLEAN_PATH
    named = sorted(name for name, value in RUNTIME_OPTIONS.items() if value)
    assert f"not passed into the container (set by the job?): {', '.join(named)}" in proc.stderr
    assert sorted(path.name for path in markers.iterdir()) == []


@pytest.mark.parametrize("attack", ["GLIDEIN_PLUGINS_DISABLE", "GLIDEIN_PLUGINS_CONFIG_DIR"])
def test_the_job_cannot_choose_the_job_start_plugins(
        tmp_path: Path, fake_cvmfs: FakeCvmfs, attack: str) -> None:
    """A VO plugin refusing jobs without a token: the job cannot switch it off
    (``GLIDEIN_PLUGINS_DISABLE``), nor bring its own configuration enabling a plugin of its
    own (``GLIDEIN_PLUGINS_CONFIG_DIR``: a drop-in that would run as the pilot). What runs is
    what setup found (the state's ``job_hooks``), configured from the package."""
    glidein = with_drop_in(tmp_path, fake_cvmfs, "myvo", VO_PLUGIN)
    sandbox = glidein.sandbox()
    markers = tmp_path / "markers"
    markers.mkdir()
    (sandbox / "own").mkdir()
    (sandbox / "own" / "evil.py").write_text(
        f"open({str(markers / 'evil')!r}, 'w').close()\n")
    (sandbox / "conf").mkdir()
    (sandbox / "conf" / "entry.yaml").write_text(json.dumps({"version": 1, "defaults": {
        "plugins": {"directories": [str(sandbox / "own")], "enable": ["evil"],
                    "disable": ["myvo"]}}}))
    value = {"GLIDEIN_PLUGINS_DISABLE": "myvo",
             "GLIDEIN_PLUGINS_CONFIG_DIR": str(sandbox / "conf")}[attack]
    env = glidein.job_env(sandbox, MYVO_LOG=str(tmp_path / "myvo.log"), **{attack: value})
    proc = run_wrapper([str(install_printing_job(tmp_path / "jobs")), "x"], sandbox, env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "MyVO: no token in the sandbox" in (sandbox / ".job_wrapper_failure").read_text()
    assert list(markers.iterdir()) == [] and glidein.calls() == []


def test_a_link_in_the_sandbox_never_moves_the_wrappers_copy(
        node: Node) -> None:  # noqa: F811 - the fixture
    """``.glidein_plugins`` left in the sandbox as a link to elsewhere: replaced by a directory,
    the copy written there; nothing written where the link pointed."""
    victim = node.root / "victim"
    victim.mkdir()
    (node.sandbox / reexec.COPY_DIR).symlink_to(victim)
    assert job_view(node.run("x"))["env"]["APPTAINER_CONTAINER"]
    assert list(victim.iterdir()) == []
    copy = node.sandbox / reexec.COPY_DIR / WRAPPER.name
    assert not copy.parent.is_symlink() and copy.read_bytes() == WRAPPER.read_bytes()


@pytest.mark.parametrize("flow", ["python reports", "shell reports"])
def test_a_link_as_the_error_file_is_never_followed(
        node: Node, flow: str) -> None:  # noqa: F811 - the fixture
    """``.job_wrapper_failure`` left as a link to a pilot's file (glidein_config, a proxy): the
    failure line replaces the link, the file keeps its content."""
    victim = node.root / "work" / "glidein_config"
    before = victim.read_text()
    node.error_file.symlink_to(victim)
    if flow == "shell reports":
        fail_in_shell(node)
    env = node.env(job_ad={"SingularityImage": ad_string("/images/x.sif")})
    line = node.failure(node.run("x", env=env))
    assert line.startswith("glidein_plugins wrapper: ")
    assert not node.error_file.is_symlink() and victim.read_text() == before


EVIL_LIBRARY = """#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
    int fd = open("MARKER", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}
"""


@pytest.mark.xfail(strict=True, reason="SECURITY.md L1: the dynamic loader reads LD_PRELOAD "
                   "(LD_LIBRARY_PATH, LD_AUDIT) from the job's environment when it starts the "
                   "wrapper's shell, before its first line; HTCondor has no way to filter it")
def test_the_loaders_variables_act_before_the_wrappers_first_line(
        node: Node, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the job's library")
    marker = tmp_path / "preloaded"
    source = tmp_path / "evil.c"
    source.write_text(EVIL_LIBRARY.replace("MARKER", str(marker)))
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(node.sandbox / "evil.so"),
                    str(source)], check=True, timeout=120, capture_output=True)
    job_view(node.run("x", env=node.env(LD_PRELOAD="./evil.so")))
    assert not marker.exists()
