"""ClassAd names and values, checked against HTCondor's own parsers: classad2 for literals and
expressions, htcondor2 for the startd config lines condor_startup.sh writes, bash for its eval."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _proto_support import CHILD_TIMEOUT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glidein_plugins.protocol.htcondor import classad, reserved

FIXTURE_SETTINGS = settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
CONDOR_PARAM = Path(__file__).with_name("_proto_condor_param.py")

STRINGS = ["", "x", "with spaces", "  padded  ", "a $ b", "a$b", "$$", "100%", "x # not a comment",
           "@=end", "tab\there", "café ☃ 𝄞", "line\u2028sep\x85nel", "{1, 2}", "[a = 1]",
           "use ROLE:Personal", "include : /etc/passwd", "a;b&c|d`e`<f>", "/cvmfs/x:/y,z"]
EXPRESSIONS = {  # accepted C value -> what HTCondor evaluates it to
    "True": True, "false": False, '"a" == "b"': False, '{1, "x", {}}': [1, "x", []],
    '"x" =?= "x"': True, "2 * (3 + 4)": 14, 'strcat("a", "b")': "ab", '  "padded"  ': "padded",
    'regexp("^a[b]+c$", "abbc")': True, "[a = 1; b = a + 1].b": 2, '"tab\there"': "tab\there",
}


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["HAS_SINGULARITY", "_x", "GLIDEIN_Site", "a1", "MyGPUs",
                                  "GPUsX", "HasSingularityX", "Trueish"])
def test_valid_names(name: str) -> None:
    assert classad.check_name(name) == name


@pytest.mark.parametrize("name", [
    "", "1a", "a-b", "a b", "a.b", "é", "a\n",  # not identifiers
    "true", "FALSE", "Undefined", "error", "is", "isnt", "parent", "MY", "target",  # keywords
    "HasSingularity", "HASSINGULARITY", "singularityversion", "HasSIF", "GPUs", "gpus",
    "TotalGPUs", "DetectedGPUs", "AssignedGPUs", "AvailableGPUs", "GPUs_Capability",
    "gpus_devicename",  # the startd's own
])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError) as info:
        classad.check_name(name)
    assert repr(name) in str(info.value)


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize(("value", "type_", "why"), [
    ("a\nINJECTED=1", "S", "newline"), ("a\rb", "C", "newline"), ("a\0b", "I", "control"),
    ("esc\x1b[0m", "S", "control"), ("del\x7f", "S", "control"),
    ("$(FULL_HOSTNAME)", "S", "macro"), ("$ENV(HOME)", "C", "macro"),
    ("$$(Memory)", "S", "macro"), ("$RANDOM_INTEGER(1,9)", "I", "macro"),
    ("x\\", "C", "continues the line"), ("x\\ \t", "C", "continues the line"),
    ("it's", "S", "eval"), ("'quoted'", "C", "eval"),
    ('say "hi"', "S", 'cannot hold "'), ("back\\slash", "S", "cannot hold"),
    ("1.5", "I", "integer"), ("", "I", "integer"), (" 1", "I", "integer"), ("+1", "I", "integer"),
    ("08", "I", "integer"), ("9223372036854775808", "I", "integer"),
    ("-9223372036854775809", "I", "integer"),
    ("", "C", "empty"), ("  ", "C", "empty"), ("(1 + 2", "C", "unclosed"),
    ("f(x]", "C", "unbalanced"), ('"open', "C", "unterminated"),
    ("x", "B", "unknown GlideinWMS type"),
    ("x" * 3801, "S", "long"),
])
def test_rejected_values(value: str, type_: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        classad.check_value(value, type_)


def test_non_string_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        classad.check_value(1, "I")  # type: ignore[arg-type]


def test_accepted_strings_are_exact_classad_strings(classad2) -> None:
    for value in STRINGS:
        assert classad.check_value(value, "S") == value
        assert classad2.ExprTree(f'"{value}"').eval() == value


@FIXTURE_SETTINGS
@given(value=st.text())
def test_every_accepted_string_is_an_exact_classad_string(classad2, value: str) -> None:
    try:
        classad.check_value(value, "S")
    except ValueError:
        return
    assert classad2.ExprTree(f'"{value}"').eval() == value


@FIXTURE_SETTINGS
@given(number=st.integers(-(2**63), 2**63 - 1))
def test_every_64_bit_integer_is_accepted_and_exact(classad2, number: int) -> None:
    assert classad2.ExprTree(classad.check_value(str(number), "I")).eval() == number


@pytest.mark.parametrize("value", ["99999999999999999999", "08"])
def test_rejected_integers_are_ones_htcondor_misreads(classad2, value: str) -> None:
    with pytest.raises(ValueError):
        classad.check_value(value, "I")
    try:
        misread = classad2.ExprTree(value).eval() != int(value)
    except Exception:  # classad2's parse error
        misread = True
    assert misread


@pytest.mark.parametrize(("value", "expected"), list(EXPRESSIONS.items()))
def test_accepted_expressions_parse(classad2, value: str, expected: object) -> None:
    assert classad.check_value(value, "C") == value
    assert classad2.ExprTree(value).eval() == expected


@FIXTURE_SETTINGS
@given(text=st.text())
def test_quote_round_trips_any_text(classad2, text: str) -> None:
    if any((char < " " and char != "\t") or char == "\x7f" for char in text):
        with pytest.raises(ValueError, match="control"):
            classad.quote(text)
        return
    assert classad2.ExprTree(classad.quote(text)).eval() == text


def test_boolean(classad2) -> None:
    assert [classad2.ExprTree(classad.boolean(flag)).eval() for flag in (True, False)] == [
        True, False]


# --------------------------------------------------------------------------- the consumers

def fuzz_strings(count: int) -> list[str]:
    """Short strings of characters that mean something to HTCondor's config or to bash."""
    pool = [*" \t$()#@=:;{}[]\\\"'%!&|<>~*?`,.-+/_ab", "é", "☃", "𝄞", "\u2028", "\x85"]
    rng = random.Random(4096)
    return ["".join(rng.choice(pool) for _ in range(rng.randrange(12))) for _ in range(count)]


FUZZ = fuzz_strings(400)


def accepted(values: list[str], type_: str) -> list[str]:
    def ok(value: str) -> bool:
        try:
            classad.check_value(value, type_)
        except ValueError:
            return False
        return True
    return [value for value in values if ok(value)]


def config_value(value: str, type_: str) -> str:
    """The right-hand side of condor_startup.sh's ``NAME=value`` line: a S value quoted."""
    return f'"{value}"' if type_ == "S" else value


def startd_config(tmp_path: Path, attributes: list[tuple[str, str]]) -> dict:
    """Write ``NAME=value`` lines as condor_startup.sh does, each followed by a sentinel line,
    and return HTCondor's reading of every name and sentinel."""
    lines, names = [], []
    for i, (value, type_) in enumerate(attributes):
        lines += [f"V{i}={config_value(value, type_)}", f"AFTER{i}=ok"]
        names += [f"V{i}", f"AFTER{i}"]
    path = tmp_path / "condor_config"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("_CONDOR_")}
    env["CONDOR_CONFIG"] = str(path)
    result = subprocess.run([sys.executable, str(CONDOR_PARAM), *names], env=env,
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_accepted_values_stay_one_startd_config_line(htcondor2, classad2, tmp_path: Path) -> None:
    strings = accepted(STRINGS + FUZZ, "S")
    expressions = list(EXPRESSIONS) + accepted(FUZZ, "C")
    attributes = [(value, "S") for value in strings] + [(value, "C") for value in expressions]
    attributes += [(str(n), "I") for n in (0, -1, 2**63 - 1, -(2**63))]
    assert len(strings) > 100  # the fuzz did produce a fair share of accepted strings
    seen = startd_config(tmp_path, attributes)
    for i, (value, type_) in enumerate(attributes):
        assert seen[f"AFTER{i}"] == "ok", f"{value!r} swallowed the next line"
        raw = seen[f"V{i}"]  # HTCondor trims blanks and tabs around a value, nothing else
        assert raw == config_value(value, type_).strip(" \t"), f"{value!r} altered"
        if type_ == "S":
            assert classad2.ExprTree(raw).eval() == value


@pytest.mark.parametrize(("value", "type_"), [
    ("x\\", "C"),  # continues onto the next line
    ("x\\  ", "C"),  # so does a backslash before trailing blanks
    ("$(AFTER0)", "S"),  # expanded: a macro
    ("$ENV(HOME)", "C"),
])
def test_rejected_values_are_ones_htcondor_misreads(htcondor2, tmp_path: Path, value: str,
                                                    type_: str) -> None:
    with pytest.raises(ValueError):
        classad.check_value(value, type_)
    seen = startd_config(tmp_path, [(value, type_)])
    assert seen["V0"] != config_value(value, type_).strip(" \t") or seen["AFTER0"] != "ok"


BASH_EVAL = """for value in "$@"; do eval "X='$value'"; printf '%s\\0' "$X"; done"""


def bash_eval(values: list[str]) -> subprocess.CompletedProcess[bytes]:
    """What condor_startup.sh's ``eval "$var_name='$var_val'"`` makes of each value."""
    return subprocess.run(["bash", "-c", BASH_EVAL, "bash", *values], capture_output=True,
                          timeout=CHILD_TIMEOUT)


def test_accepted_values_survive_condor_startup_eval() -> None:
    values = accepted(STRINGS + FUZZ, "S") + accepted(FUZZ, "C")
    values += list(EXPRESSIONS)
    result = bash_eval(values)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split("\0")[:-1] == values


def test_a_quote_breaks_condor_startup_eval() -> None:
    with pytest.raises(ValueError):
        classad.check_value("x'; echo injected; '", "S")
    assert b"injected" in bash_eval(["x'; echo injected; '"]).stdout


# --------------------------------------------------------------------------- reserved names
# A plugin's attribute becomes a startd config line, a glidein_config key and a shell variable
# of condor_startup.sh: names HTCondor, GlideinWMS or that script own are refused (reserved.py).

@pytest.mark.parametrize(("name", "rule"), [
    ("START", "an HTCondor startd policy expression"),
    ("Start", "an HTCondor startd policy expression"),  # HTCondor ignores case
    ("WANT_SUSPEND", "an HTCondor startd policy expression"),
    ("SEC_DEFAULT_AUTHENTICATION", "an HTCondor security setting"),
    ("allow_write", "an HTCondor security setting"),
    ("DENY_READ", "an HTCondor security setting"),
    ("USER_JOB_WRAPPER", "an HTCondor setting of how jobs run"),
    ("JOB_RENICE_INCREMENT", "an HTCondor setting of how jobs run"),
    ("SINGULARITY_BIND_EXPR", "an HTCondor setting of how jobs run"),
    ("STARTD_ATTRS", "an HTCondor daemon's setting"),
    ("STARTER_JOB_ENVIRONMENT", "an HTCondor daemon's setting"),
    ("DAEMON_LIST", "an HTCondor daemon's setting"),
    ("MASTER_NAME", "an HTCondor daemon's setting"),
    ("SLOT_TYPE_1", "an HTCondor setting of the slots and their resources"),
    ("SLOT1_USER", "an HTCondor security setting"),
    ("NUM_CPUS", "an HTCondor setting of the slots and their resources"),
    ("Memory", "an HTCondor setting of the slots and their resources"),
    ("CONDOR_HOST", "an HTCondor path, host or configuration file"),
    ("COLLECTOR_HOST", "an HTCondor daemon's setting"),
    ("LOCAL_CONFIG_FILE", "an HTCondor path, host or configuration file"),
    ("EXECUTE", "an HTCondor setting of how jobs run"),
    ("ENABLE_SSH_TO_JOB", "an HTCondor switch or limit"),
    ("OpSys", "a macro HTCondor defines itself"),
    ("SHUTDOWN_GRACEFUL_TIMEOUT", "an HTCondor configuration knob"),
    ("Requirements", "a machine ClassAd attribute the startd computes"),
    ("HasDocker", "a machine ClassAd attribute the startd computes"),
    ("ADD_CONFIG_LINE_SOURCE", "a glidein_config key GlideinWMS relies on"),
    ("CONDOR_VARS_FILE", "a glidein_config key GlideinWMS relies on"),
    ("ERROR_GEN_PATH", "a glidein_config key GlideinWMS relies on"),
    ("GLIDEIN_WORK_DIR", "a glidein_config key GlideinWMS relies on"),
    ("GLIDEIN_Start", "a glidein_config key GlideinWMS relies on"),  # the entry's START
    ("GLIDEIN_WRAPPER_EXEC", "a glidein_config key GlideinWMS relies on"),
    ("X509_USER_PROXY", "a glidein_config key GlideinWMS relies on"),
    ("CONDOR_DIR", "an HTCondor path, host or configuration file"),
    ("PATH", "a variable of the shell or the dynamic loader"),
    ("LD_PRELOAD", "a variable of the shell or the dynamic loader"),
    ("_CONDOR_START", "a variable of the shell or the dynamic loader"),
    ("error_gen", "a name without capital letters"),  # condor_startup.sh's own variable
])
def test_names_htcondor_glideinwms_or_condor_startup_own_are_reserved(name: str,
                                                                      rule: str) -> None:
    assert reserved.why(name).startswith(f"{name} is reserved: {rule}")
    assert reserved.why(name).endswith("; publish another name")


@pytest.mark.parametrize("name", [
    "HAS_SINGULARITY", "GLIDEIN_Site", "GLIDEIN_PLUGINS_STATE", "SINGULARITY_PATH",
    "GWMS_SINGULARITY_STATUS", "CVMFS_cms_cern_ch_REVISION", "HAS_CVMFS_cms_cern_ch",
    "ATLAS_CONTAINER_OK", "CMS_LOCAL_SITE", "GLIDEIN_GPU_MEMORY_MB", "VO_Site", "MyGPUs",
    "Has_Feature", "GLIDEIN_ToDie_Soon",
])
def test_other_names_are_free(name: str) -> None:
    assert reserved.why(name) == ""


def test_every_knob_of_native_mode_is_reserved() -> None:
    """A plugin cannot fight the HTCondor-native launch the package configures itself."""
    from glidein_plugins.jobstart import native  # noqa: PLC0415

    assert all(reserved.why(knob) for knob in native.KNOBS)


def test_every_configuration_name_htcondor_knows_is_reserved(htcondor2) -> None:
    known = sorted(htcondor2.param)
    assert len(known) > 500
    assert [name for name in known if not reserved.why(name)] == []


def test_htcondor_reads_a_reserved_name_in_any_case_as_its_knob(htcondor2,
                                                                tmp_path: Path) -> None:
    """Why the rules ignore case: ``start=False`` in the startd config *is* START."""
    lines = {"start": "False", "Sec_Default_Authentication": "NEVER", "user_job_wrapper": "/x",
             "Condor_Host": "evil.example"}
    path = tmp_path / "condor_config"
    path.write_text("".join(f"{name}={value}\n" for name, value in lines.items()))
    env = {key: value for key, value in os.environ.items() if not key.startswith("_CONDOR_")}
    env["CONDOR_CONFIG"] = str(path)
    canonical = [name.upper() for name in lines]
    result = subprocess.run([sys.executable, str(CONDOR_PARAM), *canonical], env=env,
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict(zip(canonical, lines.values()))
    assert all(reserved.why(name) for name in lines)


def builtin_names(tmp_path: Path, fake_cvmfs) -> set[str]:
    """What the built-in plugins (VO ones included) publish on a node with a proven runtime,
    CVMFS repositories and (asked directly) NVIDIA and AMD GPUs with their libraries."""
    from conftest import glidein_result, make_work_dir, run_cli  # noqa: PLC0415

    from glidein_plugins.builtin import gpus  # noqa: PLC0415
    from glidein_plugins.config.model import EntryConfig  # noqa: PLC0415
    from glidein_plugins.protocol.glideinwms import glidein_config  # noqa: PLC0415
    from glidein_plugins.spec.context import Context, Deadline  # noqa: PLC0415
    from glidein_plugins.spec.results import Facts, GpuDevice, Library  # noqa: PLC0415

    fake_cvmfs.bin.install_runtime("apptainer")
    (fake_cvmfs.root / "cms.cern.ch").mkdir()
    config = tmp_path / "entry.yaml"
    config.write_text("version: 1\ndefaults:\n  plugins: {enable: [osg, cms, atlas]}\n"
                      "  settings: {cvmfs: {repositories: [cms.cern.ch, atlas.cern.ch]}}\n")
    work = make_work_dir(tmp_path / "work", {"GLIDEIN_Singularity_Use": "PREFERRED"})
    result = glidein_result(run_cli(["setup", "glidein_config", "entry", "--config",
                                     str(config)], work, fake_cvmfs.env()), work)
    assert result.exit_code == 0, result.stdout + result.stderr
    names = set(result.condor_vars) - {"GLIDEIN_Site"}  # make_work_dir's own line
    context = Context(EntryConfig("E"), glidein_config.parse(""), tmp_path, Deadline(10), {})
    devices = (GpuDevice("nvidia", "H100", memory_mb=80000, capability="9.0",
                         driver_version="550"), GpuDevice("amd", "MI250X", memory_mb=65000))
    libraries = (Library("cuda", "12.4"), Library("rocm", "6.0"), Library("opencl:nvidia"))
    for facts in (Facts(gpus=devices, libraries=libraries), Facts()):
        names |= {a.name for a in gpus.glidein_attributes_contribute(context, facts)}
    names |= {"CVMFS_cms_cern_ch_REVISION"}  # the fake CVMFS has no revision to read
    return names


def test_no_builtin_attribute_is_reserved_or_an_htcondor_knob(htcondor2, tmp_path: Path,
                                                              fake_cvmfs) -> None:
    names = builtin_names(tmp_path, fake_cvmfs)
    expected = {"HAS_SINGULARITY", "SINGULARITY_PATH", "GLIDEIN_PLUGINS_STATE",
                "HAS_CVMFS_cms_cern_ch", "ATLAS_CONTAINER_OK", "OSG_SINGULARITY_PATH",
                "GLIDEIN_GPU_MEMORY_MB", "HAS_GPU_REASON", "GLIDEIN_ROCM_VERSION"}
    assert expected <= names, sorted(expected - names)
    assert {name: reserved.why(name) for name in names if reserved.why(name)} == {}
    knobs = {name.lower() for name in htcondor2.param}
    assert sorted(name for name in names if name.lower() in knobs) == []
