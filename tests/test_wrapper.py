"""The job wrapper (``hooks/glidein_plugins_wrapper.sh`` and ``glidein_plugins.runs.job``) run
as
HTCondor runs a USER_JOB_WRAPPER: a real shell, a real Python part, the job sandbox as cwd, the
ads in files, against setup states written for each case and a fake runtime that handles the
environment as a real one does and runs the command on the host (``install_container_runtime``).
A printing job tells what it saw. End to end after a real setup: ``test_wrapper_e2e.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ROOT,
    WRAPPER,
    FakeCvmfs,
    ad_string,
    install_container_runtime,
    install_printing_job,
    job_view,
    run_wrapper,
    runtime_calls,
    write_ad,
)

from glidein_plugins.jobstart import inputs, path_check, records, reexec, setup_state
from glidein_plugins.jobstart.plan import Plan

# arguments a shell must never touch: blanks, quotes, expansions, separators, globs, newlines
ODD_ARGS = ["plain", "two words", "it's", 'say "hi"', "$HOME", "$(touch pwned)", "`id`",
            "a;b", "x|y", "*", "", "-C", "--pid", "back\\slash", "line1\nline2", "tab\there",
            "caf\u00e9", "\udcff raw byte"]
SHELLS = {"dash": ["/bin/sh"], "busybox": ["busybox", "sh"], "bash": ["bash", "--posix"]}


def available(shell: str) -> list[str]:
    command = SHELLS[shell]
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    return command


@dataclass
class Node:
    """A worker node after setup: a runtime, CVMFS, a state file, a job sandbox, a job."""

    root: Path
    cvmfs: FakeCvmfs
    runtime: Path
    sandbox: Path
    job: Path

    @property
    def state_path(self) -> Path:
        return self.root / "work" / ".glidein_plugins" / "setup_state.json"

    @property
    def error_file(self) -> Path:
        return self.sandbox / ".job_wrapper_failure"

    @property
    def chirp_log(self) -> Path:
        return self.root / "chirp.log"

    def save(self, mode: str = "REQUIRED", features: dict[str, bool] | None = None,
             launch: dict[str, Any] | None = None, has_singularity: bool = True,
             **fields: Any) -> Path:
        """Write the setup state setup would leave (``fields`` override SetupState's)."""
        image = records.ImageState("rhel9", str(self.cvmfs.images["rhel9"]), "test")
        values: dict[str, Any] = dict(
            entry="TEST_ENTRY", mode=records.ModeState(mode, reason="negotiated"),
            work_dir=str(self.root / "work"), has_singularity=has_singularity,
            runtime=records.RuntimeState(str(self.runtime), features={
                "nested": False, "contain": True, "pid_namespaces": True, **(features or {})},
                reasons={"nested": "inside Docker"} if (features or {}).get("nested") else {}),
            images=[image], default_image=image, cvmfs_root=str(self.cvmfs.root),
            launch={"failure_delay": 0, "check_timeout": 10, **(launch or {})},
            tmp_dir=str(self.root / "work" / "tmp"))
        values.update(fields)
        setup_state.save(self.state_path, records.SetupState(**values))
        return self.state_path

    def env(self, job_ad: dict[str, str] | None = None,
            machine_ad: dict[str, str] | None = None, state: bool = True,
            **values: str) -> dict[str, str]:
        """The job's environment as the starter gives it (ads written to files; the machine
        ad names the state, as setup publishes it)."""
        published = {"GLIDEIN_PLUGINS_STATE": ad_string(str(self.state_path))} if state else {}
        env = self.cvmfs.env(
            _CONDOR_JOB_AD=str(write_ad(self.root / "job.ad", {
                "ClusterId": "1", "Cmd": ad_string(str(self.job)), **(job_ad or {})})),
            _CONDOR_MACHINE_AD=str(write_ad(self.root / "machine.ad", {
                "Name": ad_string("slot1@node"), **published, **(machine_ad or {})})),
            _CONDOR_WRAPPER_ERROR_FILE=str(self.error_file),
            CHIRP_LOG=str(self.chirp_log), GLIDEIN_PLUGINS_FAILURE_DELAY="0",
            RUNTIME_ARGV_LOG=str(self.runtime_log))
        env.update(values)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None,
            shell: list[str] | None = None) -> subprocess.CompletedProcess:
        return run_wrapper([str(self.job), *args], self.sandbox,
                           self.env() if env is None else env, shell=shell or ())

    def run_inside(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        """The second pass, as the runtime starts it: ``/bin/sh .glidein_plugins/WRAPPER
        JOB ARGS`` from the sandbox (``--pwd /srv``), the copy the first pass made."""
        copy = self.sandbox / reexec.COPY_DIR / WRAPPER.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(WRAPPER, copy)
        return run_wrapper([str(self.job), *args], self.sandbox, env,
                           wrapper=Path(reexec.COPY_DIR, WRAPPER.name), shell=["/bin/sh"])

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime_argv.log"

    def calls(self) -> list[list[str]]:
        """The runtime's calls (argv after the binary)."""
        return runtime_calls(self.runtime_log)

    def failure(self, proc: subprocess.CompletedProcess) -> str:
        """The one line a failed start left in the error file (the job must not have run)."""
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        assert proc.stdout == "", proc.stdout
        text = self.error_file.read_text()
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert "Traceback" not in proc.stderr, proc.stderr
        return text.strip()

    def chirped(self) -> list[str]:
        return self.chirp_log.read_text().split("\0")[:-1] if self.chirp_log.exists() else []


CHIRP = '#!/bin/sh\nprintf \'%s\\0\' "$@" >"$CHIRP_LOG"\n'


@pytest.fixture
def node(tmp_path: Path, fake_cvmfs: FakeCvmfs) -> Node:
    """The glidein's HTCondor (``CONDOR_DIR`` in glidein_config) has the only condor_chirp."""
    runtime = install_container_runtime(fake_cvmfs.bin)
    condor = tmp_path / "condor"
    (condor / "libexec").mkdir(parents=True)
    (condor / "libexec" / "condor_chirp").write_text(CHIRP)
    (condor / "libexec" / "condor_chirp").chmod(0o755)
    sandbox = tmp_path / "execute" / "dir_42 sand box's $x"  # quoting is tested on every run
    sandbox.mkdir(parents=True)
    node = Node(tmp_path, fake_cvmfs, runtime, sandbox, install_printing_job(tmp_path / "jobs"))
    node.save()
    (tmp_path / "work" / "glidein_config").write_text(f"CONDOR_DIR {condor}\n")
    return node


# --- the shell fragment ------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_the_fragment_is_posix_sh_that_every_shell_reads(shell: str) -> None:
    proc = subprocess.run([*available(shell), "-n", str(WRAPPER)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_shellcheck_finds_nothing_in_the_fragment() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    proc = subprocess.run(["shellcheck", "-s", "sh", str(WRAPPER)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_every_argument_reaches_the_job_unchanged_through_every_shell(node: Node,
                                                                      shell: str) -> None:
    proc = node.run(*ODD_ARGS, shell=available(shell))
    seen = job_view(proc)
    assert seen["argv"] == ODD_ARGS
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    (call,) = node.calls()
    image = call.index(str(node.cvmfs.images["rhel9"]))
    assert call[image + 1:] == ["/bin/sh", ".glidein_plugins/glidein_plugins_wrapper.sh",
                                str(node.job), *ODD_ARGS]
    assert call[call.index("--home") + 1] == f"{node.sandbox}:/srv"


def test_a_bare_decision_runs_the_job_as_it_is_and_no_python_is_needed(node: Node) -> None:
    state = node.save(mode="NEVER")  # setup decided on no container: "bare"
    decision = state.with_name(setup_state.DECISION)
    decision.write_text(decision.read_text().replace(sys.executable, "/no/such/python"))
    proc = run_wrapper([str(node.job), *ODD_ARGS], node.sandbox, node.env())
    assert job_view(proc)["argv"] == ODD_ARGS
    assert not job_view(proc)["env"]["APPTAINER_CONTAINER"]
    assert node.calls() == []
    assert not (node.sandbox / ".glidein_plugins").exists()


def test_without_a_decision_the_job_fails_never_runs_on_the_host(node: Node) -> None:
    """Changed (issue 13): a machine ad naming no state used to mean "no container"."""
    proc = run_wrapper([str(node.job), "x"], node.sandbox, node.env(state=False))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no setup decision" in node.error_file.read_text()
    assert node.calls() == []


def test_concatenated_the_state_is_found_beside_condor_job_wrapper(node: Node) -> None:
    """In the glidein's work dir (where setup keeps the state), as condor_startup.sh writes it:
    no machine ad attribute needed, and the interpreter and package setup used."""
    wrapper = node.root / "work" / "condor_job_wrapper.sh"
    wrapper.write_text("#!/bin/sh\n" + WRAPPER.read_text() + 'exec "$@"\n')
    wrapper.chmod(0o755)
    proc = run_wrapper([str(node.job), "x"], node.sandbox, node.env(state=False),
                       wrapper=wrapper)
    assert job_view(proc)["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    (call,) = node.calls()
    assert call[call.index(str(node.cvmfs.images["rhel9"])) + 1:] == [
        "/bin/sh", ".glidein_plugins/condor_job_wrapper.sh", str(node.job), "x"]


def test_the_second_pass_inside_does_the_final_setup_and_the_inside_steps(node: Node) -> None:
    steps = node.root / "steps"
    steps.mkdir()
    (steps / "one.sh").write_text('VO_STEPS="${VO_STEPS:-}one"\nexport VO_STEPS\n')
    (steps / "two words.sh").write_text('VO_STEPS="$VO_STEPS,two"\n')
    env = node.env(GWMS_SINGULARITY_REEXEC="1", APPTAINER_CONTAINER="/images/el9", HOME="/home/u",
                   TMP="/tmp/a", TMPDIR="/tmp/b", TEMP="/tmp/c", PATH="/vo/bin:/usr/bin:/bin",
                   GLIDEIN_PLUGINS_INSIDE=f"{steps / 'one.sh'}::{steps / 'two words.sh'}")
    seen = job_view(node.run_inside(*ODD_ARGS, env=env))
    assert seen["argv"] == ODD_ARGS
    assert seen["env"]["HOME"] == "/srv"
    assert not {"TMP", "TMPDIR", "TEMP"} & set(seen["env"])
    assert seen["env"]["VO_STEPS"] == "one,two"
    assert seen["env"]["PATH"] == "/vo/bin:/usr/bin:/bin"  # the job's, not the wrapper's
    assert node.calls() == []  # never wrapped twice


def test_an_inside_step_that_cannot_be_read_fails_the_job(node: Node) -> None:
    missing = node.root / "missing step.sh"
    env = node.env(GWMS_SINGULARITY_REEXEC="1", APPTAINER_CONTAINER="/images/el9",
                   GLIDEIN_PLUGINS_INSIDE=str(missing))
    assert f"{missing} (in GLIDEIN_PLUGINS_INSIDE) cannot be read" in node.failure(
        node.run_inside("x", env=env))


def test_the_marker_outside_a_container_does_not_skip_the_container(node: Node) -> None:
    seen = job_view(node.run("x", env=node.env(GWMS_SINGULARITY_REEXEC="1")))
    assert seen["env"]["APPTAINER_CONTAINER"] == str(node.cvmfs.images["rhel9"])
    assert len(node.calls()) == 1


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), [
    ("state missing", "cannot read the setup state"),
    ("state not JSON", "the setup state is not valid JSON"),
    ("package missing", "cannot import glidein_plugins.runs.job"),
    ("job ad malformed", "_CONDOR_JOB_AD"),
    ("image forbidden", "is not in CVMFS"),
    ("repository missing", "cms.cern.ch"),
])
def test_a_job_that_cannot_start_is_reported_on_one_line(node: Node, case: str,
                                                         expected: str) -> None:
    env = node.env()
    if case == "state missing":  # the decision says container, the state is gone
        node.state_path.unlink()
    elif case == "state not JSON":
        node.state_path.write_text('{"version": 1,\n "entry": }\n')
    elif case == "package missing":  # setup's package is gone: the shell reports it
        (node.root / "empty").mkdir()
        decision = node.state_path.with_name(setup_state.DECISION)
        decision.write_text(decision.read_text().replace(str(ROOT), str(node.root / "empty")))
    elif case == "job ad malformed":
        Path(env["_CONDOR_JOB_AD"]).write_text('Cmd = "/bin/true"\nnot an attribute\n')
    elif case == "image forbidden":
        env = node.env(job_ad={"SingularityImage": ad_string("/images/el9.sif")})
    else:
        env = node.env(job_ad={"CVMFSReposList": ad_string("cms.cern.ch")})
    proc = node.run("x", env=env)
    line = node.failure(proc)
    assert line.startswith("glidein_plugins wrapper: ") and expected in line, line
    assert line in proc.stderr
    assert node.chirped() == ["set_job_attr", "JobWrapperFailure",
                              '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '"']
    assert node.calls() == []


def test_the_attribute_chirped_is_the_line_for_htcondor(node: Node, classad2) -> None:
    env = node.env(job_ad={"SingularityImage": ad_string('/images/"odd"\\name.sif')})
    line = node.failure(node.run("x", env=env))
    assert '"odd"' in line
    assert classad2.ExprTree(node.chirped()[2]).eval() == line


def test_the_anti_black_hole_delay_is_the_entry_setting(node: Node) -> None:
    node.save(launch={"failure_delay": 1})
    env = node.env(job_ad={"SingularityImage": ad_string("/images/el9.sif")})
    started = time.monotonic()
    node.failure(node.run("x", env=env))
    assert time.monotonic() - started >= 1


@pytest.mark.parametrize(("mode", "asks_image", "cause", "on_host"), [
    ("PREFERRED", False, "image gone", True),
    ("PREFERRED", False, "no runtime", True),
    ("PREFERRED", True, "image gone", False),
    ("REQUIRED", False, "image gone", False),
    ("REQUIRED", False, "no runtime", False),
])
def test_preferred_falls_back_to_the_host_only_for_jobs_that_did_not_ask_for_an_image(
        node: Node, mode: str, asks_image: bool, cause: str, on_host: bool) -> None:
    node.save(mode, has_singularity=cause != "no runtime")
    job_ad = {}
    if asks_image:
        job_ad["SingularityImage"] = ad_string(str(node.cvmfs.images["rhel9"]))
    if cause == "image gone":
        shutil.rmtree(node.cvmfs.images["rhel9"])
    proc = node.run(*ODD_ARGS, env=node.env(job_ad=job_ad))
    if on_host:
        seen = job_view(proc)
        assert seen["argv"] == ODD_ARGS and not seen["env"]["APPTAINER_CONTAINER"]
        assert "PREFERRED: the job runs without a container" in proc.stderr
    else:
        node.failure(proc)
    assert node.calls() == []


def test_the_job_cvmfs_repositories_are_checked_before_the_container_starts(
        node: Node) -> None:
    for repo in ("cms.cern.ch", "oasis.opensciencegrid.org"):
        (node.cvmfs.root / repo).mkdir()
    env = node.env(job_ad={"CVMFSReposList": ad_string("cms.cern.ch, oasis.opensciencegrid.org")})
    assert job_view(node.run("x", env=env))["env"]["APPTAINER_CONTAINER"]


def test_a_path_that_hangs_is_named_within_the_timeout(tmp_path: Path) -> None:
    def look(path: str) -> str:
        if path == "/slow":
            time.sleep(60)
        return "" if path == "/fast" else f"{path}: No such file or directory"

    started = time.monotonic()
    problems = path_check.check_paths(["/fast", "/gone", "/slow", "/after"], 0.5, look)
    assert time.monotonic() - started < 10
    assert problems == ["/gone: No such file or directory",
                        "/slow could not be read within 0.5 s (stale CVMFS or network mount?)",
                        "/after not checked"]


# --- HTCondor starting the container -----------------------------------------------------------


@pytest.mark.parametrize(("features", "expected"), [
    ({}, ["-C"]),
    ({"pid_namespaces": False}, ["--contain", "--ipc", "--cleanenv"]),
    ({"nested": True, "contain": False, "pid_namespaces": False}, ["--cleanenv"]),
])
def test_htcondor_container_lines_are_never_wrapped_only_corrected(
        node: Node, features: dict[str, bool], expected: list[str]) -> None:
    node.save(features=features, decision="native")
    image = str(node.cvmfs.images["rhel9"])
    line = [str(node.runtime), "-s", "exec", "-S", "/tmp", "--pwd", "/srv", "-B",
            f"{node.sandbox}:/srv", "-C", "--no-home", image, str(node.job), *ODD_ARGS]
    proc = run_wrapper(line, node.sandbox,
                       node.env(machine_ad={inputs.LAUNCH_VAR: ad_string("native")}))
    assert job_view(proc)["argv"] == ODD_ARGS
    assert node.calls() == [["-s", "exec", "-S", "/tmp", "--pwd", "/srv", "-B",
                             f"{node.sandbox}:/srv",
                             *expected, "--no-home", image, str(node.job), *ODD_ARGS]]
    assert ("HTCondor's container command corrected" in proc.stderr) == (expected != ["-C"])


def test_in_native_mode_a_job_htcondor_started_no_container_for_runs_as_it_is(
        node: Node) -> None:
    node.save(mode="PREFERRED", decision="native")
    env = node.env(machine_ad={inputs.LAUNCH_VAR: ad_string("native")})
    seen = job_view(node.run(*ODD_ARGS, env=env))
    assert seen["argv"] == ODD_ARGS and not seen["env"]["APPTAINER_CONTAINER"]
    assert node.calls() == []


# --- the Python part ---------------------------------------------------------------------------


def test_the_default_path_never_imports_pluggy_or_yaml(node: Node) -> None:
    """What the hook's Python part imports (as the fragment runs it: -I -S, the package dir)."""
    modules = node.root / "modules.txt"
    code = ("import os, sys; sys.path.insert(0, sys.argv[3]); "
            "from glidein_plugins.runs.job import hook; code = hook(sys.argv[1:]); "
            "open(os.environ['MODULES'], 'w').write(' '.join(sys.modules)); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(node.state_path),
                           str(WRAPPER), str(ROOT), str(node.job)], cwd=node.sandbox,
                          env=node.env(MODULES=str(modules)), capture_output=True, timeout=60)
    assert proc.returncode == 0 and b"\nexec '" in proc.stdout, proc.stderr
    imported = set(modules.read_text().split())
    assert "glidein_plugins.jobstart.launch" in imported
    assert not {"pluggy", "yaml", "glidein_plugins.engine.manager",
                "glidein_plugins.engine.runner"} & imported


def test_the_cli_wrap_command_starts_the_job_in_its_container(node: Node) -> None:
    environ = {**node.env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "glidein_plugins", "wrap", "--", str(node.job),
                           *ODD_ARGS], cwd=node.sandbox, env=environ, capture_output=True,
                          text=True, errors="surrogateescape", timeout=60)
    seen = job_view(proc)
    assert seen["argv"] == ODD_ARGS
    assert seen["env"]["HOME"] == "/srv" and seen["env"]["GWMS_SINGULARITY_REEXEC"] == "1"
    shell = subprocess.run([sys.executable, "-m", "glidein_plugins", "wrap", "--shell", "--",
                            str(node.job), "a b"], cwd=node.sandbox, env=environ,
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[-1].startswith(f"exec '{node.runtime}' 'exec' ")
    assert shell.stdout.splitlines()[-1].endswith(f" '{node.job}' 'a b'")


def test_the_plan_quotes_every_word_for_the_shell() -> None:
    plan = Plan(["/bin/echo", *ODD_ARGS], True, {"A": "it's $x", "B.C": "kept"},
                     ["warn"])
    text = plan.shell({"OLD": "1", "B.C": "x", "A": "old"})
    proc = subprocess.run(["/bin/sh", "-c", 'eval "$1"', "sh", os.fsdecode(text)],
                          capture_output=True, timeout=30, env={"OLD": "1", "PATH": "/bin"})
    assert proc.stdout.decode("utf-8", "surrogateescape") == " ".join(ODD_ARGS) + "\n"
    assert b"unset OLD\n" in text and b"export A='it'\\''s $x'\n" in text
    assert b"B.C" not in text  # not a shell name: passed on unchanged
