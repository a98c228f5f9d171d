"""The hook reference, generated from the hook specs (``glidein-plugins hooks``).

The hooks come in the order ``hookspecs`` defines them, which is the order the runner calls
them; each with its arguments, the first paragraph of its docstring, whether it is
*firstresult* and its failure policy (``runner.POLICIES``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TextIO

from glidein_plugins import hookspecs
from glidein_plugins.runner import POLICIES


@dataclass(frozen=True)
class HookInfo:
    """One hook of the reference."""

    name: str
    args: tuple[str, ...]
    summary: str
    firstresult: bool
    fatal: bool
    phase: str


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
                              bool(spec.get("firstresult")), policy.fatal, policy.phase))
    return found


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
