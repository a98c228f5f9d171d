"""Bind-mount lists (``glidein_plugins.container.binds``): GlideinWMS's ``src[:dst[:opts]]``
syntax, the
canonical form, and properties (hypothesis): round trip, no crash but InputError, no newline."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from glidein_plugins.container.binds import format_bind, format_list, make, masks_container, parse
from glidein_plugins.errors import InputError
from glidein_plugins.spec.results import Bind


@pytest.mark.parametrize("text, binds", [
    ("", []),
    (" , ,", []),
    ("/data", [Bind("/data")]),
    ("/data:/in", [Bind("/data", "/in")]),
    ("/data:/in:ro,/scratch::rw", [Bind("/data", "/in", "ro"), Bind("/scratch", "", "rw")]),
    ("/data:/data", [Bind("/data")]),  # a destination equal to the source is dropped
    ("/data:/data:ro", [Bind("/data", "", "ro")]),
    (" /my data/x : /in side : ro ", [Bind("/my data/x", "/in side", "ro")]),  # inner spaces
    ("//a/./b/:/c//d/", [Bind("/a/b", "/c/d")]),  # normalised
    ("/cvmfs,/etc/hosts", [Bind("/cvmfs"), Bind("/etc/hosts")]),
])
def test_parse(text, binds):
    assert parse(text) == binds


def test_parse_sets_the_origin():
    assert parse("/a,/b:/c", origin="GLIDEIN_SINGULARITY_BINDPATH") == [
        Bind("/a", origin="GLIDEIN_SINGULARITY_BINDPATH"),
        Bind("/b", "/c", origin="GLIDEIN_SINGULARITY_BINDPATH")]


@pytest.mark.parametrize("text, why", [
    ("/a,data", "bind 'data': the source must be an absolute path without '..'"),
    ("/a:in", "bind '/a:in': the destination must be an absolute path"),
    ("/a/../etc/shadow", "bind '/a/../etc/shadow': the source must be an absolute path "
                         "without '..'"),
    ("/a:/b/..", "the destination must be an absolute path without '..'"),
    ("/a:/b:rx", "bind '/a:/b:rx': option 'rx' is not one of ro, rw"),
    ("/a:/b:ro:x", "bind '/a:/b:ro:x': expected src[:dst[:opts]]"),
    (":/b", "bind ':/b': empty source"),
    ("/a/ /:/b", "bind '/a/ /:/b': the source ends with a blank component"),
    ("/a\n/b", "newline or NUL"),
    ("/a\r", "newline or NUL"),
    ("/a\0", "newline or NUL"),
])
def test_parse_refuses(text, why):
    with pytest.raises(InputError) as caught:
        parse(text, "glidein_config:4: GLIDEIN_SINGULARITY_BINDPATH (Frontend)")
    message = str(caught.value)
    assert message.startswith("glidein_config:4: GLIDEIN_SINGULARITY_BINDPATH (Frontend): ")
    assert why in message


@pytest.mark.parametrize("bind, text", [
    (Bind("/data"), "/data"),
    (Bind("/data", "/in"), "/data:/in"),
    (Bind("/data", "", "ro"), "/data:/data:ro"),
    (Bind("/data", "/data"), "/data"),
    (Bind("/my data", "/in side", "rw"), "/my data:/in side:rw"),
])
def test_format_bind(bind, text):
    assert format_bind(bind) == text
    assert parse(text) == [make(bind.source, bind.target, bind.options)]


@pytest.mark.parametrize("bind", [
    Bind("/a:b"), Bind("/a,b"), Bind("/a", "/b\n"), Bind("/a "), Bind("/a", "/b", "rx"),
])
def test_format_bind_refuses_what_a_list_cannot_carry(bind):
    with pytest.raises(ValueError, match=r"cannot be written|not one of"):
        format_bind(bind)


def test_format_list():
    binds = [Bind("/a"), Bind("/b", "/c", "ro")]
    assert format_list(binds) == "/a,/b:/c:ro"
    assert parse(format_list(binds)) == binds


@pytest.mark.parametrize("destination, masks", [
    ("/", True), ("/proc", True), ("/proc/", True), ("/sys", True), ("/dev", True),
    ("/srv", True), ("//srv/.", True), ("/srv/data", False), ("/dev/shm", False),
    ("/data", False),
])
def test_masks_container(destination, masks):
    assert masks_container(destination) is masks


# -- properties ---------------------------------------------------------------------------------

LIST_CHARACTERS = st.sampled_from(list("ab/:,. rowx\t\n\r\0\x85")) | st.characters()


@given(st.text(LIST_CHARACTERS, max_size=40))
@example("/a:/b:ro,/c::rw,/d:/d")
@example("/a/..:/b")
@example("/ /")  # normalised to '/ ', which a list cannot give back
def test_parse_only_ever_raises_input_error(text):
    try:
        binds = parse(text)
    except InputError:
        return
    assert not any(char in text for char in "\n\r\0")
    canonical = format_list(binds)  # never raises on what parse returned
    assert parse(canonical) == binds
    assert format_list(parse(canonical)) == canonical


COMPONENT = st.text(st.characters(blacklist_characters="/:,\n\r\0"), min_size=1,
                    max_size=6).filter(lambda part: part not in (".", ".."))
PATH = st.lists(COMPONENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)) \
    .filter(lambda path: path == path.strip())
BIND = st.builds(make, PATH, st.one_of(st.just(""), PATH), st.sampled_from(["", "ro", "rw"]))


@given(st.lists(BIND, max_size=5))
def test_bind_list_round_trip(binds):
    assert parse(format_list(binds)) == binds
