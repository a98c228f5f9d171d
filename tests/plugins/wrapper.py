"""Broken on purpose: a hook wrapper, which the runner cannot isolate or time-bound."""

from __future__ import annotations

from collections.abc import Generator

from glidein_plugins import hookimpl


@hookimpl(wrapper=True)
def glidein_attributes_contribute() -> Generator[None, object, object]:
    result = yield
    return result
