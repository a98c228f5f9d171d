"""Operators' mistakes caught before deploy, and a node's broken inputs diagnosed first.

Each mistake an operator makes in a factory config is reported by ``check-config`` with
``file:line:col``, the key and a suggestion, all at once; the same checks stop ``pack`` and the
setup on the node (a ``Config`` failure naming file, key and value); ``config show`` says where
every effective value came from; ``docs/settings.md`` is generated from the plugins' own
declarations. On the node, glidein_config is checked before any probe runs. The command line:
help, exit codes, pipes, table widths, numbers in JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, bare_node_env, glidein_result, make_work_dir, report_table, run_cli

from glidein_plugins.cli import config_show, operator_commands, parser
from glidein_plugins.config import factory_config
from glidein_plugins.config.config_yaml import MAX_DEPTH
from glidein_plugins.engine import registry
from glidein_plugins.engine.config_check import ATTRIBUTE_RULES

DATA = Path(__file__).parent / "data" / "factory"
SITE = DATA / "site.yaml"


def check(tmp_path: Path, text: str, *more: str) -> subprocess.CompletedProcess:
    path = tmp_path / "entry.yaml"
    path.write_text(text)
    proc = run_cli(["check-config", str(path), *more], tmp_path)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def problems(proc: subprocess.CompletedProcess) -> list[str]:
    """The problem lines (without the summary), each relative to the file's name."""
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
    *lines, summary = proc.stderr.splitlines()
    assert re.fullmatch(r"1 problem found|\d+ problems found", summary), summary
    return [line.split("/entry.yaml", 1)[1] if "/entry.yaml" in line else line
            for line in lines]


# -- each mistake of the issue, with file:line:col, the key and a fix ------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("    probe: {timout: 5}\n",
     ":4:13: defaults.settings.probe.timout: unknown setting (expected one of: timeout, "
     "version_timeout, test_image, remote_test_image, sif_image, cache_ttl) (did you mean "
     "'timeout'?)"),
    ("    probe:\n      cache_ttl: forever\n",
     ":5:7: defaults.settings.probe.cache_ttl: expected a number of seconds (0: none), got "
     "'forever'"),
    ("    launch: {extra_options: --nv}\n",
     ":4:14: defaults.settings.launch.extra_options: expected a list of runtime options "
     "(strings starting with '-'), got '--nv'"),
    ("    cvmfs: {repositories: [oasis.opensciencegrid.org, bad_name]}\n",
     ":4:13: defaults.settings.cvmfs.repositories: 'bad_name' is not a CVMFS repository name"),
    ("    singularity: {images: x}\n",
     ":4:19: defaults.settings.singularity.images: unknown setting (it takes none)"),
], ids=["misspelt-key", "wrong-type", "not-a-list", "deep-check", "takes-none"])
def test_a_wrong_setting_is_reported_where_it_is(tmp_path: Path, text: str,
                                                 expected: str) -> None:
    proc = check(tmp_path, "version: 1\ndefaults:\n  settings:\n" + text)
    [line] = problems(proc)
    assert line.startswith(expected), line


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("GLIDEIN_SINGULARITY_REQUIRE", "MANDATORY",
     "'MANDATORY': not one of NEVER, OPTIONAL, PREFERRED, REQUIRED, REQUIRED_GWMS"),
    ("GLIDEIN_Singularity_Use", "PREFERED", "'PREFERED': not one of DISABLE_GWMS, NEVER, "
     "OPTIONAL, PREFERRED, REQUIRED (did you mean 'PREFERRED'?)"),
    ("SINGULARITY_IMAGE_RESTRICTIONS", "cvmfs,remot",
     "'cvmfs,remot': unknown restriction 'remot' (did you mean 'remote'?)"),
    ("GLIDEIN_SINGULARITY_BINDPATH_DEFAULT", "/a:/b:rw:x",
     "'/a:/b:rw:x': bind '/a:/b:rw:x': expected src[:dst[:opts]]"),
    ("GLIDEIN_SINGULARITY_BINDPATH", "relative:/x", "'relative:/x': bind 'relative:/x': the "
     "source must be an absolute path"),
    ("SINGULARITY_IMAGES_DICT", "rhel9:/a,:/b",
     "'rhel9:/a,:/b': images dict item ':/b' has no platform key"),
])
def test_glideinwms_values_are_checked_against_what_glideinwms_accepts(
        tmp_path: Path, key: str, value: str, expected: str) -> None:
    proc = check(tmp_path, f"version: 1\nentries:\n  CE:\n    attributes:\n"
                           f"      {key}: {json.dumps(value)}\n")
    [line] = problems(proc)
    assert line.startswith(f":5:7: entries.CE.attributes.{key}: {expected}"), line


@pytest.mark.parametrize(("key", "value"), [
    ("GLIDEIN_SINGULARITY_REQUIRE", " required "), ("GLIDEIN_SINGULARITY_REQUIRE", ""),
    ("GLIDEIN_Singularity_Use", "disable_gwms"), ("SINGULARITY_IMAGE_RESTRICTIONS", "CVMFS, test"),
    ("GLIDEIN_SINGULARITY_BINDPATH", "/a, /b:/c:ro,"),
    ("SINGULARITY_IMAGES_DICT", "rhel9:docker://x/y:1,default:/cvmfs/i"),
])
def test_values_glideinwms_accepts_pass(tmp_path: Path, key: str, value: str) -> None:
    proc = check(tmp_path,
                 f"version: 1\ndefaults:\n  attributes:\n    {key}: {json.dumps(value)}\n")
    assert (proc.returncode, proc.stderr) == (0, "")


def test_an_entry_whose_own_modes_cannot_meet_is_reported(tmp_path: Path) -> None:
    proc = check(tmp_path, "version: 1\nentries:\n  CE:\n    attributes:\n"
                           "      GLIDEIN_Singularity_Use: NEVER\n"
                           "      GLIDEIN_SINGULARITY_REQUIRE: REQUIRED\n")
    [line] = problems(proc)
    assert line.startswith(":6:7: entries.CE.attributes.GLIDEIN_SINGULARITY_REQUIRE: Frontend "
                           "GLIDEIN_Singularity_Use=NEVER is incompatible with Factory "
                           "GLIDEIN_SINGULARITY_REQUIRE=REQUIRED: FAIL"), line


@pytest.mark.parametrize(("text", "expected"), [
    ("", ": empty: no settings in it (a factory config starts with 'version: 1')"),
    ("# only a comment\n", ": empty: no settings in it"),
    ("entries: {CE: {}}\n", ":1:1: version: missing: add 'version: 1' at the top of the file"),
    ("version: 1\ndefaults: {budget: 3}\n",
     ":2:12: defaults.budget: unknown key (did you mean 'budget_seconds'?)"),
    ("version: 1\nentries:\n  CE:\n    plugins: {enable: [osgg]}\n",
     ":4:24: entries.CE.plugins.enable: unknown plugin 'osgg' (did you mean 'osg'?)"),
], ids=["empty", "comment-only", "no-version", "misspelt-section-key", "misspelt-plugin"])
def test_structural_mistakes_are_reported(tmp_path: Path, text: str, expected: str) -> None:
    [line] = problems(check(tmp_path, text))
    assert line.startswith(expected), line


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    proc = check(tmp_path, "version: 1\ndefaults:\n  attributes:\n"
                           "    GLIDEIN_SINGULARITY_REQUIRE: MANDATORY\n"
                           "  settings:\n    probe: {timout: 1, cache_ttl: forever}\n"
                           "entries:\n  CE:\n    budget_seconds: -1\n"
                           "    plugins: {optional: [cms, nosuch]}\n")
    lines = problems(proc)
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [":4:5", "defaults.attributes.GLIDEIN_SINGULARITY_REQUIRE"],
        [":6:13", "defaults.settings.probe.timout"],
        [":6:24", "defaults.settings.probe.cache_ttl"],
        [":9:5", "entries.CE.budget_seconds"],
        [":10:31", "entries.CE.plugins.optional"]]  # `optional` is a list of plugin names


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\ndefaults:\n  settings:\n    probe: {x: " + "[" * 500 + "]" * 500 + "}\n",
     f"too deep: collections nested more than {MAX_DEPTH} levels"),
    ("version: 1\ndefaults:\n  settings:\n    probe:\n"
     + "".join("      " + "  " * level + f"k{level}:\n" for level in range(500)),
     f"too deep: collections nested more than {MAX_DEPTH} levels"),
    ("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9)),
     "too large: more than 1000000 values once its aliases are expanded"),
], ids=["500-flow-levels", "500-block-levels", "billion-laughs"])
def test_structural_limits_are_clear_errors_not_crashes(tmp_path: Path, text: str,
                                                        expected: str) -> None:
    [line] = problems(check(tmp_path, text))
    assert re.match(r":\d+:\d+: ", line) and line.endswith(expected), line
    with pytest.raises(factory_config.ConfigError, match=re.escape(expected)):
        factory_config.load([tmp_path / "entry.yaml"])


def test_a_misspelt_entry_name_is_a_usage_error_with_a_suggestion(tmp_path: Path) -> None:
    for command in (["factory-xml"], ["config", "show"], ["plugins"]):
        proc = run_cli([*command, "--config", str(SITE), "--entry", "CE_ON"], tmp_path)
        assert (proc.returncode, proc.stdout) == (2, ""), command
        assert proc.stderr == ("glidein-plugins: error: --entry 'CE_ON' is not an entry of the "
                               "config (did you mean 'CE_ONE'?)\n")
    proc = run_cli(["factory-xml", "--config", str(SITE), "--entry", "UNRELATED"], tmp_path)
    assert proc.returncode == 0 and "<attr" in proc.stdout
    assert "no section for entry 'UNRELATED' in the config: its defaults apply" in proc.stderr


def test_the_shipped_configs_pass_and_a_wrong_one_stops_pack(tmp_path: Path) -> None:
    assert operator_commands.config_problems(ROOT / "factory_configs") == []
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "site.yaml").write_text(
        "version: 1\ndefaults:\n  settings:\n    probe: {timout: 5}\n")
    proc = run_cli(["pack", "--factory-configs", str(tmp_path / "configs"), "--output",
                    str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 1
    assert "site.yaml:4:13: defaults.settings.probe.timout: unknown setting" in proc.stderr
    assert "nothing written" in proc.stderr and not (tmp_path / "out").exists()


# -- the same checks at setup on the node ----------------------------------------------------


def setup(work_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(["setup", "glidein_config", "entry", *args], work_dir,
                   bare_node_env(work_dir.parent / "bare-node"))


def test_a_wrong_value_fails_the_setup_before_any_probe_naming_file_key_value(
        tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("version: 1\ndefaults:\n  attributes:\n"
                      "    GLIDEIN_SINGULARITY_REQUIRE: MANDATORY\n"
                      "  settings:\n    launch: {failure_delay: soon}\n")
    work = make_work_dir(tmp_path / "work")
    result = glidein_result(setup(work, "--config", str(config)), work)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert f"{config}:6: settings.launch.failure_delay: expected a number of seconds" \
           in result.detail and "got 'soon'" in result.detail
    assert f"{config}:4:5: attributes.GLIDEIN_SINGULARITY_REQUIRE: 'MANDATORY'" in result.detail
    assert "runtime/" not in result.stdout  # no phase ran


@pytest.mark.parametrize(("content", "expected"), [
    (None, "glidein_config does not exist"),
    (b"", "glidein_config is empty"),
    (b"\n\n# comments only\n", "glidein_config is empty"),
    (b"garbage\n\xff\xfe\n9lives x\n", "glidein_config holds no 'KEY value' line "
                                           "(3 malformed)"),
    (b"GLIDEIN_Name x\n", "glidein_config lacks GLIDEIN_Entry_Name, CONDOR_VARS_FILE, which "
                          "glidein_startup.sh always writes"),
])
def test_a_broken_glidein_config_is_one_clear_failure_before_any_probe(
        tmp_path: Path, content: bytes | None, expected: str) -> None:
    work = make_work_dir(tmp_path / "work")
    if content is None:
        (work / "glidein_config").unlink()
    else:
        (work / "glidein_config").write_bytes(content)
    result = glidein_result(setup(work), work)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert result.detail == f"{work / 'glidein_config'}: {expected}" \
        or result.detail.startswith(f"{work / 'glidein_config'}: {expected}"), result.detail
    assert [line for line in result.stdout.splitlines() if "[error]" in line] == [
        f"glidein_plugins: [error] config/-: {result.detail}"]


def test_malformed_lines_are_counted_and_the_first_few_shown(tmp_path: Path) -> None:
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "NEVER"})
    with open(work / "glidein_config", "a") as config:
        config.write("".join(f"junk{number}\n" for number in range(10)))
    result = glidein_result(setup(work), work)
    assert result.exit_code == 0, result.stdout
    [warning] = [line for line in result.stdout.splitlines() if "glidein_config:" in line
                 and "[warning]" in line]
    assert "10 lines not understood: " in warning and warning.endswith("; and 7 more")
    assert warning.count("skipped malformed line") == 3


def test_periodic_with_a_missing_glidein_config_says_so_not_internal_error(
        tmp_path: Path) -> None:
    proc = run_cli(["periodic", str(tmp_path / "nowhere" / "glidein_config")], tmp_path)
    assert proc.returncode == 0
    assert (f'GLIDEIN_PLUGINS_PERIODIC_REASON = "{tmp_path}/nowhere/glidein_config: '
            'glidein_config does not exist"') in proc.stdout
    assert "internal error" not in proc.stdout + proc.stderr


# -- the settings declared once: reference, config show ------------------------------------


def test_the_settings_reference_is_generated_and_up_to_date() -> None:
    generated = config_show.reference(
        registry.builtin_declarations(),
        {key: accepts for key, (_, accepts) in ATTRIBUTE_RULES.items()})
    assert (ROOT / "docs" / "settings.md").read_text() == generated, \
        "run: glidein-plugins config reference > docs/settings.md"
    proc = run_cli(["config", "reference"], ROOT)
    assert (proc.returncode, proc.stdout) == (0, generated)


def test_every_builtin_declares_every_setting_it_reads_with_a_doc() -> None:
    for plugin, declared in registry.builtin_declarations().items():
        for option in declared.options.values():
            assert option.doc and option.expected != "any value", (plugin, option.name)
            assert option.check(option.default) == "" or option.default is None, \
                (plugin, option.name)


def test_config_show_says_where_each_value_came_from(tmp_path: Path) -> None:
    proc = run_cli(["config", "show", "--json", "--config", str(SITE), "--entry", "CE_ONE",
                    "--set", "probe.sif_image=/cvmfs/x.sif", "--set", "MY_FLAG=on"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = {item["key"]: (item["value"], item["source"]) for item in json.loads(proc.stdout)}
    entry_line = SITE.read_text().splitlines().index("  CE_ONE:") + 1
    assert shown["budget_seconds"] == (30.0, f"{SITE}:{entry_line + 1}:5 (entries.CE_ONE)")
    assert shown["settings.probe.timeout"][1].endswith(" (entries.CE_ONE)")
    assert shown["settings.probe.test_image"] == ("/cvmfs/img/el9", f"{SITE}:12:7 (defaults)")
    assert shown["settings.probe.cache_ttl"] == (3600.0, "default")
    assert shown["settings.probe.sif_image"] == ("/cvmfs/x.sif", "--set")
    assert shown["attributes.MY_FLAG"] == ("on", "--set")
    assert shown["attributes.SITE_FLAG"] == ("yes", f"{SITE}:9:5 (defaults)")
    assert shown["plugins.required"][0] == "mode"
    wrong = run_cli(["config", "show", "--entry", "E", "--set", "probe.timeout=never"],
                    tmp_path)
    assert wrong.returncode == 1
    assert "--set: settings.probe.timeout: expected a positive number of seconds, got 'never'" \
        in wrong.stderr


# -- the command line -------------------------------------------------------------------------


COMMANDS = ["setup", "periodic", "wrap", "run", "plugins", "check-config", "config", "hooks",
            "pack", "factory-xml"]


def test_help_lists_every_command_with_a_description_examples_and_exit_codes() -> None:
    grammar = parser.build_parser()
    text = grammar.format_help()
    for name in COMMANDS:
        assert re.search(rf"^    {name}\s", text, re.M) or f"    {name}\n" in text, name
    assert "exit status:" in text and "2  usage error" in text
    sub = next(action for action in grammar._actions if action.dest == "command")
    for name in COMMANDS:
        command = sub.choices[name]  # type: ignore[attr-defined]
        help_text = command.format_help()
        assert command.description and "examples:\n  glidein-plugins" in help_text, name
        assert "exit status:" in help_text, name
    for name in ("run", "check-config"):  # quiet by default, -v says more
        assert "-v, --verbose" in sub.choices[name].format_help()  # type: ignore[attr-defined]
    config = next(action for action in sub.choices["config"]._actions  # type: ignore[attr-defined]
                  if action.dest == "action")
    for name in ("show", "reference"):
        assert "examples:\n  glidein-plugins config" in config.choices[name].format_help()
    assert "FILE" in sub.choices["check-config"].format_usage()  # type: ignore[attr-defined]
    assert "--entry" in sub.choices["plugins"].format_usage()  # type: ignore[attr-defined]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli(["run", "--no-such-option"], tmp_path).returncode == 2
    assert run_cli(["check-config"], tmp_path).returncode == 2


@pytest.mark.parametrize("how", [
    ["-m", "glidein_plugins"],  # as the hooks run it
    ["-c", "import sys; from glidein_plugins.cli import main; sys.exit(main())"],  # the script
], ids=["module", "console-script"])
def test_output_closed_early_is_not_an_error(tmp_path: Path, how: list[str]) -> None:
    """``glidein-plugins hooks | head -0``: the reader is gone before the first write."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, *how, "hooks"], stdout=write,
                              stderr=subprocess.PIPE, env=environ, cwd=tmp_path, timeout=60,
                              check=False)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, b"")


def dry_run(tmp_path: Path, *args: str, columns: str = "") -> subprocess.CompletedProcess:
    env = bare_node_env(tmp_path / "node")
    if columns:
        env["COLUMNS"] = columns
    proc = run_cli(["run", *args], tmp_path, env)
    assert "Traceback" not in proc.stderr
    return proc


def test_tables_fit_the_terminal_and_nothing_is_lost(tmp_path: Path) -> None:
    wide = dry_run(tmp_path, "-v").stdout
    narrow = dry_run(tmp_path, "-v", columns="72").stdout
    table_lines = [line for line in narrow.splitlines() if line.startswith("  ")]
    assert table_lines and max(map(len, table_lines)) <= 72
    assert max(len(line) for line in wide.splitlines() if line.startswith("  ")) > 72
    # every character is still there, wrapped (the runs' work dirs differ, not their length)
    assert len("".join(narrow.split())) == len("".join(wide.split()))


def test_run_is_quiet_by_default_and_says_more_with_v(tmp_path: Path) -> None:
    quiet, verbose = dry_run(tmp_path).stdout, dry_run(tmp_path, "-v").stdout
    trace = report_table(quiet, "Decision trace")
    assert trace and {row[2] for row in trace} <= {"warning", "error"}
    assert {row[2] for row in report_table(verbose, "Decision trace")} >= {"info", "warning"}
    assert re.search(r"^Decision trace \(warnings and errors; \d+ decisions? more with -v\)$",
                     quiet, re.M)
    assert "/hadoop" not in quiet  # absent default binds are optional by design


def test_json_numbers_are_numbers(tmp_path: Path) -> None:
    report = json.loads(dry_run(tmp_path, "--json").stdout)
    assert isinstance(report["metrics"]["attributes"], int)
    assert isinstance(report["exit_code"], int)


def test_plural() -> None:
    from glidein_plugins.cli.report_text import plural  # noqa: PLC0415

    assert [plural(n, "candidate") for n in (0, 1, 2)] == [
        "0 candidates", "1 candidate", "2 candidates"]
    assert plural(1, "entry", "entries") == "1 entry"


def test_one_name_per_attribute_in_tables_the_others_with_v() -> None:
    from glidein_plugins.cli.report_text import alias_groups  # noqa: PLC0415
    from glidein_plugins.container.runtime import PREFIXES  # noqa: PLC0415
    from glidein_plugins.spec.results import Attribute  # noqa: PLC0415

    published = [Attribute(prefix + suffix, value, plugin="singularity")
                 for suffix, value in (("PATH", "/usr/bin/apptainer"), ("VERSION", "1.3.4"))
                 for prefix in PREFIXES]
    published.append(Attribute("OSG_SINGULARITY_PATH", "/usr/bin/apptainer", plugin="osg"))
    groups = alias_groups(published)
    assert [(attr.name, aliases) for attr, aliases in groups] == [
        ("SINGULARITY_PATH", [p + "PATH" for p in PREFIXES[1:]]),
        ("SINGULARITY_VERSION", [p + "VERSION" for p in PREFIXES[1:]]),
        ("OSG_SINGULARITY_PATH", [])]


VO_PLUGIN = '''
from glidein_plugins import Attribute, hookimpl
from glidein_plugins.spec import checks
from glidein_plugins.config.options import Option, Options

SETTINGS = Options(
    Option("profile", "default", checks.text, "the profile advertised as MYVO_PROFILE"),
    Option("timeout", 10.0, checks.seconds, "seconds for each look at the repository"),
)


@hookimpl
def glidein_attributes_contribute(context):
    settings = checks.plugin_settings(context, "myvo", SETTINGS)
    return [Attribute.string("MYVO_PROFILE", settings["profile"])]
'''


def test_a_vo_plugin_declares_its_settings_as_a_builtin_does(tmp_path: Path) -> None:
    """A site drop-in's declaration is collected through the plugin manager: check-config,
    config show and the setup all check against it; a plugin declaring nothing is warned of."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)
    (plugins / "myvo.py").write_text(VO_PLUGIN)
    (plugins / "bare.py").write_text("def glidein_attributes_contribute(context):\n"
                                     "    return []\n")
    config = tmp_path / "myvo.yaml"
    config.write_text(f"version: 1\nentries:\n  TEST_ENTRY:\n    plugins:\n"
                      f"      directories: [{plugins}]\n    settings:\n"
                      "      myvo: {profile: gpu, timout: 5}\n      bare: {x: 1}\n")
    proc = run_cli(["check-config", str(config)], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{config}:7:28: entries.TEST_ENTRY.settings.myvo.timout: unknown setting (expected "
        "one of: profile, timeout) (did you mean 'timeout'?)",
        f"warning: {config}:8:7: entries.TEST_ENTRY.settings.bare: plugin 'bare' declares no "
        "settings (SETTINGS = Options(...)): they are not checked",
        "1 problem found"]
    shown = run_cli(["config", "show", "--json", "--config", str(config), "--entry",
                     "TEST_ENTRY"], tmp_path)
    values = {item["key"]: item["value"] for item in json.loads(shown.stdout)}
    assert (values["settings.myvo.profile"], values["settings.myvo.timeout"]) == ("gpu", 10.0)
    work = make_work_dir(tmp_path / "work")
    result = glidein_result(setup(work, "--config", str(config)), work)
    assert (result.exit_code, result.failure) == (1, "Config")
    assert result.detail.startswith(f"myvo (site): {config}:7: settings.myvo.timout: unknown "
                                    "setting"), result.detail
    config.write_text(config.read_text().replace(", timout: 5", ""))
    assert run_cli(["check-config", str(config)], tmp_path).returncode == 0
    result = glidein_result(setup(work, "--config", str(config)), work)
    assert result.exit_code == 0, result.detail
    assert result.config["MYVO_PROFILE"] == "gpu"


def test_an_attribute_glidein_config_overrides_is_not_held_against_the_node(
        tmp_path: Path) -> None:
    """The setup checks the ``attributes`` in effect: a value glidein_config replaces is not
    used (check-config still reports it, before deploy)."""
    config = tmp_path / "site.yaml"
    config.write_text("version: 1\ndefaults:\n  attributes:\n"
                      "    GLIDEIN_SINGULARITY_REQUIRE: MANDATORY\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_SINGULARITY_REQUIRE": "NEVER"})
    result = glidein_result(setup(work, "--config", str(config)), work)
    assert result.exit_code == 0, result.detail
    assert run_cli(["check-config", str(config)], tmp_path).returncode == 1


def test_a_dry_run_with_a_runtime_shows_each_attribute_once(tmp_path: Path,
                                                            fake_cvmfs) -> None:
    fake_cvmfs.bin.install_runtime("apptainer")
    env = {**fake_cvmfs.env(TMPDIR=str(tmp_path)), "COLUMNS": "100"}
    quiet = run_cli(["run"], tmp_path, env).stdout
    names = [row[0] for row in report_table(quiet, "Attributes")]
    assert "SINGULARITY_PATH" in names and "GWMS_SINGULARITY_PATH" not in names, quiet
    assert re.search(r"^  \(and \d+ other names for the same values: -v lists them\)$", quiet,
                     re.M)
    assert max(len(line) for line in quiet.splitlines() if line.startswith("  ")) <= 100
    verbose = run_cli(["run", "-v"], tmp_path, env).stdout
    rows = {row[0]: row for row in report_table(verbose, "Attributes")}
    assert "GWMS_SINGULARITY_PATH" in " ".join(rows["SINGULARITY_PATH"][4:])
    report = json.loads(run_cli(["run", "--json"], tmp_path, env).stdout)
    assert {"SINGULARITY_PATH", "GWMS_SINGULARITY_PATH"} <= {a["name"] for a in
                                                              report["attributes"]}


def test_an_optional_plugin_that_is_not_installed_is_a_warning_not_an_error(
        tmp_path: Path) -> None:
    """``optional``: the entry runs without it, so check-config (and pack) accept it; a plugin
    an entry enables without marking it optional must be there."""
    proc = check(tmp_path, "version: 1\nentries:\n  E1:\n    plugins:\n"
                           "      enable: [nowhere]\n      optional: [nowhere]\n")
    assert proc.returncode == 0, proc.stderr
    assert "entries.E1.plugins.optional: optional plugin 'nowhere' is not installed here" in \
        proc.stderr
    proc = check(tmp_path, "version: 1\nentries:\n  E1:\n    plugins:\n      enable: [nowhere]\n"
                           "  E2:\n    plugins: {optional: [nowhere]}\n")
    known = ("(known: atlas, binds, cms, cvmfs, discovery, gpus, images, launch, mode, osg, "
             "probe, singularity)")
    assert problems(proc) == [
        f":5:16: entries.E1.plugins.enable: unknown plugin 'nowhere' {known}",
        f":7:26: entries.E2.plugins.optional: unknown plugin 'nowhere' {known}"]
