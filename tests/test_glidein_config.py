"""glidein_config: reading as ``gconfig_get`` does, and writing as ``gconfig_add_safe`` does, with
real files, real concurrent processes (Python and bash), a writer killed mid-write, stale locks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _proto_support import CHILD_TIMEOUT, DROP_ROOT, python_popen, python_run

from glidein_plugins.errors import ConfigError
from glidein_plugins.node import atomic
from glidein_plugins.protocol.glideinwms import glidein_config as gc

UPDATE_ONE = (
    "from pathlib import Path\n"
    "from glidein_plugins.protocol.glideinwms.glidein_config import update\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "glidein_config"
    path.write_bytes(b"GLIDEIN_Name gfactory\nA old\n")
    return path


def others(directory: Path) -> list[str]:
    """Files beside glidein_config and its history: a lock, a pid file, a temporary file..."""
    return sorted(p.name for p in directory.iterdir()
                  if p.name not in ("glidein_config", "glidein_config.history"))


def make_lock(path: Path, holder: str) -> None:
    """A lock as another writer leaves it: the symlink, and the holder in the pid file."""
    os.symlink("glidein_config", path.with_name("glidein_config.lock"))
    if holder != "<none>":
        path.with_name("glidein_config.pid").write_text(holder + "\n")


# --------------------------------------------------------------------------- reading

@pytest.mark.parametrize(("text", "expected"), [
    ("A 1\nB 2\nA 3\n", {"A": "3", "B": "2"}),  # the last line for a key wins
    ("A  two  spaces \n", {"A": " two  spaces "}),  # the value: all after the first space
    ("A \n", {"A": ""}),
    ("# A 1\n\n   \n#A 2\nB x y\n", {"B": "x y"}),  # comments and blank lines
    ("A 1\r\nB 2\r\n", {"A": "1", "B": "2"}),
    ("GLIDEIN_Site.x-y 1\nA no final newline", {"GLIDEIN_Site.x-y": "1", "A": "no final newline"}),
])
def test_read_values(tmp_path: Path, text: str, expected: dict) -> None:
    path = tmp_path / "glidein_config"
    path.write_bytes(text.encode())
    config = gc.read(path)
    assert dict(config.values) == expected
    assert config.problems == ()


def test_where_names_the_line_that_wins(tmp_path: Path) -> None:
    path = tmp_path / "glidein_config"
    path.write_bytes(b"A 1\nB 2\nA 3\n")
    config = gc.read(path)
    assert (config.where("A"), config.where("B"), config.where("C")) == (
        "glidein_config:3", "glidein_config:2", "")
    assert (config.get("A"), config.get("C"), config.get("C", "d")) == ("3", None, "d")


def test_malformed_lines_are_skipped_and_located(tmp_path: Path) -> None:
    path = tmp_path / "glidein_config"
    path.write_bytes(b"GOOD 1\nNOVALUE\n LEADING_SPACE x\n1DIGIT x\nGOOD 2\nLONG "
                     + b"x" * 5000 + b"\n")
    config = gc.read(path)
    assert dict(config.values) == {"GOOD": "2", "LONG": "x" * 5000}
    assert [problem.split(": ")[0] for problem in config.problems] == [
        "glidein_config:2", "glidein_config:3", "glidein_config:4", "glidein_config:6"]
    assert "malformed" in config.problems[0] and "NOVALUE" in config.problems[0]
    assert "longer than 4096 bytes (kept)" in config.problems[3]


def test_undecodable_bytes_are_read_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "glidein_config"
    path.write_bytes(b"LATIN1 caf\xe9\nUTF8 caf\xc3\xa9\n")
    config = gc.read(path)
    assert config.values == {"LATIN1": "caf\udce9", "UTF8": "café"}


@pytest.mark.parametrize(("kind", "why"), [
    ("missing", "glidein_config does not exist"),
    ("directory", "glidein_config is a directory"),
    ("under-a-file", "cannot read glidein_config: Not a directory"),
])
def test_unreadable_glidein_config_is_a_config_error(tmp_path: Path, kind: str, why: str) -> None:
    path = tmp_path / "glidein_config"
    if kind == "directory":
        path.mkdir()
    elif kind == "under-a-file":
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "glidein_config"
    with pytest.raises(ConfigError) as info:
        gc.read(path)
    assert str(info.value) == f"{path}: {why}"
    assert info.value.where == str(path)


def test_glidein_config_without_read_permission_is_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "work"  # searchable by the unprivileged child
    directory.mkdir(mode=0o755)
    (directory / "glidein_config").write_bytes(b"A 1\n")
    (directory / "glidein_config").chmod(0)
    result = python_run(DROP_ROOT + (
        "from pathlib import Path\n"
        "from glidein_plugins.protocol.glideinwms import glidein_config as gc\n"
        "try:\n"
        "    gc.read(Path('glidein_config'))\n"
        "except gc.ConfigError as exc:\n"
        "    sys.exit(str(exc))\n"), cwd=directory)
    assert result.returncode == 1
    assert result.stderr.strip() == "glidein_config: cannot read glidein_config: Permission denied"


# --------------------------------------------------------------------------- writing

def test_update_rewrites_once_and_keeps_other_lines_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "glidein_config"
    path.write_bytes(b"# comment \xff\xfe\nLATIN1 caf\xe9\nNOVALUE\nKEY old\nKEY_LONG keep\n"
                     b"KEY older\nCRLF v\r\n\n")
    path.chmod(0o640)
    copied = gc.read(path).values["LATIN1"]  # read and written back: the same bytes
    changed = gc.update(path, {"KEY": "new  value ", "COPY": copied, "KEY_LONG": "keep"})
    assert changed == ["KEY", "COPY"]  # KEY_LONG already had that value
    assert path.read_bytes() == (b"# comment \xff\xfe\nLATIN1 caf\xe9\nNOVALUE\nKEY_LONG keep\n"
                                 b"CRLF v\r\nKEY new  value \nCOPY caf\xe9\n")
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.with_name("glidein_config.history").read_bytes() == (
        f"GLP{os.getpid()} KEY new  value \nGLP{os.getpid()} COPY caf".encode() + b"\xe9\n")
    assert others(tmp_path) == []


def test_update_with_nothing_new_writes_nothing(config: Path) -> None:
    inode = config.stat().st_ino
    assert gc.update(config, {"A": "old"}) == []
    assert config.stat().st_ino == inode
    assert others(config.parent) == []
    assert not config.with_name("glidein_config.history").exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"B": "fine", "A": "two\nINJECTED 1"}, "newline"),
    ({"B": "fine", "A": "carriage\rreturn"}, "newline"),
    ({"B": "fine", "A": "nul\0byte"}, "NUL"),
    ({"B": "fine", "A": "x" * 4096}, "longer than 4096"),
    ({"B": "fine", "BAD KEY": "x"}, "not a glidein_config key"),
    ({"B": "fine", "": "x"}, "not a glidein_config key"),
])
def test_invalid_line_is_a_value_error_and_nothing_is_written(config: Path, changes: dict,
                                                               message: str) -> None:
    before = config.read_bytes()
    with pytest.raises(ValueError, match=message):
        gc.update(config, changes)
    assert config.read_bytes() == before
    assert others(config.parent) == []
    assert not config.with_name("glidein_config.history").exists()


def test_readers_see_all_of_a_many_key_update_or_none(config: Path) -> None:
    """A child rewrites 20 keys at once, over and over; every read sees one round only."""
    keys = [f"K{i}" for i in range(20)]
    gc.update(config, dict.fromkeys(keys, "round-1"))
    writer = python_popen(UPDATE_ONE + (
        "keys = [f'K{i}' for i in range(20)]\n"
        "for r in range(60):\n"
        "    update(Path('glidein_config'), dict.fromkeys(keys, f'round{r}'))\n"),
        cwd=config.parent)
    seen = set()
    try:
        while writer.poll() is None:
            values = gc.read(config).values
            rounds = {values[key] for key in keys}
            assert len(rounds) == 1, f"a read saw a half-done update: {sorted(rounds)}"
            seen |= rounds
    finally:
        assert writer.wait(timeout=CHILD_TIMEOUT) == 0
    assert gc.read(config).values["K0"] == "round59"
    assert len(seen) > 1  # the reads did overlap the writes


# --------------------------------------------------------------------------- the lock

def test_lock_is_the_gconfig_add_safe_symlink(config: Path) -> None:
    lock, pid = config.with_name("glidein_config.lock"), config.with_name("glidein_config.pid")
    with gc.Lock(config):
        assert os.readlink(lock) == "glidein_config"
        assert lock.is_file()  # what add_config_line.source's unlock_file checks (-f)
        assert pid.read_text() == f"{os.getpid()}\n"
        # a bash writer cannot take it meanwhile
        taken = subprocess.run(["ln", "-s", "glidein_config", "glidein_config.lock"],
                               cwd=config.parent, capture_output=True, timeout=CHILD_TIMEOUT)
        assert taken.returncode != 0
    assert others(config.parent) == []


BASH_WRITER = r"""
set -eu
for i in $(seq 0 $(($2 - 1))); do
    until ln -s glidein_config glidein_config.lock 2>/dev/null; do sleep 0.01; done
    echo $$ > glidein_config.pid
    key="B$1_K$i"
    { grep -v "^$key " glidein_config || true; echo "$key bash $1 $i"; } > glidein_config.$$.tmp
    mv glidein_config.$$.tmp glidein_config
    rm -f glidein_config.pid glidein_config.lock
done
"""


PYTHON_WRITERS, PYTHON_KEYS, BASH_WRITERS, BASH_KEYS = 16, 100, 2, 25


def test_concurrent_python_and_bash_writers_lose_nothing(config: Path) -> None:
    """16 processes x 100 keys, one update each, interleaved with 2 bash writers of the
    ``ln -s glidein_config glidein_config.lock`` protocol: every line lands, and no lock, pid
    or temporary file is left."""
    python_writer = UPDATE_ONE + (
        "w = sys.argv[1]\n"
        f"for i in range({PYTHON_KEYS}):\n"
        "    update(Path('glidein_config'), {f'P{w}_K{i}': f'python {w} {i}'})\n")
    writers = [python_popen(python_writer, str(w), cwd=config.parent)
               for w in range(PYTHON_WRITERS)]
    writers += [subprocess.Popen(["bash", "-c", BASH_WRITER, "bash", str(w), str(BASH_KEYS)],
                                 cwd=config.parent, stdin=subprocess.DEVNULL)
                for w in range(BASH_WRITERS)]
    # 1,650 rewrites in turn of a file growing to 1,650 lines: ~10 s on CPython, ~25 s on PyPy
    assert [writer.wait(timeout=3 * CHILD_TIMEOUT) for writer in writers] == [0] * len(writers)
    result = gc.read(config)
    assert result.problems == ()
    expected = {f"P{w}_K{i}": f"python {w} {i}"
                for w in range(PYTHON_WRITERS) for i in range(PYTHON_KEYS)}
    expected.update({f"B{w}_K{i}": f"bash {w} {i}"
                     for w in range(BASH_WRITERS) for i in range(BASH_KEYS)})
    expected.update({"GLIDEIN_Name": "gfactory", "A": "old"})
    assert dict(result.values) == expected
    # one line per key: no update was applied twice, nor a line of another kept twice
    assert len(config.read_text().splitlines()) == len(expected)
    history = config.with_name("glidein_config.history").read_text().splitlines()
    assert len(history) == PYTHON_WRITERS * PYTHON_KEYS
    assert others(config.parent) == []


def test_threads_of_one_process_lose_nothing(config: Path) -> None:
    def write(t: int) -> None:
        for i in range(25):
            gc.update(config, {f"T{t}_K{i}": str(i)})

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CHILD_TIMEOUT)
    values = gc.read(config).values
    assert all(values[f"T{t}_K{i}"] == str(i) for t in range(4) for i in range(25))


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=CHILD_TIMEOUT)
    return proc.pid


@pytest.mark.parametrize("holder", ["dead", "<none>", "", "0", "garbage", "self"])
def test_stale_lock_is_broken_after_stale_after(config: Path, dead_pid: int, holder: str) -> None:
    holder = {"dead": str(dead_pid), "self": str(os.getpid())}.get(holder, holder)
    make_lock(config, holder)
    start = time.monotonic()
    gc.update(config, {"A": "new"}, lock=gc.Lock(config, stale_after=0.3, give_up_after=30))
    if holder != str(os.getpid()):  # a leftover of our own pid is broken at once
        assert time.monotonic() - start >= 0.3
    assert gc.read(config).values["A"] == "new"
    assert others(config.parent) == []


def test_lock_of_a_live_writer_is_waited_for_then_broken_once_it_is_killed(config: Path) -> None:
    holder = python_popen(
        "import time\nfrom pathlib import Path\n"
        "from glidein_plugins.protocol.glideinwms.glidein_config import Lock\n"
        "with Lock(Path('glidein_config')):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n", cwd=config.parent, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        before = config.read_bytes()
        start = time.monotonic()
        with pytest.raises(ConfigError, match="still held after") as info:
            gc.update(config, {"A": "new"},
                      lock=gc.Lock(config, stale_after=0.1, give_up_after=0.5))
        assert time.monotonic() - start >= 0.5
        assert info.value.where == str(config.with_name("glidein_config.lock"))
        assert config.read_bytes() == before
        assert config.with_name("glidein_config.pid").read_text() == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait(timeout=CHILD_TIMEOUT)
    # SIGKILL left its lock behind: a dead holder's lock is broken after stale_after
    gc.update(config, {"A": "new"}, lock=gc.Lock(config, stale_after=0.2, give_up_after=30))
    assert gc.read(config).values["A"] == "new"
    assert others(config.parent) == []


def writing(directory: Path) -> bool:
    """Whether a writer has begun to fill its temporary new glidein_config."""
    for tmp in directory.glob(".glidein_config.*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
            if not tmp.name.startswith(".glidein_config.pid.") and tmp.stat().st_size > 0:
                return True
    return False


def test_writer_killed_while_writing_leaves_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "glidein_config"
    old = b"".join(b"K%05d %s\n" % (i, b"x" * 2000) for i in range(10000))  # 20 MB to write
    path.write_bytes(old)
    writer = python_popen(UPDATE_ONE + "update(Path('glidein_config'), {'NEW': 'value'})\n",
                          cwd=tmp_path)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not writing(tmp_path):
        assert writer.poll() is None and time.monotonic() < deadline, "no temporary file seen"
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=CHILD_TIMEOUT)
    assert path.read_bytes() in (old, old + b"NEW value\n")  # the old file, or the whole new one
    config = gc.read(path)
    assert config.problems == () and len(config.values) in (10000, 10001)
    # its lock is broken once stale; its temporary file (if any) is no one's business
    gc.update(path, {"AFTER": "1"}, lock=gc.Lock(path, stale_after=0.1, give_up_after=30))
    assert gc.read(path).values["AFTER"] == "1"
    assert all(name.endswith(".tmp") for name in others(tmp_path))


def test_read_only_directory_is_a_config_error_and_the_file_stays(tmp_path: Path) -> None:
    directory = tmp_path / "work"
    directory.mkdir()
    path = directory / "glidein_config"
    path.write_bytes(b"A 1\n")
    directory.chmod(0o555)
    try:
        result = python_run(DROP_ROOT + (
            "from pathlib import Path\n"
            "from glidein_plugins.protocol.glideinwms import glidein_config as gc\n"
            "try:\n"
            "    gc.update(Path('glidein_config'), {'A': '2'})\n"
            "except gc.ConfigError as exc:\n"
            "    sys.exit(str(exc))\n"), cwd=directory)
    finally:
        directory.chmod(0o755)
    assert result.returncode == 1
    assert result.stderr.strip() == "glidein_config.lock: cannot lock: Permission denied"
    assert path.read_bytes() == b"A 1\n"
    assert sorted(p.name for p in directory.iterdir()) == ["glidein_config"]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_target_that_is_not_a_regular_file_is_never_replaced(tmp_path: Path, kind: str) -> None:
    """A CONDOR_VARS_FILE naming /dev/null, a FIFO or a directory: refused, left as it is."""
    target = tmp_path / "condor_vars.lst"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    with pytest.raises(ConfigError, match="cannot write: not a regular file"):
        atomic.write_text(target, "X\n")
    assert (target.is_fifo() if kind == "fifo" else target.is_dir())
    assert [path.name for path in tmp_path.iterdir()] == ["condor_vars.lst"]


@pytest.mark.parametrize(("limit", "failing"), [
    (1, "glidein_config.pid"),  # cannot even record the lock's holder
    (64 * 1024, "glidein_config"),  # the rewrite itself does not fit ("disk full")
])
def test_write_failure_is_a_config_error_and_the_file_stays(tmp_path: Path, limit: int,
                                                           failing: str) -> None:
    path = tmp_path / "glidein_config"
    old = b"".join(b"K%04d %s\n" % (i, b"x" * 100) for i in range(1000))  # 100 KiB
    path.write_bytes(old)
    result = python_run((
        "import resource, signal\n"
        "from pathlib import Path\n"
        "from glidein_plugins.protocol.glideinwms import glidein_config as gc\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2)\n"
        "try:\n"
        "    gc.update(Path('glidein_config'), {'NEW': 'x'})\n"
        "except gc.ConfigError as exc:\n"
        "    sys.exit(str(exc))\n"), str(limit), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{failing}: cannot write: File too large"
    assert path.read_bytes() == old
    assert others(tmp_path) == []
