"""Meta-tests: every hook spec is documented, well named, in the documentation's hook reference
(in run order), tested, and has a runner policy, so that specs, docs, tests and the runner
cannot drift apart."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from conftest import docs_hooks

from glidein_plugins.engine import manager
from glidein_plugins.spec import hookspecs

TESTS = Path(__file__).resolve().parent
SPECS = {name: function for name, function in vars(hookspecs).items()
         if inspect.isfunction(function) and hasattr(function, f"{hookspecs.PROJECT}_spec")}
# what a hook does, as a verb; a new hook with a new verb is added here on purpose
VERBS = {"negotiate", "discover", "probe", "detect", "contribute", "select", "validate", "launch"}


def is_firstresult(name: str) -> bool:
    return bool(getattr(SPECS[name], f"{hookspecs.PROJECT}_spec")["firstresult"])


def docstring(name: str) -> str:
    return " ".join((inspect.getdoc(SPECS[name]) or "").split())


def test_there_are_specs():
    assert len(SPECS) >= 10
    assert manager.known_hooks() == list(SPECS)  # what the misspelling hint suggests


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_documented(name):
    text = docstring(name)
    assert text, f"{name} has no docstring"
    arguments = list(inspect.signature(SPECS[name]).parameters)
    assert arguments[:2] == ["context", "facts"], f"{name}: (context, facts, ...) expected"
    for argument in arguments[2:]:
        assert f":param {argument}:" in text, f"{name}: no ':param {argument}:'"
    assert ":return:" in text, f"{name}: no ':return:'"
    # the stock sentences say how many plugins are asked
    if is_firstresult(name):
        assert "Stops at first non-None result (``firstresult``)." in text, name
    else:
        assert "All plugins are asked" in text, name


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_named_glidein_phase_verb(name):
    match = re.fullmatch(r"glidein_([a-z]+)_([a-z]+)", name)
    assert match, f"{name}: expected glidein_<phase>_<verb>"
    assert match.group(2) in VERBS, f"{name}: {match.group(2)!r} is not one of the hook verbs"


def hook_reference() -> str:
    """The documentation site's hook reference page, as tools/docs_hooks.py generates it."""
    module = docs_hooks()
    page: str = module.pages(set())[module.HOOK_REFERENCE]
    return page


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_in_the_docs_hook_reference(name):
    assert name in hook_reference(), f"the hook reference page does not name {name}"


def test_docs_hook_reference_follows_the_run_order():
    headings = re.findall(r"^#+\s*(glidein_\w+)\s*$", hook_reference(), re.MULTILINE)
    assert headings == list(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_spec_is_exercised_by_a_test(name):
    sources = [path for path in TESTS.glob("test_*.py") if path.name != Path(__file__).name]
    using = [path.name for path in sources if name in path.read_text(encoding="utf-8")]
    assert using, f"no test under tests/ mentions {name}"


def test_every_spec_has_a_runner_policy_in_spec_order():
    assert list(hookspecs.POLICIES) == list(SPECS)
    for name, policy in hookspecs.POLICIES.items():
        # a single-decider hook returns one item; a hook returning many asks every plugin
        assert not (policy.many and is_firstresult(name)), name
        assert policy.item.__name__ in str(inspect.signature(SPECS[name]).return_annotation), name
