"""What every attack of tests/security/ runs against: a glidein after a real ``glidein-plugins
setup`` on a fake node (the tests' fake runtime and CVMFS), in wrapper or native mode, and its
job wrapper as GlideinWMS deploys it: ``condor_job_wrapper.sh`` in the glidein's work dir,
``#!/bin/sh``, the fragment, ``exec "$@"``, as ``condor_startup.sh`` concatenates it, run as
the starter runs the ``USER_JOB_WRAPPER`` (by its absolute path, the sandbox as cwd, the job's
environment) by each shell a worker node may have as ``/bin/sh``: bash (invoked as ``sh``, as
on EL), dash (Debian, Ubuntu) and busybox ``ash``.

A shell missing here is skipped, but not in CI (``CI`` set), where ``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    FakeBin,
    FakeCvmfs,
    ad_string,
    glidein_result,
    install_container_runtime,
    install_printing_job,
    make_work_dir,
    run_cli,
    runtime_calls,
    starter_view,
    write_ad,
    write_executable,
)

from glidein_plugins.testing.node import make_fake_cvmfs

FRAGMENT = ROOT / "hooks" / "glidein_plugins_wrapper.sh"
SHELLS = ("bash-as-sh", "dash", "busybox-ash")
MODES = ("wrapper", "native")
# every command name the wrapper's text uses, the special built-ins, the commands it starts,
# the names of its own functions, and bash's hooks
COMMAND_NAMES = (
    "[", "test", "printf", "echo", "read", "command", "cd", "type", "sed", "tr", "cut", "tail",
    "timeout", "sleep", "rm", "cat", "env", "python3", "python", "sh", "bash", "dirname",
    "basename", "condor_chirp", "mkdir", "cp", "mv", "ln", "apptainer", "singularity", "exec",
    "eval", "set", "unset", "export", "shift", "exit", "return", "trap", "break", "continue",
    ".", ":", "true", "false", "id", "head", "grep", "awk", "expr", "readlink", "realpath",
    "_gp_fail", "_gp_job_path", "command_not_found_handle", "platform-python",
)


def shell_argv(name: str, tmp: Path) -> list[str]:
    """How to run a script with shell ``name`` as ``/bin/sh`` would (skipped when missing)."""
    if name == "bash-as-sh":
        bash = shutil.which("bash")
        if bash:
            (tmp / "bash_as_sh").mkdir(exist_ok=True)
            link = tmp / "bash_as_sh" / "sh"  # argv[0] "sh": bash enters POSIX mode
            if not link.exists():
                link.symlink_to(bash)
            return [str(link)]
    elif name == "dash" and shutil.which("dash"):
        return [str(shutil.which("dash"))]
    elif name == "busybox-ash" and shutil.which("busybox"):
        return [str(shutil.which("busybox")), "ash"]
    if os.environ.get("CI"):
        pytest.fail(f"{name} is needed for the security tests in CI")
    pytest.skip(f"{name} is not installed")


@dataclass
class Glidein:
    """A glidein after a successful setup, its ``condor_job_wrapper.sh`` ready."""

    root: Path
    work: Path
    cvmfs: FakeCvmfs
    mode: str
    env: dict[str, str]  # the glidein's (the node's) environment

    @property
    def wrapper(self) -> Path:
        return self.work / "condor_job_wrapper.sh"

    @property
    def runtime(self) -> Path:
        return self.cvmfs.bin.dir / "apptainer"

    @property
    def image(self) -> str:
        return str(self.cvmfs.images["rhel9"])

    def sandbox(self, name: str) -> Path:
        """A fresh job sandbox (the starter's ``execute/dir_N``)."""
        sandbox = self.root / "execute" / name
        if sandbox.exists():
            shutil.rmtree(sandbox)
        sandbox.mkdir(parents=True)
        return sandbox

    def job_env(self, sandbox: Path, job_ad: dict[str, str] | None = None,
                **values: str) -> dict[str, str]:
        """The job's environment as the starter gives it: the glidein's, what condor_startup.sh
        exports to jobs from condor_vars.lst, the ads in the sandbox (the machine ad with every
        attribute published to the startd), the error file; then the job's own ``values``."""
        exported, published = starter_view(self.work)
        return {
            **self.env, **exported,
            "_CONDOR_JOB_AD": str(write_ad(sandbox / ".job.ad", {
                "ClusterId": "7", "Iwd": ad_string(str(sandbox)), **(job_ad or {})})),
            "_CONDOR_MACHINE_AD": str(write_ad(sandbox / ".machine.ad", {
                "Name": ad_string("slot1_1@node"), **published})),
            "_CONDOR_WRAPPER_ERROR_FILE": str(sandbox / ".job_wrapper_failure"),
            "_CONDOR_SCRATCH_DIR": str(sandbox),
            "RUNTIME_ARGV_LOG": str(self.runtime_log),
            "GLIDEIN_PLUGINS_FAILURE_DELAY": "0",  # when the entry's setting cannot be read
            **values,
        }

    @property
    def runtime_log(self) -> Path:
        return self.root / "runtime_argv.log"

    def calls(self) -> list[list[str]]:
        """The runtime's calls made by job starts (setup's probes excluded)."""
        return [call for call in runtime_calls(self.runtime_log)
                if "cat" not in call and "version" not in call and "--version" not in call]

    def job_argv(self, job: Path, sandbox: Path, *args: str) -> list[str]:
        """What the starter hands the wrapper: the job (wrapper mode), or HTCondor's own
        container line around it (native mode, as HTCondor's starter writes it)."""
        if self.mode == "wrapper":
            return [str(job), *args]
        return [str(self.runtime), "exec", "-S", "/tmp", "-S", "/var/tmp", "--pwd", "/srv",
                "-B", f"{sandbox}:/srv", "--no-home", "-C", self.image, str(job), *args]

    def run(self, shell: Sequence[str], argv: Sequence[str], sandbox: Path,
            env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
        """The wrapper as the starter runs it, by ``shell``."""
        return subprocess.run([*shell, str(self.wrapper), *argv], cwd=sandbox, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              text=True, errors="surrogateescape")

    def error(self, sandbox: Path) -> str:
        path = sandbox / ".job_wrapper_failure"
        return path.read_text() if path.exists() else ""


def build_glidein(root: Path, mode: str, frontend: str = "REQUIRED") -> Glidein:
    """A fake node under ``root`` and a real setup on it, in ``mode`` (``wrapper`` or
    ``native``), then ``condor_job_wrapper.sh`` as condor_startup.sh writes it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir()
    fakes = FakeBin(root / "bin", root / "fake_runtime.log")
    install_container_runtime(fakes)
    cvmfs = make_fake_cvmfs(root / "cvmfs", fakes)
    work = make_work_dir(root / "glidein", {"GLIDEIN_Singularity_Use": frontend})
    config = root / "factory.yaml"
    config.write_text("version: 1\ndefaults:\n  settings:\n    launch: {failure_delay: 0, "
                      f"native: {'true' if mode == 'native' else 'false'}}}\n")
    env = cvmfs.env()
    result = glidein_result(run_cli(["setup", "glidein_config", "entry", "--config",
                                     str(config)], work, env), work)
    assert result.exit_code == 0, result.stdout
    decision = json.loads((work / ".glidein_plugins" / "setup_state.json").read_text())
    expected = {"native": "native", "wrapper": "container"}[mode] if frontend in (
        "REQUIRED", "PREFERRED") else "bare"
    assert decision["decision"] == expected, result.stdout
    wrapper = work / "condor_job_wrapper.sh"
    wrapper.write_text("#!/bin/sh\n\n# This script is started just before the user job\n"
                       + FRAGMENT.read_text()
                       + '\n# Condor job wrappers must replace its own image\nexec "$@"\n')
    wrapper.chmod(0o755)
    return Glidein(root, work, cvmfs, mode, env)


def printing_job(glidein: Glidein) -> Path:
    """A job that prints its argv, cwd and environment as JSON (``seen``)."""
    return install_printing_job(glidein.root / "jobs")


def seen(proc: subprocess.CompletedProcess) -> dict[str, object]:
    """What the printing job saw; the wrapper must have started it."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def write_runtime(path: Path, body: str) -> Path:
    """Replace the runtime at ``path`` by a Python script (``body`` after the common head:
    ``args``, the call logged in ``$RUNTIME_ARGV_LOG``, ``command``: what it would run; at most
    5 calls per job (sandbox), then exit 99: a runaway re-entry cannot become a fork storm here)."""
    head = f'''#!{sys.executable} -S
import json, os, sys
args = sys.argv[1:]
log = os.environ.get("RUNTIME_ARGV_LOG") or {str(path.parent / "calls.log")!r}
with open(log, "a") as handle:
    handle.write(json.dumps(args) + "\\n")
with open(".fake_runtime_starts", "a+") as handle:  # in the job's sandbox: per job
    handle.write("x")
    handle.seek(0)
    if len(handle.read()) > 5:
        sys.exit(99)
index = args.index("exec") + 1
while args[index].startswith("-"):
    index += 2 if args[index] in ("-B", "--bind", "--home", "--pwd", "-S") else 1
command = args[index + 1:]
'''
    real = path.with_name(path.name + ".replaced")
    if not real.exists():
        path.rename(real)
    return write_executable(path, head + body)


__all__ = ["COMMAND_NAMES", "MODES", "SHELLS", "Glidein", "build_glidein", "printing_job",
           "seen", "shell_argv", "write_runtime"]
