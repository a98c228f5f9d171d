"""Broken on purpose: a marked implementation of a hook that does not exist (a typo)."""

from __future__ import annotations

from glidein_plugins import Context, RuntimeCandidate, hookimpl


@hookimpl
def glidein_runtime_discovr(context: Context) -> list[RuntimeCandidate]:
    return [RuntimeCandidate("/usr/bin/apptainer", "misspelt")]
