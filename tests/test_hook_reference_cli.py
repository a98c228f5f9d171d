"""``glidein-plugins hooks``: the hook reference generated from the hook specs, and the
documentation site's hook reference page, generated from the same specs when the site is built
(tools/docs_hooks.py), never copied by hand: same hooks, same order, same firstresult and
failure-policy marks, every argument named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, docs_hooks, run_cli

from glidein_plugins.engine import hookref
from glidein_plugins.spec import hookspecs
from glidein_plugins.spec.hookspecs import POLICIES

HOOKS = hookref.hooks()



def page_sections() -> dict[str, str]:
    """``## name`` -> its text, for the site's hook reference page, in order."""
    hooks = docs_hooks()
    text = hooks.pages(set())[hooks.HOOK_REFERENCE]
    parts = re.split(r"^## (\S+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_spec_is_in_the_reference_in_run_order() -> None:
    names = [hook.name for hook in HOOKS]
    specs = [name for name in vars(hookspecs) if name.startswith("glidein_")]
    assert names == specs == list(POLICIES)  # the runner's policies follow the same order
    assert names[0] == "glidein_mode_negotiate" and names[-1] == "glidein_job_launch"


def test_the_command_prints_every_hook_with_its_marks(tmp_path: Path) -> None:
    proc = run_cli(["hooks"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    blocks = proc.stdout.strip().split("\n\n")
    assert len(blocks) == len(HOOKS)
    for number, (block, hook) in enumerate(zip(blocks, HOOKS), 1):
        title, summary, marks = block.splitlines()
        assert title.strip() == f"{number}. {hook.name}({', '.join(hook.args)})"
        assert summary.strip() == hook.summary and hook.summary.endswith(".")
        assert ("firstresult" in marks) is hook.firstresult
        assert ("all plugins are asked" in marks) is not hook.firstresult
        assert marks.split("policy: ")[1].startswith("fatal" if hook.fatal else "not fatal")


def test_the_site_generates_the_page_instead_of_keeping_a_copy() -> None:
    hooks = docs_hooks()
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert "tools/docs_hooks.py" in config["hooks"]
    assert hooks.HOOK_REFERENCE in str(config["nav"])
    assert not (ROOT / "docs" / hooks.HOOK_REFERENCE).exists(), "generated: never hand-copied"
    assert hooks.pages(set())[hooks.HOOK_REFERENCE] == hookref.markdown()


def test_the_page_lists_the_same_hooks_in_the_same_order() -> None:
    assert list(page_sections()) == [hook.name for hook in HOOKS]


@pytest.mark.parametrize("hook", HOOKS, ids=[hook.name for hook in HOOKS])
def test_the_page_marks_and_arguments_match_the_spec(hook: hookref.HookInfo) -> None:
    section = page_sections()[hook.name]
    text = " ".join(section.split())
    assert ("*firstresult*" in text) is hook.firstresult, text
    assert ("*All plugins are asked*" in text) is not hook.firstresult, text
    assert ("Policy: **fatal**" in text) is hook.fatal, text
    assert ("Policy: not fatal" in text) is not hook.fatal, text
    arguments = section.split("**Arguments**", 1)[1].split("**Returns**", 1)[0]
    assert re.findall(r"^- `(\w+)`: \S", arguments, re.M) == list(hook.args), arguments
    assert f"`{hook.returns}`" in text.split("**Returns**", 1)[1], text
    # the whole docstring is there, not only its summary: every paragraph and every field
    for piece in re.split(r"\n\n|:param \w+:|:return:", hook.doc):
        assert " ".join(piece.replace("``", "`").split()) in text, piece
