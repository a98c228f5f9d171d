"""Plugin settings checked against their defaults: a wrong one is a ``Config`` failure naming
file:line and the key (``settings.PLUGIN.KEY``), before the plugin uses it.

A check takes the value and returns '' when it is fine, else what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from glidein_plugins.context import Context
from glidein_plugins.errors import FailureType, GlideinFailure

Check = Callable[[Any], str]


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


def strings(value: Any) -> str:
    ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return "" if ok else "a list of strings"


def plugin_settings(context: Context, plugin: str, defaults: Mapping[str, Any],
                    checks: Mapping[str, Check]) -> dict[str, Any]:
    """The entry's settings for ``plugin`` over ``defaults``, each checked."""
    values = dict(defaults)
    for key, setting in context.entry.settings.get(plugin, {}).items():
        at = f"{setting.where}: settings.{plugin}.{key}"
        if key not in defaults:
            raise GlideinFailure(FailureType.CONFIG, f"{at}: unknown setting (expected one "
                                 f"of: {', '.join(defaults)})")
        expected = checks[key](setting.value)
        if expected:
            raise GlideinFailure(FailureType.CONFIG,
                                 f"{at}: expected {expected}, got {setting.value!r}")
        values[key] = setting.value
    return values


def where(context: Context, plugin: str, key: str) -> str:
    """``file:line: settings.plugin.key`` (``default`` when the entry does not set it)."""
    setting = context.entry.settings.get(plugin, {}).get(key)
    return f"{setting.where if setting is not None else 'default'}: settings.{plugin}.{key}"
