"""The hook reference, generated from the hook specs (``glidein-plugins hooks``).

The hooks come in the order ``hookspecs`` defines them, which is the order the runner calls
them; each with its arguments, the first paragraph of its docstring, whether it is
*firstresult* and its failure policy (``hookspecs.POLICIES``). ``markdown()`` is the same reference
with the whole docstrings, as the documentation site's page (``tools/docs_hooks.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import TextIO

from glidein_plugins.spec import hookspecs
from glidein_plugins.spec.hookspecs import POLICIES


@dataclass(frozen=True)
class HookInfo:
    """One hook of the reference."""

    name: str
    args: tuple[str, ...]
    summary: str
    firstresult: bool
    fatal: bool
    phase: str
    returns: str  # the result type's name
    fields: tuple[str, ...]  # its fields
    many: bool  # any number of results (a list or a generator), or one
    doc: str  # the whole docstring


def hooks() -> list[HookInfo]:
    """Every hook spec, in run order (definition order in ``hookspecs``)."""
    found = []
    for name, function in vars(hookspecs).items():
        spec = getattr(function, f"{hookspecs.PROJECT}_spec", None)
        if not name.startswith("glidein_") or spec is None:
            continue
        policy = POLICIES[name]  # a spec without a policy is a bug: KeyError names it
        doc = inspect.getdoc(function) or ""
        summary = " ".join(doc.split("\n\n", 1)[0].split())
        found.append(HookInfo(name, tuple(inspect.signature(function).parameters), summary,
                              bool(spec.get("firstresult")), policy.fatal, policy.phase,
                              policy.item.__name__, _fields_of(policy.item), policy.many, doc))
    return found


def _fields_of(item: type) -> tuple[str, ...]:
    """The fields a result type is made with."""
    if not dataclasses.is_dataclass(item):
        return ()
    return tuple(field.name for field in dataclasses.fields(item) if field.init)


def render(out: TextIO) -> None:
    """The reference as text, one block per hook."""
    for number, hook in enumerate(hooks(), 1):
        out.write(f"{number:2d}. {hook.name}({', '.join(hook.args)})\n")
        out.write(f"    {hook.summary}\n")
        calls = "firstresult (stops at the first non-None result)" if hook.firstresult \
            else "all plugins are asked"
        policy = "fatal (a crash, overrun or wrong type stops the glidein)" if hook.fatal \
            else "not fatal (the plugin's contribution is dropped, unless it is required)"
        out.write(f"    phase: {hook.phase}; {calls}; policy: {policy}\n\n")


LEGEND = """\
`context` gives the entry's configuration, glidein_config values (`context.get()`), the plugin's
settings (`context.settings()`), bounded external commands (`context.run()`) and the decision
trace (`context.note()`); `facts` holds what earlier phases decided. *All plugins are asked*
hooks collect every plugin's results in call order; *firstresult* hooks stop at the first
non-None result. The failure policy says what happens when an implementation raises, overruns
the time budget or returns the wrong type: **fatal** hooks stop the glidein (`Config`, or
`WN_Resource` for an overrun); for the others the plugin's contribution is dropped and recorded
in the trace, unless the entry lists the plugin in `required`, which makes any such failure
fatal. Raising `GlideinFailure` is never a crash: it stops the glidein with the failure type
given."""
DEFAULT_PARAMS = {"context": "the run's context (`Context`).",
                  "facts": "what the earlier phases decided (`Facts`)."}
_FIELD = re.compile(r"^:(?:param (\w+)|(return)):\s*", re.MULTILINE)


def _md(text: str) -> str:
    """reStructuredText's inline code as Markdown's, lines joined."""
    return " ".join(text.replace("``", "`").split())


def _fields(doc: str) -> tuple[list[str], dict[str, str]]:
    """A docstring's paragraphs before its fields, and its ``:param x:``/``:return:`` fields."""
    parts = _FIELD.split(doc)
    body = [_md(paragraph) for paragraph in parts[0].split("\n\n") if paragraph.strip()]
    fields = {param or "return": _md(text)
              for param, ret, text in zip(parts[1::3], parts[2::3], parts[3::3])}
    return body, fields


def markdown() -> str:
    """The reference as a Markdown page: the specs' module docstring, then every hook in run
    order with its whole docstring, arguments, result type, calling convention and policy."""
    intro, _ = _fields(inspect.getdoc(hookspecs) or "")
    lines = ["# Hook reference", "",
             "Generated from the hook specifications (`glidein_plugins.spec.hookspecs`) and the "
             "runner's failure policies when the site is built; `glidein-plugins hooks` prints "
             "the same in short.", "", *[f"{p}\n" for p in intro[1:]], LEGEND, "",
             "The hooks, in the order the runner calls them:", ""]
    for hook in hooks():
        body, fields = _fields(hook.doc)
        lines += [f"## {hook.name}", "", f"`{hook.name}({', '.join(hook.args)})`", "",
                  *[f"{p}\n" for p in body], "**Arguments**", ""]
        lines += [f"- `{arg}`: {fields.get(arg) or DEFAULT_PARAMS.get(arg, '')}".rstrip()
                  for arg in hook.args]
        count = "any number of" if hook.many else "one"
        calls = "*firstresult*: the first non-None result is taken" if hook.firstresult \
            else "*All plugins are asked*: every plugin's results, in call order"
        policy = "**fatal**: a crash, an overrun or a wrong type stops the glidein" \
            if hook.fatal else ("not fatal: the plugin's contribution is dropped and "
                                "recorded, unless the entry requires the plugin")
        made = f" ({', '.join(f'`{name}`' for name in hook.fields)})" if hook.fields else ""
        lines += ["", f"**Returns** {count} `{hook.returns}`{made}: {fields.get('return', '')}",
                  "",
                  f"Phase: `{hook.phase}`. Calls: {calls}. Policy: {policy}.", ""]
    return "\n".join(lines)
