"""Attack 4: a probed binary's daemon. A descendant that calls ``setsid()`` leaves the killed
process group and used to outlive setup. Setup and the periodic check are child subreapers
(``prctl(PR_SET_CHILD_SUBREAPER)``): what a command leaves behind comes back to them and is
killed when the command ends; without prctl nothing changes and nothing breaks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    FakeBin,
    glidein_result,
    install_container_runtime,
    make_work_dir,
    run_cli,
    write_executable,
)

from glidein_plugins.testing.node import make_fake_cvmfs

# in front of the fake runtime: every call leaves a daemon (setsid, then a second fork)
DAEMONIC = '''#!{python} -S
import os, sys
if os.fork() == 0:
    os.setsid()
    ready, written = os.pipe()
    if os.fork() == 0:
        os.close(ready)
        with open({pids!r}, "a") as handle:
            handle.write(str(os.getpid()) + "\\n")
        os.close(written)  # its pid is on record before the runtime can end (and reap it)
        for fd in (0, 1, 2):
            os.close(fd)
        os.execv("/bin/sleep", ["sleep", "300"])
    os.close(written)
    os.read(ready, 1)  # end of file: the daemon wrote its pid
    os._exit(0)
os.wait()
os.execv(sys.argv[0] + ".real", [sys.argv[0] + ".real", *sys.argv[1:]])
'''


def alive(pid: int) -> bool:
    """Running (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def daemons(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


@pytest.fixture
def node(tmp_path: Path):
    fakes = FakeBin(tmp_path / "bin", tmp_path / "fake_runtime.log")
    fakes.dir.mkdir()
    runtime = install_container_runtime(fakes)
    runtime.rename(runtime.with_name("apptainer.real"))
    runtime.with_name("apptainer.real.fake").symlink_to("apptainer.fake")
    pids = tmp_path / "daemons"
    write_executable(runtime, DAEMONIC.format(python=sys.executable, pids=str(pids)))
    cvmfs = make_fake_cvmfs(tmp_path / "cvmfs", fakes)
    work = make_work_dir(tmp_path / "glidein", {"GLIDEIN_Singularity_Use": "REQUIRED"})
    yield work, cvmfs.env(), pids
    for pid in daemons(pids):  # whatever a failing run left
        if alive(pid):
            os.kill(pid, 9)


def test_setup_and_the_periodic_check_leave_no_daemon_behind(node) -> None:
    work, env, pids = node
    result = glidein_result(run_cli(["setup", "glidein_config", "entry"], work, env), work)
    assert result.exit_code == 0, result.stdout
    started = daemons(pids)
    assert started, "the fake runtime left no daemon: nothing was tested"
    assert [pid for pid in started if alive(pid)] == []
    periodic = run_cli(["periodic", "glidein_config"], work, env)
    assert periodic.returncode == 0, periodic.stderr
    assert len(daemons(pids)) > len(started)
    assert [pid for pid in daemons(pids) if alive(pid)] == []


CODE = '''
import os, sys, time
{block}
from glidein_plugins.node import commands
print(commands.become_subreaper())
script = ("import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n"
          "    print(os.getpid(), flush=True)\\n    time.sleep(300)\\n")
result = commands.run([sys.executable, "-c", script], timeout=10)
print(result.ok, result.stdout.strip())
'''


@pytest.mark.parametrize("prctl", [True, False])
def test_a_command_that_escaped_its_group_is_killed_when_it_ends_or_nothing_changes(
        prctl: bool) -> None:
    block = "" if prctl else "sys.modules['ctypes'] = None  # no ctypes: no prctl"
    proc = subprocess.run([sys.executable, "-c", CODE.format(block=block)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    reaper, ran = proc.stdout.splitlines()
    ok, pid = ran.split()
    assert (reaper, ok) == (str(prctl), "True")
    try:
        deadline = time.monotonic() + 5
        while prctl and alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(int(pid)) is not prctl  # without a reaper it escapes, as before
    finally:
        if alive(int(pid)):
            os.kill(int(pid), 9)


SPARED = '''
import subprocess, sys
from glidein_plugins.node import commands
print(commands.become_subreaper(), flush=True)
# started by other code in this process (a plugin's own subprocess.run, a test runner): it is
# in our session, so the reaping after a command must leave it alone
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
for _ in range(3):
    commands.run(["true"], timeout=10)
print(sleeper.poll() is None, flush=True)
sleeper.kill()
'''


def test_reaping_never_kills_a_child_that_another_part_of_the_process_started() -> None:
    proc = subprocess.run([sys.executable, "-c", SPARED], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]  # a reaper, and the sleeper still running
