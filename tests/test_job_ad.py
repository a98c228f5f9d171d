"""The job/machine ad reader (``glidein_plugins.protocol.htcondor.job_ad``) against HTCondor's own
parser.

Ads are written as HTCondor writes ``.job.ad``/``.machine.ad`` (old ClassAd syntax, long
format: ``classad2.ClassAd.printOld``, what the starter and ``condor_q -long`` print), and what
we read must be what ``classad2`` reads from the same file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glidein_plugins.errors import InputError
from glidein_plugins.protocol.htcondor import job_ad

# what a real job ad holds, and the awkward values: '=' inside, quotes, backslashes (old syntax
# does not escape them), lists, nested expressions, a string that is an expression's operand
JOB = {
    "ClusterId": 1234,
    "Cmd": "/home/alice/run job.sh",
    "Arguments": 'a "b c" d=e; $HOME \\n',
    "Environment": "FOO='bar baz' X=a=b APPTAINERENV_LD_PRELOAD=/x.so",
    "SingularityImage": "/cvmfs/singularity.opensciencegrid.org/opensciencegrid/osgvo-el9:latest",
    "REQUIRED_OS": "rhel9,rhel8",
    "Iwd": "/home/alice/dir with spaces",
    "TrailingBackslash": "C:\\temp\\",
    "QuoteThenBackslash": 'say "hi"\\',
    "BackslashQuote": 'a\\"b',
    "Unicode": "naïve € ✓",
    "Empty": "",
    "WantGPU": True,
    "RequestGPUs": 2,
    "NiceUser": False,
    "Negative": -7,
    "RequestMemory": 2048.5,
}
EXPRESSIONS = {
    "Requirements": '(TARGET.Arch == "X86_64") && (TARGET.HAS_SINGULARITY =?= true) && '
                    '(TARGET.GLIDEIN_Site != "a=b")',
    "Rank": 'ifThenElse(Owner == "alice \\"quoted\\"", 10, 0)',
    "List": '{ "rhel9", 1, 2.5, { "nested" } }',
    "Record": '[ a = 1; b = "x=y" ]',
    "Sum": '"a" + "b"',
}


def job_ad_text(classad2) -> str:
    """The long format of ``JOB`` and ``EXPRESSIONS``, written by HTCondor's library."""
    ad = classad2.ClassAd()
    for name, value in JOB.items():
        ad[name] = value
    for name, text in EXPRESSIONS.items():
        ad[name] = classad2.ExprTree(text)
    return ad.printOld()


def htcondor_reads(classad2, text: str):
    return classad2.parseOne(text, classad2.ParserType.Old)


def test_the_reader_agrees_with_htcondor_on_a_real_job_ad(tmp_path: Path, classad2) -> None:
    text = job_ad_text(classad2)
    path = tmp_path / ".job.ad"
    path.write_text(text)
    ours = job_ad.read(path)
    theirs = htcondor_reads(classad2, text)
    assert {name.lower() for name in ours} == {name.lower() for name in theirs}
    for name, value in JOB.items():
        if isinstance(value, str):
            assert ours.string(name) == value == theirs.eval(name), name
        elif isinstance(value, bool):
            assert ours.boolean(name) is value is theirs.eval(name), name
            assert ours.string(name) is None and ours.integer(name) is None
        elif isinstance(value, int):
            assert ours.integer(name) == value == theirs.eval(name), name
            assert ours.string(name) is None
        else:  # a real: only its text
            assert float(ours[name]) == value == theirs.eval(name)
    for name in EXPRESSIONS:
        # the expression text we give back means to HTCondor what the file meant
        again = htcondor_reads(classad2, f"{name} = {ours.get(name)}\n")
        assert str(again.lookup(name)) == str(theirs.lookup(name)), name
        assert ours.string(name) is None and ours.boolean(name) is None
    # lookups ignore case, iteration keeps the names as written
    assert ours.string("singularityimage") == ours.string("SINGULARITYIMAGE") == JOB[
        "SingularityImage"]
    assert "ClusterId" in list(ours) and "requestgpus" in ours and "Missing" not in ours
    assert ours.get("missing") is None and ours.string("missing") is None


# printable text, and the characters old syntax treats specially; the format has no way to
# write a newline (HTCondor's own printOld breaks the line), so none is generated
_TEXT = st.text(st.one_of(st.sampled_from('\\"\'=;,$ {}[]#\t'),
                          st.characters(blacklist_categories=("Cs",),
                                        blacklist_characters="\n\r\x00")), max_size=30)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=_TEXT)
def test_any_string_reads_back_as_htcondor_reads_it(classad2, value: str) -> None:
    ad = classad2.ClassAd()
    ad["Value"] = value
    ad["After"] = 1
    text = ad.printOld()
    ours = job_ad.parse(text)
    assert ours.string("Value") == htcondor_reads(classad2, text).eval("Value") == value
    assert ours.integer("After") == 1


@pytest.mark.parametrize(("line", "string", "boolean", "integer"), [
    ('A = "x"', "x", None, None),
    ('A = "x\\"y"', 'x"y', None, None),  # \" is a quote ...
    ('A = "x\\"', "x\\", None, None),  # ... unless the quote ends the line
    ('A = "x\\\\"', "x\\\\", None, None),  # old syntax: backslashes stand for themselves
    ('A = "\\n\\t"', "\\n\\t", None, None),
    ('A = "a" + "b"', None, None, None),  # an expression is never evaluated
    ('A = "a" "b"', None, None, None),
    ("A = strcat(\"a\")", None, None, None),
    ("A = TRUE", None, True, None),
    ("A = false", None, False, None),
    ("A = 0", None, False, 0),
    ("A = 3", None, True, 3),
    ("A = -12", None, True, -12),
    ("A = 1.5", None, None, None),
    ("A = undefined", None, None, None),
    ("A = B", None, None, None),
])
def test_literal_values(line: str, string, boolean, integer) -> None:
    ad = job_ad.parse(line + "\n")
    assert (ad.string("a"), ad.boolean("a"), ad.integer("a")) == (string, boolean, integer)


def test_literals_agree_with_htcondor(classad2) -> None:
    for line in ('A = "x\\"y"', 'A = "x\\"', 'A = "x\\\\"', 'A = "\\n\\t"', 'A = "it\'s"'):
        assert job_ad.parse(line).string("A") == htcondor_reads(classad2, line + "\n").eval("A")


def test_blank_lines_comments_and_repeats() -> None:
    ad = job_ad.parse("# a comment\n\nFoo = 1\r\n  Bar = 2\nFOO = 3\n")
    assert ad.integer("foo") == 3  # the last line for a name wins, whatever its case
    assert list(ad) == ["Bar", "FOO"] and len(ad) == 2
    assert dict(ad) == {"Bar": "2", "FOO": "3"}


@pytest.mark.parametrize(("text", "line", "why"), [
    ("A = 1\njust words\n", 2, "expected 'Name = expression'"),
    ("= 1\n", 1, "no attribute name"),
    ("A = 1\n\n1abc = 2\n", 3, "is not a ClassAd name"),
    ("My-Name = 2\n", 1, "is not a ClassAd name"),
    ("A =\n", 1, "has no value"),
    ('A = "unterminated\n', 1, "unterminated string"),
    ('A = "ends with an escaped quote\\" \n', 1, "unterminated string"),
])
def test_a_malformed_line_is_an_error_naming_the_file_and_line(
        tmp_path: Path, text: str, line: int, why: str) -> None:
    path = tmp_path / ".machine.ad"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        job_ad.read(path)
    assert error.value.where == f"{path}:{line}"
    assert why in error.value.message


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.job\.ad: cannot read the ad: No such file"):
        job_ad.read(tmp_path / ".job.ad")


def test_an_ad_built_in_memory() -> None:
    ad = job_ad.Ad({"SingularityImage": '"/cvmfs/x"', "GPU_USE": "true"})
    assert ad.string("singularityimage") == "/cvmfs/x" and ad.boolean("gpu_use") is True
    assert ad == {"SingularityImage": '"/cvmfs/x"', "GPU_USE": "true"}  # a Mapping


def test_reading_an_ad_imports_neither_re_nor_the_heavy_modules(tmp_path: Path) -> None:
    """The reader is on the per-job path: standard library only, without ``re``."""
    (tmp_path / "ad").write_text('A = "x"\n')
    code = ("import sys; from glidein_plugins.protocol.htcondor import job_ad; "
            f"assert job_ad.read({str(tmp_path / 'ad')!r}).string('A') == 'x'; "
            "print(' '.join(sorted(set(sys.modules) & {'re', 'json', 'dataclasses', "
            "'typing', 'enum', 'pluggy', 'yaml', 'glidein_plugins.spec.results'})))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
