"""Plugin settings checked against their declaration (``glidein_plugins.config.options``): a
wrong one is a ``Config`` failure naming file:line:col and the key (``settings.PLUGIN.KEY``),
before the plugin uses it.

A check takes the value and returns '' when it is fine, else what was expected; it must accept
any value a YAML file can hold without raising.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from glidein_plugins.config.options import Check, Option, Options
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.spec.context import Context

__all__ = ["Check", "absolute_path", "boolean", "integer", "optional_path", "path_or_empty",
           "plugin_settings", "runtime_options", "seconds", "seconds_or_zero", "strings", "text",
           "where"]


def _number(value: Any) -> float | None:
    """``value`` as a finite float (None for a bool, a string, NaN, or an integer no float
    can hold)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def seconds(value: Any) -> str:
    number = _number(value)
    return "" if number is not None and number > 0 else "a positive number of seconds"


def seconds_or_zero(value: Any) -> str:
    number = _number(value)
    return "" if number is not None and number >= 0 else "a number of seconds (0: none)"


def boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else "true or false"


def integer(value: Any) -> str:
    return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"


def text(value: Any) -> str:
    return "" if isinstance(value, str) else "a text"


def path_or_empty(value: Any) -> str:
    return "" if isinstance(value, str) and (value == "" or value.startswith("/")) else \
        "an absolute path (or '' for none)"


def absolute_path(value: Any) -> str:
    return "" if isinstance(value, str) and value.startswith("/") else "an absolute path"


def optional_path(value: Any) -> str:
    return "" if value is None or isinstance(value, str) else "a path (or '' to skip it)"


def runtime_options(value: Any) -> str:
    ok = isinstance(value, list) and all(isinstance(item, str) and item.startswith("-")
                                         for item in value)
    return "" if ok else "a list of runtime options (strings starting with '-')"


def strings(value: Any) -> str:
    ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return "" if ok else "a list of strings"


def plugin_settings(context: Context, plugin: str, defaults: Mapping[str, Any],
                    checks: Mapping[str, Check] | None = None) -> dict[str, Any]:
    """The entry's settings for ``plugin`` over its declaration (``Options``; or, for a plugin
    written before declarations, ``defaults`` with a check for each), each checked: the first
    wrong one is a ``Config`` failure naming file:line:col, key and value."""
    declared = defaults if isinstance(defaults, Options) else Options(
        *(Option(key, value, (checks or {}).get(key, _anything), "")
          for key, value in defaults.items()))
    values = context.entry.settings.get(plugin, {})
    problems = declared.problems(plugin, values)
    if problems:
        raise GlideinFailure(FailureType.CONFIG, str(problems[0]))
    return declared.resolve(values)


def _anything(value: Any) -> str:
    return ""


def where(context: Context, plugin: str, key: str) -> str:
    """``file:line: settings.plugin.key`` (``default`` when the entry does not set it)."""
    setting = context.entry.settings.get(plugin, {}).get(key)
    return f"{setting.where if setting is not None else 'default'}: settings.{plugin}.{key}"
