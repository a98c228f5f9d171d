"""The images dict and platform lists (``glidein_plugins.container.images``): GlideinWMS's syntax,
checked
against GlideinWMS's own ``dict_get_val`` expression run by the real ``expr``, plus properties
(hypothesis) and the platform preference order."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from glidein_plugins.config.model import EntryConfig, Setting
from glidein_plugins.container.images import (
    ANY_ORDER,
    REMOTE_SCHEMES,
    format_dict,
    is_remote,
    node_platforms,
    parse_dict,
    parse_platforms,
    preference,
    rebase_cvmfs,
    under,
)
from glidein_plugins.errors import InputError
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.spec.context import Context, Deadline

# -- parsing and formatting ---------------------------------------------------------------------


@pytest.mark.parametrize("text, items", [
    ("", []),
    ("rhel9:/cvmfs/a/el9,rhel8:/cvmfs/a/el8",
     [("rhel9", "/cvmfs/a/el9"), ("rhel8", "/cvmfs/a/el8")]),
    ("default:docker://repo/img:tag", [("default", "docker://repo/img:tag")]),  # URI keeps ':'
    ("rhel9:/cvmfs/x/osgvo-el9:latest", [("rhel9", "/cvmfs/x/osgvo-el9:latest")]),
    ("my os:/images/with space/img.sif", [("my os", "/images/with space/img.sif")]),
    ("key 1:val1:opt1", [("key 1", "val1:opt1")]),  # GlideinWMS's test dict: options stay
    ("rhel7:,rhel6", [("rhel7", ""), ("rhel6", "")]),  # empty URI, no colon at all
    (" rhel8 : /cvmfs/b , ,rhel9:/cvmfs/c,", [("rhel8", "/cvmfs/b"), ("rhel9", "/cvmfs/c")]),
    # a repeated key takes its last URI (GlideinWMS's dict_get_val) in its first place
    ("rhel7:/a,rhel8:/b,rhel7:/c", [("rhel7", "/c"), ("rhel8", "/b")]),
    ("rhel7:/a,rhel7:", [("rhel7", "")]),  # an empty URI counts: no image for rhel7
    ("rhel6:/x,rhel6", [("rhel6", "/x")]),  # an item without ':' does not
])
def test_parse_dict(text, items):
    assert parse_dict(text) == items


@pytest.mark.parametrize("text, why", [
    ("rhel9:/a\nrhel8:/b", "newline or NUL"),
    ("rhel9:/a\r", "newline or NUL"),
    ("rhel9:/a\0", "newline or NUL"),
    ("rhel9:/a,:/b", "item ':/b' has no platform key"),
    ("  :docker://x", "item ':docker://x' has no platform key"),
])
def test_parse_dict_refuses(text, why):
    with pytest.raises(InputError) as caught:
        parse_dict(text, "glidein_config:7: SINGULARITY_IMAGES_DICT")
    assert str(caught.value).startswith("glidein_config:7: SINGULARITY_IMAGES_DICT: ")
    assert why in str(caught.value)


# dicts written the way Frontends write them: no spaces around keys (the reference would keep
# 'key6 ' as a key of its own), no regex characters in keys (its expr pattern would interpret
# them)
REFERENCE_DICTS = [
    "rhel9:/cvmfs/a/el9:latest,rhel8:/cvmfs/a/el8,default:docker://r/i:t",
    "rhel7:/first,rhel8:/b,rhel7:/second",
    "rhel7:/a,rhel7:,rhel6:/x,rhel6",
    "key 1:val1:opt1,key2:val2,key4,key5:,key2",
]


@pytest.mark.skipif(shutil.which("expr") is None, reason="needs expr (coreutils)")
@pytest.mark.parametrize("text", REFERENCE_DICTS)
def test_lookup_agrees_with_glideinwms_dict_get_val(text):
    """GlideinWMS's ``dict_get_val`` runs ``expr ",DICT," : ".*,KEY:\\([^,]*\\),.*"`` and takes
    an empty result as 'no image'; every key must give the same URI here."""
    ours = dict(parse_dict(text))
    keys = {item.partition(":")[0].strip() for item in text.split(",")}
    for key in keys:
        reference = subprocess.run(
            ["expr", f",{text},", ":", rf".*,{key}:\([^,]*\),.*"],
            capture_output=True, text=True, timeout=10).stdout.rstrip("\n")
        assert ours.get(key, "") == reference, (key, reference)


@pytest.mark.parametrize("items, text", [
    ([], ""),
    ([("rhel9", "/cvmfs/a:latest"), ("default", "docker://r/i:t")],
     "rhel9:/cvmfs/a:latest,default:docker://r/i:t"),
    ([("rhel7", ""), ("my os", "/with space")], "rhel7,my os:/with space"),
])
def test_format_dict(items, text):
    assert format_dict(items) == text
    assert parse_dict(text) == items


@pytest.mark.parametrize("item", [
    ("", "/a"), ("rh:el9", "/a"), ("rhel9,x", "/a"), (" rhel9", "/a"), ("rhel9", "/a,/b"),
    ("rhel9", "/a\n"), ("rhel9", " /a"), ("rhel\n9", "/a"),
])
def test_format_dict_refuses_what_cannot_come_back(item):
    with pytest.raises(ValueError, match="invalid"):
        format_dict([item])


DICT_CHARACTERS = st.sampled_from(list("ab9/:, .-_\t\n\r\0\x85\u2028")) | st.characters()


@given(st.text(DICT_CHARACTERS, max_size=40))
@example("rhel9:/a,:x")
@example("a:b,a:c,b")
def test_parse_dict_only_ever_raises_input_error(text):
    try:
        items = parse_dict(text)
    except InputError:
        return
    assert not any(char in text for char in "\n\r\0")
    canonical = format_dict(items)  # never raises on what parse_dict returned
    assert parse_dict(canonical) == items
    assert format_dict(parse_dict(canonical)) == canonical


KEY = st.text(st.characters(blacklist_characters=":,\n\r\0"), min_size=1, max_size=10).filter(
    lambda key: key == key.strip() and key != "")
URI = st.text(st.characters(blacklist_characters=",\n\r\0"), max_size=20).filter(
    lambda uri: uri == uri.strip())


@given(st.dictionaries(KEY, URI, max_size=6))
def test_dict_round_trip(mapping):
    items = list(mapping.items())
    assert parse_dict(format_dict(items)) == items


# -- platform lists -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, platforms", [
    (None, ["any"]), ("", ["any"]), (" , ", ["any"]), ("ANY", ["any"]),
    (" rhel9 , rhel8,rhel9", ["rhel9", "rhel8"]), ("rhel8,any", ["rhel8", "any"]),
])
def test_parse_platforms(text, platforms):
    assert parse_platforms(text) == platforms


@pytest.mark.parametrize("entry, job, expected", [
    ("any", "any", list(ANY_ORDER)),
    ("", "", ["default", "rhel9", "rhel8", "rhel7", "rhel6"]),
    ("rhel8,rhel9", "rhel9,rhel8", ["rhel9", "rhel8"]),  # the job's order, not the entry's
    ("rhel9,rhel8,rhel7", "rhel7,rhel9", ["rhel7", "rhel9"]),
    ("any", "rhel9,rhel7", ["rhel9", "rhel7"]),
    ("rhel7,rhel9", "any", ["rhel7", "rhel9"]),
    ("rhel9", "rhel7", []),
    ("rhel9,rhel8", "rhel8,any", ["rhel8", "rhel9"]),  # the job's choice, then the entry's
    ("any", "rhel8,any", ["rhel8", "default", "rhel9", "rhel7", "rhel6"]),
])
def test_preference(entry, job, expected):
    assert preference(parse_platforms(entry), parse_platforms(job)) == expected


def test_preference_is_not_glideinwms_alphabetical_intersection():
    entry, job = "rhel8,rhel9", "rhel9,rhel8"
    # list_get_intersection in singularity_lib.sh, verbatim
    reference = ",".join(sorted(set(job.split(",")).intersection(entry.split(","))))
    assert reference.split(",")[0] == "rhel8"
    assert preference(parse_platforms(entry), parse_platforms(job))[0] == "rhel9"


def _context(tmp_path: Path, config: str, attributes: dict[str, str] | None = None) -> Context:
    entry = EntryConfig("TEST_ENTRY", attributes={
        key: Setting(value, "entry.yaml:3") for key, value in (attributes or {}).items()})
    return Context(entry, glidein_config.parse(config), tmp_path, Deadline(30), {})


@pytest.mark.parametrize("config, attributes, expected", [
    ("", {}, list(ANY_ORDER)),
    ("GLIDEIN_REQUIRED_OS rhel8,rhel9\nREQUIRED_OS rhel9,rhel8\n", {}, ["rhel9", "rhel8"]),
    ("REQUIRED_OS rhel9\n", {"GLIDEIN_REQUIRED_OS": "rhel9,rhel8"}, ["rhel9"]),
    ("GLIDEIN_REQUIRED_OS rhel7\n", {"GLIDEIN_REQUIRED_OS": "rhel9"}, ["rhel7"]),  # config wins
    ("GLIDEIN_REQUIRED_OS any\nREQUIRED_OS rhel8\n", {}, ["rhel8"]),
])
def test_node_platforms(tmp_path, config, attributes, expected):
    assert node_platforms(_context(tmp_path, config, attributes)) == expected


# -- URIs and CVMFS paths -----------------------------------------------------------------------


@pytest.mark.parametrize("uri, remote", [
    ("docker://r/i:t", True), ("oras://r/i", True), ("https://h/i.sif", True),
    ("library://u/c/i", True), ("/cvmfs/x/i:latest", False), ("images/el9.sif", False),
    ("/path/with://inside", False), ("docker-daemon:img", False),
])
def test_is_remote(uri, remote):
    assert is_remote(uri) is remote


@pytest.mark.parametrize("path, root, rebased", [
    ("/cvmfs/repo/img", "/cvmfs", "/cvmfs/repo/img"),
    ("/cvmfs/repo/img", "/opt/cvmfs/", "/opt/cvmfs/repo/img"),
    ("/cvmfs", "/opt/cvmfs", "/opt/cvmfs"),
    ("/cvmfsx/repo", "/opt/cvmfs", "/cvmfsx/repo"),
    ("/data/cvmfs/img", "/opt/cvmfs", "/data/cvmfs/img"),
    ("docker://cvmfs/img", "/opt/cvmfs", "docker://cvmfs/img"),
])
def test_rebase_cvmfs(path, root, rebased):
    assert rebase_cvmfs(path, root) == rebased


@pytest.mark.parametrize("path, root, inside", [
    ("/cvmfs", "/cvmfs", True), ("/cvmfs/a", "/cvmfs/", True), ("/cvmfsa", "/cvmfs", False),
    ("/opt/cvmfs/a", "/cvmfs", False),
])
def test_under(path, root, inside):
    assert under(path, root) is inside


# -- which URI schemes are remote (SECURITY.md, threat 1) -----------------------------------------

@pytest.mark.parametrize("scheme", REMOTE_SCHEMES)
def test_the_schemes_apptainer_pulls_from_are_remote(scheme):
    assert is_remote(f"{scheme}://registry.example/vo/image:tag")


@pytest.mark.parametrize("uri", [
    # Apptainer's transports that read the node's own files or daemons
    "docker-archive:///tmp/image.tar", "oci-archive:///tmp/image.tar", "oci:///tmp/layout",
    "docker-daemon://image:tag", "instance://running",
    # schemes Apptainer does not pull from, and the known ones as Apptainer never reads them
    "file:///etc/passwd", "ftp://host/i.sif", "s3://bucket/i.sif", "ipfs://cid", "DOCKER://i",
    "Https://host/i.sif", " docker://i", "docker:/i", "docker:i",
])
def test_other_schemes_are_not_remote(uri):
    assert not is_remote(uri)


@pytest.mark.parametrize("allowed", [{"remote"}, {"remote", "cvmfs"}, {"remote", "any"}])
@pytest.mark.parametrize("uri", ["docker-archive:///tmp/image.tar", "oci-archive:///x.tar",
                                 "file:///cvmfs/x/image.sif"])
def test_remote_never_admits_an_image_from_a_local_transport(uri, allowed):
    from glidein_plugins.container.images import refusal  # noqa: PLC0415 - the one rule

    assert refusal("docker://registry.example/vo/image:tag", frozenset(allowed), "/cvmfs") == ""
    assert refusal(uri, frozenset(allowed), "/cvmfs") == (
        "neither an absolute path nor a registry URI (docker://, oras://, ...)")
