"""commands.run with real processes: failures turned into reasons, hung commands killed with
their whole process group, descendants that hold the pipes not waited for, output bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from _proto_support import wait_gone

from glidein_plugins.node.commands import OUTPUT_LIMIT, run

PY = sys.executable
QUICK = 10.0  # seconds: a bound for "did not hang", generous for a loaded machine


def pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()]


def test_ok_command() -> None:
    result = run(["echo", "hello  world"])
    assert (result.ok, result.returncode, result.stdout, result.stderr, result.reason) == (
        True, 0, "hello  world\n", "", "")
    assert not result.timed_out and result.error == ""


@pytest.mark.parametrize(("script", "reason"), [
    ("echo out; echo first >&2; echo 'the last line' >&2; echo >&2; exit 3",
     "sh: exit code 3: the last line"),
    ("echo only stdout; exit 2", "sh: exit code 2: only stdout"),
    ("exit 1", "sh: exit code 1"),
    ("kill -TERM $$", "sh: killed by signal 15"),
])
def test_failure_reason_has_the_code_and_the_last_line(script: str, reason: str) -> None:
    result = run(["sh", "-c", script])
    assert not result.ok
    assert result.reason == reason


def test_reason_quotes_a_bounded_part_of_a_long_line() -> None:
    result = run([PY, "-c", "import sys; sys.stderr.write('y' * 5000); sys.exit(1)"])
    assert result.reason == f"{PY}: exit code 1: " + "y" * 300


def start_error_case(kind: str, tmp_path: Path) -> tuple[list[str], str | None]:
    """An argv (and cwd) that cannot even start, of the given kind."""
    script = tmp_path / "script"
    if kind == "not executable":
        script.write_text("#!/bin/sh\necho hi\n")
        script.chmod(0o644)
    elif kind == "no interpreter line":
        script.write_text("echo hi\n")
        script.chmod(0o755)
    return {
        "not found": (["no-such-command-for-glidein-tests"], None),
        "absolute path not found": ([str(tmp_path / "missing")], None),
        "not executable": ([str(script)], None),
        "a directory": ([str(tmp_path)], None),
        "no interpreter line": ([str(script)], None),
        "missing cwd": (["true"], str(tmp_path / "missing")),
        "empty": ([], None),
        "NUL byte": (["echo", "a\0b"], None),
    }[kind]


@pytest.mark.parametrize(("kind", "error"), [
    ("not found", "not found"),
    ("absolute path not found", "not found"),
    ("not executable", "permission denied"),
    ("a directory", "permission denied"),
    ("no interpreter line", "not an executable (exec format error)"),
    ("missing cwd", "working directory {tmp_path}/missing: not found"),
    ("empty", "empty command"),
    ("NUL byte", "embedded null byte"),
])
def test_command_that_cannot_start(tmp_path: Path, kind: str, error: str) -> None:
    argv, cwd = start_error_case(kind, tmp_path)
    result = run(argv, cwd=cwd)
    assert (result.ok, result.returncode, result.timed_out) == (False, None, False)
    assert result.error == error.format(tmp_path=tmp_path)
    assert result.reason == f"{argv[0] if argv else '?'}: {result.error}"


def test_input_output_environment_and_directory(tmp_path: Path) -> None:
    big = "x" * 300_000  # more than a pipe holds
    result = run([PY, "-c", "import os, sys; d = sys.stdin.read(); "
                  "print(os.getcwd(), os.environ['GLP_X'], len(d))"],
                 env={"GLP_X": "y z", "PATH": os.environ["PATH"]}, cwd=str(tmp_path), stdin=big)
    assert result.stdout == f"{tmp_path} y z 300000\n"


@pytest.mark.parametrize("stdin", [None, "x" * 300_000], ids=["no-input", "unread-input"])
def test_input_never_blocks(stdin: str | None) -> None:
    """No input: the command reads end of file. Input it does not read: no deadlock."""
    start = time.monotonic()
    result = run(["cat" if stdin is None else "true"], stdin=stdin, timeout=QUICK)
    assert result.ok and result.stdout == "", result.reason
    assert time.monotonic() - start < QUICK


def test_undecodable_output_is_replaced() -> None:
    assert run(["printf", "caf\\351"]).stdout == "caf\ufffd"


def test_hanging_command_is_killed_at_the_timeout() -> None:
    start = time.monotonic()
    result = run(["sleep", "60"], timeout=0.5)
    elapsed = time.monotonic() - start
    assert (result.ok, result.timed_out, result.returncode) == (False, True, None)
    assert result.reason.startswith("sleep: timed out after ")
    assert 0.5 <= result.seconds <= elapsed < QUICK


@pytest.mark.parametrize("script", [
    "sleep 60 & echo $$ $! > pids; wait",  # the command waits for its child
    "sleep 60 & echo $$ $! > pids; exec >&- 2>&-; sleep 60",  # closes its output first
])
def test_the_whole_process_group_is_killed_at_the_timeout(tmp_path: Path, script: str) -> None:
    result = run(["sh", "-c", script], cwd=str(tmp_path), timeout=0.5)
    assert result.timed_out
    for pid in pids(tmp_path / "pids"):
        assert wait_gone(pid), f"process {pid} survived"


def test_a_child_holding_the_output_does_not_keep_run_waiting(tmp_path: Path) -> None:
    """The command exits; its background child still holds stdout: run returns, kills it."""
    start = time.monotonic()
    result = run(["sh", "-c", "sleep 60 & echo $! > pids; echo parent done"], cwd=str(tmp_path),
                 timeout=30)
    assert time.monotonic() - start < QUICK
    assert (result.ok, result.stdout) == (True, "parent done\n"), result.reason
    assert wait_gone(pids(tmp_path / "pids")[0])


def test_a_descendant_that_left_the_group_does_not_keep_run_waiting(tmp_path: Path) -> None:
    """One that made its own session cannot be killed with the group, nor hang run."""
    start = time.monotonic()
    try:
        result = run(["sh", "-c", "setsid sleep 60 & echo $! > pids; echo parent done"],
                     cwd=str(tmp_path), timeout=30)
        assert time.monotonic() - start < QUICK
        assert (result.ok, result.stdout) == (True, "parent done\n"), result.reason
    finally:
        for pid in pids(tmp_path / "pids"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_command_that_closed_its_output_is_still_waited_for() -> None:
    result = run(["sh", "-c", "exec >&- 2>&-; sleep 0.3; exit 4"], timeout=QUICK)
    assert (result.returncode, result.timed_out) == (4, False)


def test_output_is_bounded_keeping_the_head_of_stdout_and_the_tail_of_stderr() -> None:
    size = 3 * OUTPUT_LIMIT
    result = run([PY, "-c", f"import sys; sys.stdout.write('HEAD' + 'a' * {size}); "
                  f"sys.stderr.write('noise\\n' * {size // 6} + 'the end\\n'); sys.exit(1)"],
                 timeout=30)
    assert len(result.stdout) == len(result.stderr) == OUTPUT_LIMIT
    assert result.stdout.startswith("HEADaaa") and result.stderr.endswith("noise\nthe end\n")
    assert result.reason == f"{PY}: exit code 1: the end"
