"""Typed results: attributes validated when made, their constructors and ClassAd literals
(checked with HTCondor's own parser), ``flag()``, and ``one_line()`` on hostile text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.results import (
    Attribute,
    AttrType,
    Facts,
    Mode,
    ModeDecision,
    RuntimeCandidate,
    RuntimeProbe,
    flag,
    one_line,
)


@pytest.mark.parametrize("name", [
    "", "1ABC", "HAS SPACE", "A-B", "A.B", "NAME\n", "true", "Undefined", "MY",  # syntax
    "HasSingularity", "hassingularity", "TotalGPUs", "GPUs_Capability", "gpus_DeviceUuid",  # owned
])
def test_bad_or_htcondor_owned_names_are_refused(name):
    with pytest.raises(ValueError, match=r"ClassAd|HTCondor"):
        Attribute.string(name, "x")


@pytest.mark.parametrize("value, kind", [
    ("one\ntwo", AttrType.STRING), ("one\rtwo", AttrType.EXPR), ("nul\x00", AttrType.STRING),
    ('say "hi"', AttrType.STRING), ("C:\\", AttrType.STRING), ("trailing\\", AttrType.EXPR),
    ("$(LOCAL_DIR)", AttrType.STRING), ("$ENV(HOME)", AttrType.EXPR), ("x" * 4000, "S"),
    ("1.5", AttrType.INTEGER), ("12 ", "I"), ("(a && b", AttrType.EXPR), ('"open', "C"), ("", "C"),
])
def test_unsafe_values_are_refused(value, kind):
    with pytest.raises(ValueError):
        Attribute("SOME_ATTRIBUTE", value, kind)


def test_values_are_text():
    with pytest.raises(TypeError, match="str, not int"):
        Attribute("SOME_ATTRIBUTE", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'X'"):
        Attribute("SOME_ATTRIBUTE", "1", "X")  # type: ignore[arg-type]


@pytest.mark.parametrize("attribute, kind, literal, evaluated", [
    (Attribute.string("VO_NAME", "cms ok"), AttrType.STRING, '"cms ok"', "cms ok"),
    (Attribute.integer("VO_SLOTS", -3), AttrType.INTEGER, "-3", -3),
    (Attribute.boolean("VO_READY", True), AttrType.EXPR, "True", True),
    (Attribute.boolean("VO_READY", False), AttrType.EXPR, "False", False),
    (Attribute.expr("VO_LIST", '{"a", "b"}'), AttrType.EXPR, '{"a", "b"}', ["a", "b"]),
    (Attribute("VO_TYPE_BY_CODE", "7", "I"), AttrType.INTEGER, "7", 7),  # type: ignore[arg-type]
])
def test_constructors_and_classad_literals(classad2, attribute, kind, literal, evaluated):
    assert attribute.type is kind
    assert attribute.classad_literal == literal
    value = classad2.ExprTree(attribute.classad_literal).eval()
    assert (list(value) if kind is AttrType.EXPR and isinstance(evaluated, list) else value) \
        == evaluated


def test_flag():
    assert flag("HAS_VO_CVMFS", True) == (Attribute.boolean("HAS_VO_CVMFS", True),)
    no, reason = flag("HAS_VO_CVMFS", False, 'mount failed:\n  "/cvmfs/vo" is\tstale\n')
    assert no == Attribute.boolean("HAS_VO_CVMFS", False)
    assert reason == Attribute.string("HAS_VO_CVMFS_REASON", "mount failed: `/cvmfs/vo` is stale")


@pytest.mark.parametrize("text, squeezed", [
    ("line one\nline two\r\n\tthree", "line one line two three"),
    ("quoted \"x\" and 'y' in C:\\path\\", "quoted `x` and `y` in C:/path/"),
    ("$(HOME) $$(X) $ENV(HOME) $INT(1) $RANDOM_CHOICE(a,b) $5 cost",
     "$ (HOME) $ $ (X) $ ENV(HOME) $ INT(1) $ RANDOM_CHOICE(a,b) $5 cost"),
    ("bell\x07nul\x00esc\x1b[31mred\x7f\x85", "bell nul esc [31mred"),
    ("lone \udc80 surrogate", "lone ? surrogate"),
    ("", ""),
])
def test_one_line_examples(text, squeezed):
    assert one_line(text) == squeezed


def test_one_line_limit():
    assert one_line("x" * 1000) == "x" * 497 + "..."
    assert one_line("x" * 1000, limit=10) == "xxxxxxx..."


HOSTILE_TEXT = st.one_of(st.text(), st.text(st.characters(exclude_categories=())))  # surrogates


@settings(max_examples=300, deadline=None)
@given(HOSTILE_TEXT, st.integers(min_value=4, max_value=600))
def test_one_line_makes_any_text_publishable(text, limit):
    value = one_line(text, limit)
    attribute = Attribute.string("VO_FAILURE_REASON", value)  # raises if not publishable
    assert len(value) <= limit and "\n" not in value
    assert one_line(value, limit) == value  # already one line: left alone
    glidein_config.format_line(attribute.name, value).encode("utf-8")  # strict UTF-8


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HOSTILE_TEXT)
def test_one_line_is_read_back_by_htcondor_unchanged(classad2, text):
    attribute = Attribute.string("VO_FAILURE_REASON", one_line(text))
    assert classad2.ExprTree(attribute.classad_literal).eval() == attribute.value


@pytest.mark.parametrize("facts, reason", [
    (Facts(mode=ModeDecision(Mode.NEVER, "NEVER", "OPTIONAL", "FE says NEVER")),
     "containers not wanted: FE says NEVER"),
    (Facts(), "no container runtime found: no candidate binary was proposed"),
    (Facts(rejected_runtimes=(
        RuntimeProbe(RuntimeCandidate("/a/apptainer", "PATH"), False, "exit code 255"),
        RuntimeProbe(RuntimeCandidate("/b/singularity", "OSG"), False, "timed out"))),
     "no working container runtime among 2 tried: /a/apptainer (PATH): exit code 255; "
     "/b/singularity (OSG): timed out"),
    (Facts(runtime=RuntimeProbe(RuntimeCandidate("/a/apptainer", "PATH"), True)), ""),
])
def test_runtime_reason(facts, reason):
    assert facts.runtime_reason == reason


@pytest.mark.parametrize("mode", list(Mode))
def test_mode_decision_wants_container(mode):
    decision = ModeDecision(mode, "FE", "FACTORY", "why")
    assert decision.wants_container == (mode in (Mode.PREFERRED, Mode.REQUIRED))
