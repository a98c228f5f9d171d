"""Factory config YAML: merging defaults, entries and files, what an entry ends up with and where
each value came from; ``glidein-plugins check-config`` on good and broken files.

The broken files under ``data/factory/invalid`` mark every line that must be reported with an
``# ERROR <key path>: <message start>`` comment; syntax errors are checked against PyYAML's own
report of the same file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from glidein_plugins.config import factory_config
from glidein_plugins.config.model import Setting
from glidein_plugins.errors import ConfigError

DATA = Path(__file__).parent / "data" / "factory"
SITE, OVERRIDE = DATA / "site.yaml", DATA / "override.yaml"
DUPLICATE = DATA / "duplicate_entry.yaml"
EMBEDDED_REQUIRE = "GLIDEIN_SINGULARITY_REQUIRE"


def line_of(path: Path, pattern: str, start: int = 1) -> int:
    """The number of the first line at or after ``start`` matching ``pattern`` (a regex)."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1)
                if number >= start and re.search(pattern, line))


def where(path: Path, pattern: str, start: int = 1) -> str:
    return f"{path}:{line_of(path, pattern, start)}"


def at(path: Path, pattern: str, token: str, start: int = 1) -> str:
    """``file:line:col`` of ``token`` on the first line matching ``pattern``."""
    number = line_of(path, pattern, start)
    return f"{path}:{number}:{path.read_text().splitlines()[number - 1].index(token) + 1}"


# -- merging ----------------------------------------------------------------------------------


def test_embedded_defaults_alone() -> None:
    entry = factory_config.load().entry("ANY")
    assert (entry.name, entry.budget_seconds) == ("ANY", 120.0)
    assert (entry.enable, entry.disable, entry.required, entry.directories) == ((),) * 4
    assert entry.attributes[EMBEDDED_REQUIRE] == Setting(
        "OPTIONAL", where(factory_config.EMBEDDED, EMBEDDED_REQUIRE))
    assert entry.settings == {}


def test_entry_section_merges_over_the_defaults() -> None:
    config = factory_config.load([SITE])
    one = config.entry("CE_ONE")
    assert one.budget_seconds == 30.0  # the entry's scalar wins
    assert one.required == ("mode",)  # lists come from the defaults too
    assert {key: s.value for key, s in one.attributes.items()} == {
        EMBEDDED_REQUIRE: "REQUIRED", "SITE_FLAG": "yes"}  # text as written, not YAML's True
    assert one.attributes[EMBEDDED_REQUIRE].where == where(SITE, "REQUIRED")
    assert one.attributes["SITE_FLAG"].where == where(SITE, "SITE_FLAG")
    # settings merge key by key within a plugin's mapping
    assert one.plugin_settings("probe") == {"test_image": "/cvmfs/img/el9", "timeout": 20}
    assert one.settings["probe"]["timeout"].where == where(
        SITE, "timeout", line_of(SITE, "^  CE_ONE:"))
    two = config.entry("CE_TWO")
    assert (two.budget_seconds, two.disable) == (90.0, ("singularity",))
    assert two.attributes[EMBEDDED_REQUIRE].where == where(SITE, "PREFERRED")


def test_an_entry_without_a_section_gets_the_defaults() -> None:
    entry = factory_config.load([SITE]).entry("UNLISTED")
    assert (entry.budget_seconds, entry.required, entry.disable) == (90.0, ("mode",), ())
    assert entry.attributes[EMBEDDED_REQUIRE].value == "PREFERRED"
    assert entry.plugin_settings("probe")["timeout"] == 10
    assert entry.plugin_settings("nothing") == {}


def test_files_merge_in_order_lists_accumulate_mappings_override() -> None:
    config = factory_config.load([SITE, OVERRIDE])
    assert config.files == [str(factory_config.EMBEDDED), str(SITE), str(OVERRIDE)]
    assert sorted(config.entries) == ["CE_ONE", "CE_THREE", "CE_TWO"]
    assert config.entries["CE_THREE"][1] == where(OVERRIDE, "^  CE_THREE:")
    one = config.entry("CE_ONE")
    assert one.required == ("mode", "images")  # accumulated, each once, in order
    assert one.enable == ("mode",)
    assert one.attributes["SITE_FLAG"] == Setting("no", where(OVERRIDE, "SITE_FLAG"))
    assert one.attributes[EMBEDDED_REQUIRE].value == "REQUIRED"
    assert one.plugin_settings("probe") == {
        "test_image": "/cvmfs/img/el9", "timeout": 20, "cache_ttl": 0}
    three = config.entry("CE_THREE")
    assert three.budget_seconds == 7.5
    assert {key: s.value for key, s in three.attributes.items()} == {
        EMBEDDED_REQUIRE: "PREFERRED", "SITE_FLAG": "no", "OTHER": "010", "EMPTY": ""}


def test_plugin_references_and_directories_say_where() -> None:
    """Each plugin named in a section, at its first mention (a list name) or last (settings)."""
    config = factory_config.load([SITE, OVERRIDE])
    assert sorted(config.plugin_references()) == sorted([
        ("mode", f"{at(SITE, 'required:', 'mode')}: defaults.plugins.required"),
        ("images", f"{at(OVERRIDE, 'required:', 'images')}: defaults.plugins.required"),
        ("mode", f"{at(OVERRIDE, 'enable:', 'mode')}: defaults.plugins.enable"),
        ("probe", f"{at(OVERRIDE, 'probe:', 'probe')}: defaults.settings.probe"),
        ("probe", f"{at(SITE, 'probe:', 'probe', line_of(SITE, '^  CE_ONE:'))}: "
                  "entries.CE_ONE.settings.probe"),
        ("singularity", f"{at(SITE, 'disable:', 'singularity')}: "
                        "entries.CE_TWO.plugins.disable"),
    ])
    assert config.directories() == ()


def test_load_raises_one_error_listing_every_problem_once() -> None:
    values = DATA / "invalid" / "values.yaml"
    with pytest.raises(ConfigError) as caught:
        factory_config.load([values])
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(values))}:{line_of(values, 'abc')}:\d+: "
                    "defaults.budget_seconds: ", message)
    assert message.count(f"{values}:") == len(expected_errors(values))


# -- check-config -----------------------------------------------------------------------------


def expected_errors(path: Path) -> list[str]:
    """A pattern ``file:line[:col]: message start`` for every ``# ERROR`` comment in ``path``."""
    return [rf"{re.escape(str(path))}:{number}(:\d+)?: "
            + re.escape(line.split("# ERROR ", 1)[1].strip())
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if "# ERROR " in line]


def check_config(*paths: Path, cwd: Path):
    proc = run_cli(["check-config", *map(str, paths)], cwd)
    assert "Traceback" not in proc.stderr
    return proc


def test_check_config_accepts_good_files(tmp_path: Path) -> None:
    proc = check_config(SITE, OVERRIDE, cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.strip() == "OK: 2 files, 3 entries"


@pytest.mark.parametrize("path", sorted((DATA / "invalid").glob("*.yaml")), ids=lambda p: p.stem)
def test_check_config_reports_every_problem_with_file_line_and_key(tmp_path: Path,
                                                                   path: Path) -> None:
    proc = check_config(path, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    *reported, summary = proc.stderr.splitlines()
    expected = expected_errors(path)
    assert summary == f"{len(expected)} problem{'s' if len(expected) != 1 else ''} found"
    assert len(reported) == len(expected), proc.stderr
    for start in expected:
        assert any(re.match(start, line) for line in reported), (start, proc.stderr)


@pytest.mark.parametrize("path", sorted((DATA / "syntax").glob("*.yaml")), ids=lambda p: p.stem)
def test_check_config_reports_yaml_syntax_errors_where_pyyaml_does(tmp_path: Path,
                                                                   path: Path) -> None:
    with pytest.raises(yaml.YAMLError) as caught:
        yaml.safe_load(path.read_text())
    mark, problem = caught.value.problem_mark, caught.value.problem
    proc = check_config(SITE, path, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(
        f"{path}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {problem}")


def test_check_config_reports_an_entry_defined_in_two_files(tmp_path: Path) -> None:
    proc = check_config(SITE, DUPLICATE, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"{where(DUPLICATE, '^  CE_ONE:')}: entries.CE_ONE: entry already defined at "
        f"{where(SITE, '^  CE_ONE:')}")


@pytest.mark.parametrize(("name", "message"), [
    ("missing.yaml", "cannot read: No such file or directory"),
    (".", "cannot read: Is a directory"),
    ("latin1.yaml", "not UTF-8 text"),
])
def test_check_config_reports_unreadable_files(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"defaults:\n  attributes: {A: caf\xe9}\n")
    proc = check_config(tmp_path / name, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(f"{tmp_path / name}: {message}")


def test_check_config_refuses_an_empty_file(tmp_path: Path) -> None:
    """An empty file is a mistake (a truncated copy, the wrong file), not "no settings"."""
    (tmp_path / "empty.yaml").write_text("# nothing configured yet\n")
    proc = check_config(tmp_path / "empty.yaml", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [
        f"{tmp_path / 'empty.yaml'}: empty: no settings in it (a factory config starts with "
        "'version: 1')", "1 problem found"]


# -- the parsed form shipped in the tarball -------------------------------------------------------

SHIPPED = sorted((Path(__file__).parent.parent / "factory_configs").glob("*.yaml"))


def cache_beside(tmp_path: Path, source: Path) -> Path:
    """``source`` copied into ``tmp_path`` with its cache written as ``pack`` writes it."""
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    data = factory_config.compiled(copy)
    assert data is not None
    factory_config.cache_path(copy).parent.mkdir(exist_ok=True)
    factory_config.cache_path(copy).write_bytes(data)
    return copy


@pytest.mark.parametrize("source", [SITE, OVERRIDE, *SHIPPED], ids=lambda path: path.name)
def test_the_cache_gives_what_the_yaml_gives_with_the_same_lines(tmp_path: Path,
                                                                  source: Path) -> None:
    copy = cache_beside(tmp_path, source)
    cached = factory_config.load([copy])
    factory_config.cache_path(copy).unlink()
    assert cached == factory_config.load([copy])


def test_a_cache_is_used_only_for_the_exact_text_and_version(tmp_path: Path) -> None:
    copy = cache_beside(tmp_path, SITE)
    cache = factory_config.cache_path(copy)
    marked = cache.read_text().replace('"CE_ONE": [', '"CE_FROM_CACHE": [')
    cache.write_text(marked)
    assert "CE_FROM_CACHE" in factory_config.load([copy]).entries
    copy.write_text(SITE.read_text() + "# edited after packing\n")
    assert "CE_ONE" in factory_config.load([copy]).entries
    copy.write_bytes(SITE.read_bytes())
    # another version's cache, a damaged one, one of the wrong shape: the YAML is parsed
    for stale in (marked.replace('"version": "', '"version": "0.0.0-'), marked[:40], "[]"):
        cache.write_text(stale)
        assert "CE_ONE" in factory_config.load([copy]).entries


def test_values_json_cannot_carry_are_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "dated.yaml"
    path.write_text("version: 1\ndefaults:\n  settings:\n    probe: {since: 2024-01-01, map: "
                    "{1: one}}\n")
    assert factory_config.compiled(path) is None


def test_compiling_a_wrong_file_names_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text("version: 1\ndefaults:\n  budget_seconds: -1\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:3: defaults.budget_seconds"):
        factory_config.compiled(path)


# -- YAML tags (SECURITY.md, threat 5) ----------------------------------------------------------

@pytest.mark.parametrize(("value", "tag"), [
    ("!!python/name:os.system ''", "!!python/name:os.system"),
    ("!!python/object/new:os.system 'true'", "!!python/object/new:os.system"),
    ("!!str 010", "!!str"), ('!!int "10"', "!!int"), ("!!binary aGk=", "!!binary"),
    ("!local text", "!local"),
])
def test_a_tagged_attribute_is_refused_as_a_tagged_setting_is(tmp_path: Path, value: str,
                                                              tag: str) -> None:
    """An attribute is glidein_config text taken as written, so a tag would be ignored: it is
    refused, naming file:line and the key, as the settings refuse the tags they cannot load."""
    path = tmp_path / "tagged.yaml"
    path.write_text(f"version: 1\ndefaults:\n  attributes:\n    A: {value}\n    B: plain\n")
    proc = check_config(path, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{path}:4:5: defaults.attributes.A: a YAML tag ({tag}) is not allowed here: the value "
        "is glidein_config text, taken as written", "1 problem found"]


@pytest.mark.parametrize(("value", "text"), [
    ("010", "010"), ("yes", "yes"), ("'quoted: 010'", "quoted: 010"), ('"double"', "double"),
    ("2024-01-01", "2024-01-01"), ("1.5e3", "1.5e3"), ("~", ""), ("", ""),
    ("|-\n      block text", "block text"),
])
def test_untagged_attributes_are_taken_as_written(tmp_path: Path, value: str, text: str) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(f"version: 1\ndefaults:\n  attributes:\n    A: {value}\n")
    assert check_config(path, cwd=tmp_path).returncode == 0
    assert factory_config.load([path]).entry("E").attributes["A"].value == text


@pytest.mark.parametrize(("value", "message"), [
    ("!!int abc", "!!int cannot be 'abc'"), ("!!bool maybe", "!!bool cannot be 'maybe'"),
    ("!!float x", "!!float cannot be 'x'"), ("!!timestamp soon", "!!timestamp cannot be 'soon'"),
])
def test_a_setting_its_tag_cannot_build_is_an_error_not_a_crash(tmp_path: Path, value: str,
                                                                message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"version: 1\ndefaults:\n  settings:\n    images: {{timeout: {value}}}\n")
    proc = check_config(path, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"{path}:4:14: defaults.settings.images.timeout: invalid value: {message}")
