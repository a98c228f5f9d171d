"""The result XML (otrb_output.xml): parsed back with xml.etree, and checked with the acceptance
rules of GlideinWMS's error_augment.sh, run with the real head/tail/grep."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _proto_support import CHILD_TIMEOUT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glidein_plugins.errors import ConfigError, Failure, FailureType
from glidein_plugins.protocol.glideinwms import result_xml

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\Z")

# error_augment.sh's checks (reference section 4); exit code 10+N says which one failed.
ERROR_AUGMENT_RULES = r"""
f=$1 rc=$2
head -n 4 "$f" | grep -q '<OSGTestResult ' || exit 11
head -n 8 "$f" | grep -q '<result>' || exit 12
tail -n 4 "$f" | grep -q '</OSGTestResult>' || exit 13
grep -q '</result>' "$f" || exit 14
status=$(grep '<status>' "$f") || exit 15
if [ "$rc" -eq 0 ]; then
    echo "$status" | grep -q OK || exit 16
else
    echo "$status" | grep -q OK && exit 17
fi
exit 0
"""

HOSTILE = [
    '<b>&amp; "double" \'single\'',
    "]]> <![CDATA[ x ]]>",
    "</metric></result></OSGTestResult>",
    "<status>OK</status>",
    "control \x00\x01\x08\x0b\x0c\x1b\x1f\x7f chars",
    "café ☃ 𝄞 \u202e right-to-left",
    "tab\tnewline\nCRLF\r\nCR\rend",
    "undecodable byte \udcff, lone surrogate \ud800",
    "\ufffe\uffff non-characters",
    "",
]


def xml_safe(text: str) -> str:
    """``text`` with each character XML 1.0 cannot carry (its Char production) made ``?``."""
    return "".join(
        char if char in "\t\n\r" or " " <= char <= "\ud7ff" or "\ue000" <= char <= "\ufffd"
        or char >= "\U00010000" else "?" for char in text)


def error_augment_accepts(path: Path, exit_code: int) -> int:
    """0 when error_augment.sh would keep the file for a script that exited ``exit_code``."""
    return subprocess.run(["bash", "-c", ERROR_AUGMENT_RULES, "bash", str(path), str(exit_code)],
                          env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
                          timeout=CHILD_TIMEOUT).returncode


def parse(text: str) -> tuple[ET.Element, list[tuple[str, str]]]:
    """The root, and the (name, value) of each metric; checks what every result must hold."""
    root = ET.fromstring(text.encode("utf-8"))
    assert text.startswith('<?xml version="1.0"?>\n')
    assert root.tag == "OSGTestResult" and root.get("version") == "4.3.1"
    assert root[0].tag == "result"
    metrics = root.findall("result/metric")
    for metric in metrics:
        assert TIMESTAMP.match(metric.get("ts", "")), metric.get("ts")
        assert metric.get("uri") == "local"
    return root, [(metric.get("name", ""), metric.text or "") for metric in metrics]


def detail_of(root: ET.Element) -> str:
    """The message in ``<detail>``, each line indented by four spaces as error_gen does."""
    text = root.findtext("detail")
    assert text is not None
    lines = text.split("\n")
    assert lines[0] == "" and lines[-1] == "  " and all(line[:4] == "    " for line in lines[1:-1])
    return "\n".join(line[4:] for line in lines[1:-1])


def test_ok_result() -> None:
    text = result_xml.render("singularity_setup", None, {"use_singularity": "Undefined", "n": "2"})
    root, metrics = parse(text)
    assert root.get("id") == "singularity_setup"
    assert root.findtext("result/status") == "OK"
    assert metrics == [("use_singularity", "Undefined"), ("n", "2")]
    assert root.find("detail") is None


@pytest.mark.parametrize("failure_type", list(FailureType))
def test_error_result_starts_with_the_failure_metric(failure_type: FailureType) -> None:
    failure = Failure(failure_type, "no runtime\nsecond line")
    root, metrics = parse(result_xml.render("entry", failure, {"n": "2"}))
    assert root.findtext("result/status") == "ERROR"
    assert metrics == [("failure", failure_type.value), ("n", "2")]
    assert [child.tag for child in root] == ["result", "detail"]
    assert detail_of(root) == "no runtime\nsecond line"


@pytest.mark.parametrize("failed", [False, True])
@pytest.mark.parametrize("exit_code", [0, 1])
def test_error_augment_keeps_it_exactly_when_status_matches_exit_code(
        tmp_path: Path, failed: bool, exit_code: int) -> None:
    failure = Failure(FailureType.WN_RESOURCE, "x\n" * 10) if failed else None
    path = result_xml.write(tmp_path, "main", failure, {f"m{i}": "v" for i in range(10)})
    verdict = error_augment_accepts(path, exit_code)
    assert (verdict == 0) == (failed == (exit_code != 0)), verdict


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped_and_round_trips(tmp_path: Path, text: str) -> None:
    failure = Failure(FailureType.CONFIG, text)
    path = result_xml.write(tmp_path, text, failure, {text: text, "after": "ok"})
    root, metrics = parse(path.read_text(encoding="utf-8"))
    safe = xml_safe(text)
    assert root.get("id") == safe
    assert metrics == [("failure", "Config"), (safe, safe), ("after", "ok")]
    assert detail_of(root) == safe
    assert error_augment_accepts(path, 1) == 0


ANY_TEXT = st.text(st.characters(exclude_categories=()))  # surrogates and controls included


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script_id=ANY_TEXT, metrics=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=4),
       failure=st.none() | st.builds(Failure, st.sampled_from(FailureType), ANY_TEXT))
def test_always_well_formed_and_status_matches_failure(tmp_path: Path, script_id: str,
                                                       metrics: dict, failure: Failure | None
                                                       ) -> None:
    path = result_xml.write(tmp_path, script_id, failure, metrics)
    root, found = parse(path.read_text(encoding="utf-8"))
    assert root.findtext("result/status") == ("ERROR" if failure else "OK")
    expected = [(xml_safe(name), xml_safe(value)) for name, value in metrics.items()]
    if failure:
        expected.insert(0, ("failure", failure.type.value))
        assert detail_of(root) == xml_safe(failure.message)
    assert found == expected
    assert error_augment_accepts(path, 1 if failure else 0) == 0


def test_write_replaces_the_file_atomically(tmp_path: Path) -> None:
    (tmp_path / "otrb_output.xml").write_text("an older result")
    path = result_xml.write(tmp_path, "main", None, {})
    assert path == tmp_path / "otrb_output.xml"
    assert parse(path.read_text())[0].findtext("result/status") == "OK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["otrb_output.xml"]


def test_write_into_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        result_xml.write(tmp_path / "missing", "main", None, {})
    assert info.value.where == str(tmp_path / "missing" / "otrb_output.xml")
