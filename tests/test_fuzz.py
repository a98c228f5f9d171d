"""Fuzzing (hypothesis): no input crashes the program with a traceback; every failure is a clear
message saying what and where; what a writer accepts reads back exactly.

Where each target is fuzzed (what the other files test is not repeated here):

- glidein_config reader/writer: here (a line is refused naming its key or reads back; an update
  sets exactly its keys and keeps every other byte; any bytes are read).
- condor_vars.lst writer: here (never a line injected; bash reads each line back).
- images dict, bind lists: test_images.py, test_binds.py (only InputError, round trip, on text
  without surrogates); here: undecodable bytes, and the error says ``where``.
- ClassAd value quoting: test_classad.py (strings, integers, ``quote`` against classad2, the
  startd config, bash's eval), test_results.py (``one_line``); here: values through the files.
- result XML: test_result_xml.py (well-formed, status, any text); here: status OK exactly on
  exit 0 after every CLI run below.
- job-ad reader: test_job_ad.py (against classad2 on ads HTCondor writes); here: any text/bytes.
- wrapper argv: test_launch.py (``launch.build``'s argv); here: the shell words evaluated by
  ``/bin/sh``, and the ``wrap`` command in-process and as a process.
- no traceback, ever: here, ``glidein_plugins.cli.main`` in-process on a fake node (setup,
  check-config, wrap) and ``periodic`` as a process, fed hostile glidein_config, factory YAML
  and job ads: exit 0/1, no traceback nor ``internal error``, a message for every failure.

Bugs found are pinned by strict xfail tests (their reasons say where): flip them once fixed, and
widen the strategies where a comment says they avoid the bug.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import GlideinResult, glidein_result, install_printing_job, job_view
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from glidein_plugins import cli
from glidein_plugins.container import binds, images
from glidein_plugins.errors import InputError
from glidein_plugins.jobstart import plan as job_plan
from glidein_plugins.jobstart import report
from glidein_plugins.protocol.glideinwms import advertise, condor_vars, glidein_config
from glidein_plugins.protocol.htcondor import classad, job_ad
from glidein_plugins.spec.results import Attribute
from glidein_plugins.testing import FakeCvmfs, make_fake_bin, make_fake_cvmfs, make_work_dir

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds for a child process: generous on a loaded machine
# The same examples on every run (a suite must not fail by chance); GLIDEIN_PLUGINS_FUZZ=N runs
# N times as many, new random ones each time, to hunt for more
HUNT = int(os.environ.get("GLIDEIN_PLUGINS_FUZZ") or 0)


def examples(count: int, **options: Any) -> settings:
    return settings(max_examples=count * max(HUNT, 1), derandomize=not HUNT, deadline=None,
                    **options)


FAST = examples(60)
SLOW = examples(50)  # a real setup or wrapper run per example
# classad2 is a function-scoped fixture returning a module: nothing in it is reset per example
WITH_CLASSAD2 = examples(60, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- strategies ----------------------------------------------------------------------------------


def as_text(data: bytes) -> str:
    """``data`` as Python decodes a file, argv or the environment (surrogateescape)."""
    return data.decode("utf-8", "surrogateescape")


def raw(text: str) -> bytes:
    """The bytes ``text`` stands for (the inverse of ``as_text``)."""
    return text.encode("utf-8", "surrogateescape")


def decoded(text: str) -> str:
    """``text`` as decoding its bytes gives it: escaped bytes that make a character together
    (``\\udcc3\\udca9``) are that character (``é``), as no decoder would leave them escaped."""
    return as_text(raw(text))


# what a shell, HTCondor, YAML, XML or a line-based file treats specially
SPECIAL = st.sampled_from(list(" \t\n\r\0\x0b\x0c\x1b\x7f\x85\u2028'\"\\$(){}[]#=:,;&|`*?~<>%!/.-"))
# undecodable bytes, as glidein_config, an ad or argv read with surrogateescape give them
ESCAPED = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
CHARACTER = st.characters(blacklist_categories=("Cs",))  # any, but a lone surrogate
HOSTILE = st.text(SPECIAL | ESCAPED | CHARACTER, max_size=30).map(decoded)
ONE_LINE = st.text(st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",))
                   | ESCAPED | SPECIAL.filter(lambda c: c not in "\n\r\0"), max_size=30
                   ).map(decoded)
PRINTABLE = st.text(st.characters(blacklist_categories=("C", "Z")) | st.sampled_from(
    list(" '\"\\$(){}[]#=:,;&|`*?~<>%!/.-")), max_size=30).filter(str.isprintable)
KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True)
KEYISH = KEY | st.text(SPECIAL | CHARACTER, max_size=8)
LONG = st.builds(lambda n, char: char * n, st.integers(4080, 4100), st.sampled_from("xé"))
JUNK_LINE = st.binary(max_size=30) | st.text(SPECIAL | CHARACTER, max_size=30).map(raw)
NO_NUL = (st.binary(max_size=20) | HOSTILE.map(raw)).map(  # what argv and environ can hold
    lambda data: data.replace(b"\0", b""))


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def scratch(root: Path) -> Iterator[Path]:
    """A fresh directory for one example (hypothesis runs many examples per test call)."""
    with tempfile.TemporaryDirectory(dir=root) as name:
        yield Path(name)


# -- glidein_config --------------------------------------------------------------------------------


def names(message: str, key: str) -> bool:
    """Whether an error message names ``key`` (quoted, or first)."""
    return repr(key) in message or message.startswith(f"{key}: ")


@FAST
@given(key=KEYISH, value=HOSTILE | LONG)
@example(key="A", value="\udcff raw byte")
@example(key="A", value="x" * 4093)  # 'A ' + 4093 = 4095 bytes: the longest line
def test_a_glidein_config_line_is_refused_naming_its_key_or_reads_back(key: str,
                                                                       value: str) -> None:
    try:
        line = glidein_config.format_line(key, value)
    except ValueError as exc:
        assert names(str(exc), key), str(exc)
        return
    parsed = glidein_config.parse(line + "\n")
    assert (dict(parsed.values), parsed.problems) == ({key: value}, ())


def test_a_value_that_no_bytes_give_is_refused_naming_its_key(fuzz_root: Path) -> None:
    with scratch(fuzz_root) as directory:
        path = directory / "glidein_config"
        path.write_bytes(b"A 1\n")
        with pytest.raises(ValueError) as caught:
            glidein_config.update(path, {"MY_KEY": "\ud800"})
        assert names(str(caught.value), "MY_KEY"), str(caught.value)
        assert sorted(p.name for p in directory.iterdir()) == ["glidein_config"]


def first_word(line: bytes) -> str:
    return as_text(line.partition(b" ")[0])


@FAST
@given(before=st.lists(JUNK_LINE | st.builds(lambda k, v: raw(f"{k} {v}"), KEY, ONE_LINE),
                       max_size=6).map(b"\n".join),
       changes=st.dictionaries(KEY | KEYISH, ONE_LINE | HOSTILE | LONG, max_size=4))
def test_an_update_sets_exactly_its_keys_and_keeps_every_other_byte(
        fuzz_root: Path, before: bytes, changes: dict[str, str]) -> None:
    with scratch(fuzz_root) as directory:
        path = directory / "glidein_config"
        path.write_bytes(before)
        old = glidein_config.read(path)
        try:
            changed = glidein_config.update(path, changes)
        except ValueError as exc:  # a bad line: nothing written at all
            assert any(names(str(exc), key) for key in changes), str(exc)
            assert path.read_bytes() == before
            assert sorted(p.name for p in directory.iterdir()) == ["glidein_config"]
            return
        new = glidein_config.read(path)
        assert sorted(changed) == sorted(k for k, v in changes.items() if old.get(k) != v)
        assert {key: new.get(key) for key in changes} == changes
        assert {k: v for k, v in new.values.items() if k not in changes} == \
            {k: v for k, v in old.values.items() if k not in changes}
        kept = [line for line in before.split(b"\n") if first_word(line) not in changed]
        while kept and not kept[-1]:
            kept.pop()
        assert path.read_bytes().split(b"\n")[:len(kept)] == kept  # byte for byte, in order
        history = directory / "glidein_config.history"  # a line per change
        assert history.read_bytes().count(b"\n") == len(changed) if changed else \
            not history.exists()


@FAST
@given(data=st.lists(JUNK_LINE | st.builds(lambda k, v: raw(f"{k} {v}"), KEY, ONE_LINE | LONG),
                     max_size=8).map(b"\n".join) | st.binary(max_size=200))
@example(data=b"A \xff\xfe\r\r\nB\0 x\n\n#C 1\nA\x85 y\n")
def test_any_bytes_are_read_without_error_and_values_are_byte_exact(fuzz_root: Path,
                                                                    data: bytes) -> None:
    """Every ``KEY value`` line counts (the last one for a key wins), the value is the line's
    exact bytes after the first space (trailing CRs dropped), every other line is named."""
    with scratch(fuzz_root) as directory:
        path = directory / "glidein_config"
        path.write_bytes(data)
        config = glidein_config.read(path)
    expected: dict[str, bytes] = {}
    skipped = 0
    for line in data.split(b"\n"):
        key, space, value = line.partition(b" ")
        if re.fullmatch(rb"[A-Za-z_][A-Za-z0-9_.\-]*", key) and space:
            expected[key.decode()] = value.rstrip(b"\r")
        elif line.strip() and not line.startswith(b"#"):
            skipped += 1
    assert {key: raw(value) for key, value in config.values.items()} == expected
    malformed = [problem for problem in config.problems if "skipped malformed line" in problem]
    assert len(malformed) <= skipped  # (a line of Unicode blanks only is blank to the reader)
    assert all(re.match(r"glidein_config:\d+: ", problem) for problem in config.problems)


# -- condor_vars.lst -------------------------------------------------------------------------------

NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True) | KEYISH
DEFAULT = st.sampled_from(["-", "True", "0", "-12", "a/b:c.d,e=f@g%h+i-j_k"]) | HOSTILE
VAR_LINE = st.builds(
    lambda *fields: fields, NAME, st.sampled_from(["S", "I", "C"]) | HOSTILE, DEFAULT,
    st.just("+") | NAME, st.booleans(), st.booleans(), st.sampled_from(["-", "+", "@"]) | NAME)
# what condor_startup.sh does: ``grep -v "^#" FILE | while read line; do set_var $line; done``
# (unquoted: split on blanks, globbed), ``eval var_def=$3``; printed for the names in $NAMES
READ_LIKE_CONDOR_STARTUP = r"""
grep -av '^#' "$1" | while read line; do
    set -- $line
    for name in $NAMES; do
        if [ "$1" = "$name" ]; then eval var_def=$3; printf '%s|%s|%s\n' "$#" "$1" "$var_def"; fi
    done
done
"""


def read_like_condor_startup(path: Path, names: Sequence[str]) -> list[str]:
    """``NUMBER_OF_WORDS|NAME|DEFAULT`` for each line of ``names``, as condor_startup.sh
    reads them (bash, in the file's directory: a glob would find files there)."""
    proc = subprocess.run(["bash", "-c", READ_LIKE_CONDOR_STARTUP, "bash", str(path)],
                          cwd=path.parent, capture_output=True, timeout=TIMEOUT,
                          env={"NAMES": " ".join(names), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().splitlines()


def first_column(line: bytes) -> str:
    """The name ``read line; set_var $line`` sees (bash's read splits on blanks and tabs)."""
    words = as_text(line).replace("\t", " ").split(" ")
    return next((word for word in words if word), "")


@FAST
@given(before=st.lists(JUNK_LINE.filter(lambda line: not line.endswith(b"\\")),  # (see below)
                       max_size=5).map(b"\n".join),
       fields=st.lists(VAR_LINE, max_size=4))
def test_condor_vars_lines_never_inject_a_line_and_read_back_as_condor_startup_reads_them(
        fuzz_root: Path, before: bytes, fields: list[tuple]) -> None:
    lines: dict[str, condor_vars.VarLine] = {}
    for field in fields:
        try:
            line = condor_vars.VarLine(*field)
        except ValueError:
            continue
        text = str(line)
        assert len(text.split()) == 7 and text.isprintable(), text
        lines[line.name] = line
    with scratch(fuzz_root) as directory:
        path = directory / "condor_vars.lst"
        path.write_bytes(before)
        condor_vars.update(path, lines.values())
        after = path.read_bytes()
        assert sorted(p.name for p in directory.iterdir()) == ["condor_vars.lst"]
        read_back = read_like_condor_startup(path, list(lines))
    if not lines:
        assert after == before  # not even rewritten
        return
    kept = [old for old in before.split(b"\n") if first_column(old) not in lines]
    while kept and not kept[-1]:
        kept.pop()
    if kept and kept[-1].endswith(b"\\"):  # kept apart from the new lines
        kept.append(b"")
    assert after.split(b"\n") == [*kept, *(str(line).encode() for line in lines.values()), b""]
    assert read_back == [f"7|{line.name}|{line.default}" for line in lines.values()]


def test_a_foreign_line_ending_with_a_backslash_does_not_swallow_a_new_line(
        fuzz_root: Path) -> None:
    with scratch(fuzz_root) as directory:
        path = directory / "condor_vars.lst"
        path.write_bytes(b"OTHER S - + N Y \\\n")
        condor_vars.update(path, [condor_vars.VarLine("HAS_X")])
        assert read_like_condor_startup(path, ["HAS_X"]) == ["7|HAS_X|-"]


# -- the images dict and bind lists: located errors, also on undecodable bytes ------------------

PARSERS = {"images-dict": (images.parse_dict, images.format_dict),
           "binds": (binds.parse, binds.format_list)}


@pytest.mark.parametrize("name", PARSERS)
@FAST
@given(text=st.text(SPECIAL | ESCAPED | st.sampled_from(list("/ab9:,")), max_size=40))
def test_parsers_give_a_result_or_an_input_error_saying_where(name: str, text: str) -> None:
    parse, format_ = PARSERS[name]
    where = "glidein_config:7: THE_KEY"
    try:
        parsed = parse(text, where)
    except InputError as exc:
        assert exc.where == where and str(exc).startswith(f"{where}: ") and exc.message
        return
    assert parse(format_(parsed)) == parsed  # type: ignore[operator]


# -- published values, through glidein_config and condor_vars.lst, into classad2 --------------

NOT_EVALUATED = object()  # a C value of any text: its check is structural, not a parse
VALUE = st.one_of(  # (value, type, what classad2 evaluates it to)
    HOSTILE.map(lambda text: (text, "S", text)),
    (st.integers(-(2**64), 2**64).map(str) | HOSTILE).map(
        lambda text: (text, "I", int(text) if re.fullmatch(r"-?\d+", text) else None)),
    PRINTABLE.map(lambda text: (classad.quote(text), "C", text)),
    st.sampled_from([("True", "C", True), ("2 * (3 + 4)", "C", 14), ('{1, "x"}', "C", [1, "x"])]),
    HOSTILE.map(lambda text: (text, "C", NOT_EVALUATED)))


def machine_ad_values(work_dir: Path) -> dict[str, str]:
    """What condor_startup.sh makes of the files: a literal per exported condor_vars line
    (an S value quoted verbatim), read by GlideinWMS's rules, not the package's reader."""
    config = {}
    for line in (work_dir / "glidein_config").read_bytes().split(b"\n"):
        key, _, value = line.partition(b" ")
        config[key.decode()] = as_text(value)
    literals = {}
    for row in (work_dir / "condor_vars.lst").read_text().splitlines():
        if row.startswith("#"):
            continue
        name, kind, _default, condor_name, _required, export, _env = row.split()
        if export == "Y" and name in config:
            value = config[name]
            literals[name if condor_name == "+" else condor_name] = \
                f'"{value}"' if kind == "S" else value
    return literals


@WITH_CLASSAD2
@given(values=st.lists(VALUE, max_size=6))
def test_published_values_reach_the_machine_ad_exactly(
        classad2, fuzz_root: Path, values: list[tuple[str, str, object]]) -> None:
    attributes = {}
    for number, (value, kind, evaluated) in enumerate(values):
        try:
            attribute = Attribute(f"FUZZ_{number}", value, kind)  # type: ignore[arg-type]
        except ValueError:
            continue
        attributes[attribute] = evaluated
    with scratch(fuzz_root) as directory:
        work_dir = make_work_dir(directory)
        config = glidein_config.read(work_dir / "glidein_config")
        advertise.write(config, advertise.vars_file(config, work_dir),
                        [condor_vars.VarLine(attr.name, attr.type.value) for attr in attributes],
                        {attr.name: attr.value for attr in attributes})
        literals = machine_ad_values(work_dir)
    for attr, evaluated in attributes.items():
        literal = literals[attr.name]
        assert literal == attr.classad_literal
        if evaluated is NOT_EVALUATED or any("\udc80" <= char <= "\udcff" for char in literal):
            continue  # (raw bytes in the file: classad2 takes text only)
        assert classad2.ExprTree(literal).eval() == evaluated


# -- the job-ad reader ---------------------------------------------------------------------------

AD_TEXT = st.lists(
    st.one_of(HOSTILE, st.builds(lambda n, v: f"{n} ={v}", NAME, HOSTILE),
              st.builds(lambda n, v: f'{n} = "{v}"', NAME, HOSTILE)),
    max_size=6).map("\n".join)


@FAST
@given(text=AD_TEXT)
@example(text='A = "x\\"\nB = "\\"')
def test_the_job_ad_reader_gives_an_ad_or_an_error_naming_the_line(text: str) -> None:
    try:
        ad = job_ad.parse(text, "job.ad")
    except InputError as exc:
        match = re.fullmatch(r"job\.ad:(\d+)", exc.where)
        assert match and 1 <= int(match.group(1)) <= text.count("\n") + 1, exc.where
        assert exc.message
        return
    for name in ad:
        assert isinstance(ad[name], str) and name in ad
        string, boolean, integer = ad.string(name), ad.boolean(name), ad.integer(name)
        assert string is None or ad[name].strip().startswith('"')
        assert integer is None or boolean == (integer != 0)


@FAST
@given(data=st.binary(max_size=200))
def test_any_ad_file_is_read_or_refused_naming_the_file(fuzz_root: Path, data: bytes) -> None:
    with scratch(fuzz_root) as directory:
        path = directory / ".job.ad"
        path.write_bytes(data)
        try:
            job_ad.read(path)
        except InputError as exc:
            assert exc.where.startswith(f"{path}:")


# -- the wrapper's shell words -------------------------------------------------------------------

SHELL_NAME = st.from_regex(r"V_[A-Za-z0-9_]{0,6}", fullmatch=True)
ENV_NAME = SHELL_NAME | st.sampled_from(["A.B", "V-X", "1V"])  # no shell can set these
# prints its arguments on stdout, the environment on stderr, NUL-separated
PRINTER = ["/bin/sh", "-c", "for a do printf '%s\\0' \"$a\"; done; exec /usr/bin/env -0 >&2",
           "sh"]


@FAST
@given(args=st.lists(NO_NUL, max_size=6), container=st.booleans(),
       environ=st.dictionaries(ENV_NAME, NO_NUL, max_size=4),
       env=st.none() | st.dictionaries(ENV_NAME, NO_NUL, max_size=4))
@example(args=[b"a b", b"'", b"$(id)", b"\n", b"\xff", b""], container=True, environ={},
         env={"V_A": b"it's $x"})
def test_the_plan_is_evaluated_by_a_real_shell_word_for_word(
        args: list[bytes], container: bool, environ: dict[str, bytes],
        env: dict[str, bytes] | None) -> None:
    plan = job_plan.Plan([*PRINTER, *map(as_text, args)], container,
                     None if env is None else {k: as_text(v) for k, v in env.items()})
    text = plan.shell({name: as_text(value) for name, value in environ.items()})
    proc = subprocess.run([b"/bin/sh", b"-c", b'eval "$1"; exec "$@"', b"sh", text],
                          env={name.encode(): value for name, value in environ.items()},
                          capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(b"\0")[:-1] == args
    seen = dict(item.partition(b"=")[::2] for item in proc.stderr.split(b"\0")[:-1])
    names = [name for name in {*environ, *(env or {})} if job_plan._is_name(name)]
    # (a name no shell can take is the shell's business: dash drops it, bash passes it on)
    expected = environ if env is None else env
    assert {name: seen.get(name.encode()) for name in names} == \
        {name: expected.get(name) for name in names}


# -- end to end: the real CLI on a fake node ------------------------------------------------------


@contextlib.contextmanager
def running_in(directory: Path, environ: Mapping[str, str]) -> Iterator[None]:
    """``directory`` as the cwd and ``environ`` as the whole environment, restored after."""
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    os.chdir(directory)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def main(argv: Sequence[str], cwd: Path, environ: Mapping[str, str]
         ) -> subprocess.CompletedProcess[str]:
    """``glidein-plugins ARGV`` in-process (``cli.main``): strict UTF-8 streams, as a log
    that cannot take every byte, captured; the exit code as the process would have it."""
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
                for _ in range(2))
    with running_in(cwd, environ), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
    out.flush()
    err.flush()
    return subprocess.CompletedProcess(
        list(argv), code, *(as_text(stream.buffer.getvalue())  # type: ignore[attr-defined]
                            for stream in (out, err)))


def assert_no_crash(proc: subprocess.CompletedProcess[str], codes: Sequence[int] = (0, 1)
                    ) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode in codes, (proc.returncode, output)
    assert "Traceback" not in output and "internal error" not in output, output


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> FakeCvmfs:
    """A fake worker node: an instant unprivileged Apptainer and the OSG images in CVMFS."""
    root = tmp_path_factory.mktemp("node")
    fake_bin = make_fake_bin(root)
    fake_bin.install_runtime("apptainer")
    return make_fake_cvmfs(root / "cvmfs", fake_bin)


def node_env(node: FakeCvmfs) -> dict[str, str]:
    return {**node.env(), "HOME": str(node.root.parent), "LANG": "C.UTF-8"}


def setup_result(proc: subprocess.CompletedProcess[str], work_dir: Path,
                 before: Mapping[str, bytes]) -> GlideinResult:
    """``glidein_result``'s checks (no traceback, well-formed XML, status OK exactly on exit 0,
    a failure type on ERROR), a message for every failure, nothing written on one."""
    assert_no_crash(proc)
    result = glidein_result(proc, work_dir)
    if currently_in_test_context():  # also used by plain tests
        event(f"setup: {result.failure or 'OK'} ({result.metrics.get('singularity_mode')}) "
              f"{result.detail[:30]}")
    if result.exit_code:
        assert result.detail and result.failure, proc.stdout
        after = {name: (work_dir / name).read_bytes() for name in before
                 if (work_dir / name).is_file()}
        assert after == before, "a failed setup must leave glidein_config and condor_vars alone"
    return result


# glidein_config keys the built-in plugins read, with values of every kind. Keys naming a
# binary to run or a directory to write in are not fuzzed (a test must not run or write
# anywhere); the paths that are (@WORK@: the work dir) stay inside the work dir.
def mostly(*values: str, hostile: st.SearchStrategy[str] = HOSTILE) -> st.SearchStrategy[str]:
    """The first of ``values`` half the time, another a third, ``hostile`` one time in six."""
    return st.integers(0, 5).flatmap(lambda n: st.just(values[0]) if n < 3 else hostile
                                      if n == 5 else st.sampled_from(values))


MODE_VALUES = mostly("PREFERRED", "REQUIRED", "NEVER", "OPTIONAL", "DISABLE_GWMS", " preferred ",
                     "", "REQUIRED_GWMS")
IMAGES_DICT = mostly("@IMAGES@", "rhel9:@WORK@", "x:docker://a:b", "rhel9:,:x", "")
IN_WORK = st.text(st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",))
                  | ESCAPED, max_size=12).filter(lambda text: ".." not in text).map(
    lambda text: f"@WORK@/{text}")
HOSTILE_VALUES = {
    "GLIDEIN_SINGULARITY_REQUIRE": mostly("OPTIONAL", "PREFERRED", "REQUIRED", "REQUIRED_GWMS",
                                          "NEVER"),
    "SINGULARITY_IMAGE_DEFAULT": HOSTILE,
    "GLIDEIN_SINGULARITY_BINDPATH": mostly("@WORK@:/x:ro", "/a:/b:c:d", "/proc", "/tmp"),
    "GLIDEIN_SINGULARITY_BINDPATH_DEFAULT": HOSTILE,
    "SINGULARITY_IMAGE_RESTRICTIONS": mostly("cvmfs", "cvmfs,remote", "any", "test", "bogus"),
    "GLIDEIN_REQUIRED_OS": mostly("any", "rhel9", "rhel6,rhel7"),
    "REQUIRED_OS": mostly("any", "rhel8,rhel9", ""),
    "GLIDEIN_Entry_Name": HOSTILE,
    "GLIDEIN_CONTAINER_ENV": mostly("clearpaths", "cleanenv", "clearall"),
    "GLIDEIN_CONTAINER_ENV_CLEARLIST": HOSTILE,
    "GLIDEIN_PROVIDES": HOSTILE,
    "CONDOR_VARS_FILE": mostly("condor_vars.lst", "@WORK@/condor_vars.lst", " ") | IN_WORK,
    "TMP_DIR": IN_WORK,
    # read by the periodic re-check (setup leaves them alone)
    "GLIDEIN_PLUGINS_PERIODIC_BUDGET": mostly("5", "0", "-1", "nan", "x"),
    "GLIDEIN_PLUGINS_PERIODIC_MIN_FREE_MB": mostly("1", "1e999", "-5", "x"),
    "GLIDEIN_PLUGINS_CVMFS_REPOS": mostly("oasis.opensciencegrid.org", "a,b/../c", ".,.."),
}
PATH_KEYS = ("CONDOR_VARS_FILE", "TMP_DIR")
MISSABLE = ["CONDOR_VARS_FILE", "GLIDEIN_Entry_Name", "TMP_DIR", "GLIDEIN_WORK_DIR"]


@st.composite
def hostile_glidein_config(draw: st.DrawFn) -> tuple[dict[str, str], list[str], list[bytes]]:
    """(values over the usual ones, usual keys to drop, junk lines): ``write_glidein_config``."""
    always = {"GLIDEIN_Singularity_Use": MODE_VALUES, "SINGULARITY_IMAGES_DICT": IMAGES_DICT}
    values = draw(st.fixed_dictionaries(always, optional={  # no path longer than PATH_MAX:
        # conftest.glidein_result cannot read such a CONDOR_VARS_FILE back (setup can)
        key: strategy if key in PATH_KEYS else strategy | LONG
        for key, strategy in HOSTILE_VALUES.items() if key not in always}))
    values.update(draw(st.dictionaries(KEY.map(lambda key: f"X_{key}"), HOSTILE, max_size=2)))
    missing = draw(st.lists(st.sampled_from(MISSABLE), max_size=2, unique=True))
    junk = draw(st.lists(JUNK_LINE.filter(lambda line: not re.match(rb"[A-Za-z_]", line)),
                         max_size=3))
    return values, missing, junk


def write_glidein_config(work_dir: Path, node: FakeCvmfs, values: Mapping[str, str],
                         missing: Sequence[str], junk: Sequence[bytes]) -> None:
    """The usual glidein_config without ``missing``, then ``values`` and ``junk`` lines."""
    path = work_dir / "glidein_config"
    lines = [line for line in path.read_bytes().split(b"\n")
             if line and first_word(line) not in missing]
    for key, value in values.items():
        value = value.replace("@WORK@", str(work_dir)).replace("@IMAGES@", node.images_dict())
        lines.append(raw(f"{key} {value}"))
    path.write_bytes(b"\n".join([*lines, *junk]) + b"\n")


def snapshot(work_dir: Path) -> dict[str, bytes]:
    return {name: (work_dir / name).read_bytes() for name in ("glidein_config", "condor_vars.lst")
            if (work_dir / name).is_file()}


@pytest.mark.parametrize("mode", ["PREFERRED", "REQUIRED", "hostile"])
@examples(20)
@given(config=hostile_glidein_config())
@example(config=({"GLIDEIN_Singularity_Use": "PREFERRED", "SINGULARITY_IMAGES_DICT": "@IMAGES@",
                  "GLIDEIN_SINGULARITY_BINDPATH": "\udcff"}, [], [b"\xff\xfe junk"]))
@example(config=({"GLIDEIN_Singularity_Use": "REQUIRED", "CONDOR_VARS_FILE": "@WORK@/a\0b"},
                 [], []))
def test_setup_never_crashes_on_a_hostile_glidein_config(
        fuzz_root: Path, node: FakeCvmfs, mode: str,
        config: tuple[dict[str, str], list[str], list[bytes]]) -> None:
    """``mode``: the Frontend's and the Factory's wishes (hostile: drawn, sometimes hostile):
    a given mode takes setup all the way, through every phase."""
    values, missing, junk = config
    if mode != "hostile":
        values = {**values, "GLIDEIN_Singularity_Use": mode, "GLIDEIN_SINGULARITY_REQUIRE": ""}
    with scratch(fuzz_root) as directory:
        work_dir = make_work_dir(directory / "work")
        write_glidein_config(work_dir, node, values, missing, junk)
        before = snapshot(work_dir)
        proc = main(["setup", "glidein_config", "entry"], work_dir, node_env(node))
        setup_result(proc, work_dir, before)


@examples(6)
@given(config=hostile_glidein_config())
def test_the_periodic_check_always_prints_classad_lines_and_exits_0(
        fuzz_root: Path, node: FakeCvmfs,
        config: tuple[dict[str, str], list[str], list[bytes]]) -> None:
    """``python -m glidein_plugins periodic`` as the startd cron runs it, after setup, on the
    same hostile glidein_config (a process: a check still hanging at the end exits it)."""
    with scratch(fuzz_root) as directory:
        work_dir = make_work_dir(directory / "work")
        write_glidein_config(work_dir, node, *config)
        main(["setup", "glidein_config", "entry"], work_dir, node_env(node))
        cron_dir = directory / "cron"
        cron_dir.mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "glidein_plugins", "periodic", str(work_dir / "glidein_config"),
             "--budget", "20"], cwd=cron_dir, env={**node_env(node), "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT,
            text=True, errors="surrogateescape")
        assert_no_crash(proc, codes=(0,))
        glidein_result(proc, cron_dir)  # an OK result XML in the cron job's directory
    lines = proc.stdout.splitlines()
    assert lines and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]* = \S.*", line) for line in lines)
    event(next(line for line in lines if line.startswith("GLIDEIN_PLUGINS_PERIODIC_OK")))


# -- end to end: the factory config (YAML) ---------------------------------------------------------

PLUGIN_NAMES = st.sampled_from(["mode", "images", "binds", "probe", "discovery", "gpus",
                                "launch", "singularity"]) | KEY | HOSTILE
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(10**400), 10**400), st.floats(),
                   HOSTILE, st.sampled_from(["1e400", ".nan", "-.inf", "0x10", "1e-320"]))
YAML_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(KEY | HOSTILE, inner, max_size=3), max_leaves=6)
SETTING_KEYS = {"images": ["osg_defaults", "timeout"], "binds": ["timeout"],
                "probe": ["timeout", "version_timeout", "test_image", "sif_image", "cache_ttl"],
                "discovery": ["timeout", "modules"],
                "gpus": ["timeout", "cuda_probe"],  # (not its paths: binaries to run)
                "launch": ["pid_namespaces", "extra_options", "check_timeout", "failure_delay",
                           "plugin_budget", "native"]}
SECTION = st.fixed_dictionaries({}, optional={
    "budget_seconds": SCALAR,
    "plugins": st.fixed_dictionaries({}, optional={
        key: st.lists(PLUGIN_NAMES, max_size=3) | SCALAR
        for key in ("enable", "disable", "required")}),
    "attributes": st.dictionaries(KEY | HOSTILE, SCALAR | YAML_VALUE, max_size=3),
    "settings": st.dictionaries(
        st.sampled_from(sorted(SETTING_KEYS)) | KEY,
        st.dictionaries(st.sampled_from(sorted({k for ks in SETTING_KEYS.values() for k in ks}))
                        | KEY, YAML_VALUE, max_size=3) | SCALAR, max_size=2),
    "unknown": SCALAR,
})
FACTORY_CONFIG = st.fixed_dictionaries({}, optional={
    "version": st.just(1) | SCALAR, "defaults": SECTION | SCALAR,
    "entries": st.dictionaries(st.just("TEST_ENTRY") | KEY, SECTION | SCALAR, max_size=2)})
YAML_TOKENS = st.sampled_from([
    *" \n\t:-[]{},#&*!|>'\"%@`?0123456789.", "defaults", "entries", "plugins", "settings",
    "budget_seconds", "version", "!!binary", "!!python/object:os.system", "&a ", "*a", "<<: *a",
    "\udcff", "\xff", "\ufeff", "TEST_ENTRY"])


def yaml_text(data: object) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogateescape")


FACTORY_YAML = (FACTORY_CONFIG.map(yaml_text)
                | st.lists(YAML_TOKENS, max_size=30).map(lambda tokens: raw("".join(tokens)))
                | st.binary(max_size=40))


@SLOW
@given(files=st.lists(FACTORY_YAML, min_size=1, max_size=2))
@example(files=[b"entries:\n  TEST_ENTRY:\n    settings:\n      probe: {timeout: x}\n"])
@example(files=[b"a: &a [*a, *a]\ndefaults: *a\n"])
def test_check_config_and_setup_never_crash_on_a_hostile_factory_config(
        fuzz_root: Path, node: FakeCvmfs, files: list[bytes]) -> None:
    with scratch(fuzz_root) as directory:
        config_dir = directory / "configs"
        config_dir.mkdir()
        for number, data in enumerate(files):
            (config_dir / f"{number}.yaml").write_bytes(data)
        paths = sorted(str(path) for path in config_dir.iterdir())
        check = main(["check-config", *paths], directory, node_env(node))
        assert_no_crash(check)
        event(f"check-config: exit {check.returncode}")
        if check.returncode:
            assert re.search(r"\b(1 problem|\d+ problems) found$", check.stderr.splitlines()[-1]), \
                check.stderr
            assert check.stderr.startswith(tuple(paths)), check.stderr
        work_dir = make_work_dir(directory / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
        before = snapshot(work_dir)
        proc = main(["setup", "glidein_config", "entry", "--config-dir", str(config_dir)],
                    work_dir, node_env(node))
        setup_result(proc, work_dir, before)


# Settings that the built-in plugins use without checking them: the plugin raises, and the
# message names neither the file nor the key (found by the fuzz test above).
HUGE = "1" + "0" * 400  # an integer no float can hold
UNCHECKED_SETTINGS = [
    *(pytest.param(plugin, key, value, id=f"{plugin}-{key}-{'huge' if value == HUGE else value}")
      for plugin, key, value in [
          ("probe", "timeout", "x"), ("probe", "version_timeout", "[]"),
          ("probe", "cache_ttl", "x"), ("discovery", "timeout", "x"), ("binds", "timeout", HUGE),
          ("gpus", "timeout", HUGE), ("launch", "check_timeout", HUGE)]),
]


@pytest.mark.parametrize(("plugin", "key", "value"), UNCHECKED_SETTINGS)
def test_a_wrong_builtin_setting_is_a_config_failure_naming_file_line_and_key(
        fuzz_root: Path, node: FakeCvmfs, plugin: str, key: str, value: str) -> None:
    with scratch(fuzz_root) as directory:
        config = directory / "entry.yaml"
        config.write_text(f"defaults:\n  settings:\n    {plugin}:\n      {key}: {value}\n")
        work_dir = make_work_dir(directory / "work", {"GLIDEIN_Singularity_Use": "REQUIRED"})
        proc = main(["setup", "glidein_config", "entry", "--config", str(config)], work_dir,
                    {**node_env(node), "GLIDEIN_PLUGINS_DISABLE": ""})
        result = setup_result(proc, work_dir, snapshot(work_dir))
    assert (result.exit_code, result.failure) == (1, "Config"), result.detail
    assert f"{config}:4: settings.{plugin}.{key}" in result.detail, result.detail
    assert " raised " not in result.stdout, result.stdout


@pytest.mark.parametrize(("data", "line", "what"), [
    (b"version: 1\ndefaults:\n  budget_seconds: -1\n", 3, "defaults.budget_seconds"),
    pytest.param(b"version: 1\ndefaults:\n  budget_seconds: " + HUGE.encode() + b"\n", 3,
                 "defaults.budget_seconds", id="huge-integer"),
    *(pytest.param(b"version: 1\nentries: " + char + b"\n", 2, "", id=f"control-{char!r}")
      for char in (b"\0", b"\x07", b"\x1b")),
    pytest.param(b'version: 1\ndefaults:\n  attributes:\n    "a\\nb": 1\n', 4,
                 "defaults.attributes.", id="newline-in-a-key"),
])
def test_check_config_locates_what_it_refuses(fuzz_root: Path, data: bytes, line: int,
                                              what: str) -> None:
    with scratch(fuzz_root) as directory:
        config = directory / "entry.yaml"
        config.write_bytes(data)
        proc = main(["check-config", str(config)], directory, {"PATH": "/usr/bin:/bin"})
    assert_no_crash(proc)
    assert proc.returncode == 1 and re.match(  # file:line, and the column when known
        rf"{re.escape(str(config))}:{line}(:\d+)?: {re.escape(what)}", proc.stderr), \
        proc.stderr
    assert proc.stderr.count("\n") == 2, proc.stderr  # the problem, then how many


# -- end to end: the job wrapper -------------------------------------------------------------------

AD_NAMES = st.sampled_from(["SingularityImage", "CVMFSReposList", "REQUIRED_OS", "GPU_USE",
                            "RequestGPUs", "Environment", "Env", "AssignedGPUs",
                            "GLIDEIN_CONTAINER_LAUNCH"]) | NAME
AD_VALUE = st.one_of(
    st.builds(lambda v: '"' + v.replace('"', '\\"') + '"', ONE_LINE),
    st.sampled_from(['"@IMAGE@"', '"/cvmfs/x/y:latest"', '"docker://a/b:c"', '"rhel9,any"',
                     '"A=1 B=\'x y\' C=\\"q\\""', '"cvmfs.example.org,oasis/../x"', "true",
                     "2", '"native"', '"CUDA0"']),
    ONE_LINE)
HOSTILE_AD = st.lists(mostly("", hostile=ONE_LINE).flatmap(  # a line; one in four, junk
    lambda junk: st.just(junk) if junk else st.builds("{} = {}".format, AD_NAMES, AD_VALUE)),
    max_size=5).map("\n".join)


@pytest.fixture(scope="module")
def setup_state(tmp_path_factory: pytest.TempPathFactory, node: FakeCvmfs) -> Path:
    """The setup state of a PREFERRED glidein on the fake node, failures not delayed."""
    root = tmp_path_factory.mktemp("glidein")
    config = root / "entry.yaml"
    config.write_text("defaults:\n  settings:\n    launch: {failure_delay: 0, check_timeout: 5}\n")
    work_dir = make_work_dir(root / "work", {"GLIDEIN_Singularity_Use": "PREFERRED",
                                             "SINGULARITY_IMAGES_DICT": node.images_dict()})
    proc = main(["setup", "glidein_config", "entry", "--config", str(config)], work_dir,
                node_env(node))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work_dir / ".glidein_plugins" / "setup_state.json"


def shell_words(plan: bytes) -> list[bytes]:
    """The words of the plan's command, as ``/bin/sh`` evaluates them (``exec`` made an alias
    of ``set --``: the runtime is not started)."""
    proc = subprocess.run([b"/bin/sh", b"-c", b"alias exec='set --'; eval \"$1\"; "
                           b"printf '%s\\0' \"$@\"", b"sh", plan],
                          capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(b"\0")[:-1]


@SLOW
@given(job_ad_text=HOSTILE_AD, machine_ad_text=st.just("") | HOSTILE_AD,
       args=st.lists(NO_NUL, max_size=4))
@example(job_ad_text='SingularityImage = "@IMAGE@"\nCVMFSReposList = "a,b/../c"',
         machine_ad_text="", args=[b"$(id)"])
def test_the_wrapper_starts_the_job_unchanged_or_reports_one_line(
        fuzz_root: Path, node: FakeCvmfs, setup_state: Path, job_ad_text: str,
        machine_ad_text: str, args: list[bytes]) -> None:
    """``glidein-plugins wrap --shell`` on a PREFERRED glidein (without a setup state, the job
    runs as it is: test_the_wrap_command_runs_...)."""
    image = str(node.images["rhel8"])
    with scratch(fuzz_root) as sandbox:
        for name, text in ((".job.ad", job_ad_text), (".machine.ad", machine_ad_text)):
            (sandbox / name).write_bytes(raw(text.replace("@IMAGE@", image)))
        error_file = sandbox / ".wrapper_error"
        environ = {**node_env(node), "_CONDOR_JOB_AD": str(sandbox / ".job.ad"),
                   "_CONDOR_MACHINE_AD": str(sandbox / ".machine.ad"),
                   "_CONDOR_SCRATCH_DIR": str(sandbox), "_CONDOR_WRAPPER_ERROR_FILE":
                   str(error_file), report.DELAY_VAR: "0"}
        job = [str(fuzz_root / "job"), *map(as_text, args)]  # (outside the sandbox)
        proc = main(["wrap", "--shell", "--state", str(setup_state), "--", *job], sandbox,
                    environ)
        assert_no_crash(proc)
        if proc.returncode:
            lines = error_file.read_text().splitlines()
            event(f"wrap: refused: {lines[0][25:60]}")
            assert len(lines) == 1 and lines[0].startswith("glidein_plugins wrapper: "), lines
            assert lines[0] in proc.stderr
            return
        assert not error_file.exists()
        words = shell_words(raw(proc.stdout))
        event("wrap: " + ("in its container" if proc.stdout.startswith(("exec ", "export "))
                          else f"on the host {proc.stderr[:60]}"))
    assert words[-len(job):] == [raw(arg) for arg in job]  # the job, word for word, last


@examples(4)
@given(args=st.lists(NO_NUL, min_size=1, max_size=4), machine_ad=st.binary(max_size=40))
def test_the_wrap_command_runs_the_job_with_its_arguments_or_reports_one_line(
        fuzz_root: Path, args: list[bytes], machine_ad: bytes) -> None:
    """``python -m glidein_plugins wrap -- JOB ARGS`` for real: no setup state in the
    environment, the machine ad (where the state would be named) arbitrary bytes."""
    with scratch(fuzz_root) as sandbox:
        job = install_printing_job(sandbox)
        (sandbox / ".machine.ad").write_bytes(machine_ad)
        environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8",
                   "_CONDOR_MACHINE_AD": str(sandbox / ".machine.ad"), report.DELAY_VAR: "0"}
        proc = subprocess.run([sys.executable.encode(), b"-m", b"glidein_plugins", b"wrap",
                               b"--", str(job).encode(), *args], cwd=sandbox, env=environ,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
        stderr = proc.stderr.decode("utf-8", "replace")
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr
        if proc.returncode == 1:
            assert len(stderr.splitlines()) == 1 and stderr.startswith("glidein_plugins "
                                                                        "wrapper: "), stderr
            return
        seen = job_view(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                    proc.stdout.decode(), stderr))
    assert [raw(arg) for arg in seen["argv"]] == args

