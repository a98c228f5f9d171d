"""Plugin settings, declared once by the plugin that owns them.

A plugin (built-in or VO) declares its ``settings.PLUGIN.*`` keys as a module (or class)
attribute ``SETTINGS = Options(Option(name, default, check, doc), ...)``. From that one
declaration: the setup checks the entry's values before the plugin uses them,
``check-config`` and ``pack`` report every wrong one with ``file:line:col``, ``config show``
prints the effective values, and ``docs/settings.md`` is generated. A check (see
``glidein_plugins.spec.checks``) returns '' for a good value, else what it expects.

``Options`` is also a read-only mapping of each name to its default, so code that only reads
the defaults (``{**probe.SETTINGS, ...}``) needs no change.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from glidein_plugins.errors import ConfigError

Check = Callable[[Any], str]
ATTRIBUTE = "SETTINGS"  # the plugin attribute holding its declaration
_NOTHING = object()  # a value no check accepts: asking for it gives the expected text
_SHOWN = 80  # characters of a wrong value quoted in a message


@dataclass(frozen=True)
class Option:
    """One setting: its name, default, check and a one-line description."""

    name: str
    default: Any
    check: Check
    doc: str
    # a deeper look at a value the check accepted: '' when fine, else why not (in full)
    validate: Check | None = None

    @property
    def expected(self) -> str:
        """What the check accepts, in words (``a positive number of seconds``)."""
        return self.check(_NOTHING) or "any value"


class Options(Mapping[str, Any]):
    """A plugin's declared settings; as a mapping, each name's default."""

    def __init__(self, *options: Option) -> None:
        self.options = {option.name: option for option in options}

    def __getitem__(self, key: str) -> Any:
        return self.options[key].default

    def __iter__(self) -> Iterator[str]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def __repr__(self) -> str:
        return f"Options({', '.join(self.options)})"

    def problems(self, plugin: str, values: Mapping[str, Any], keypath: str = "settings",
                 columns: bool = False) -> list[ConfigError]:
        """Every wrong value of ``values`` (``key -> model.Setting``), each located
        ``file:line[:col]: KEYPATH.PLUGIN.KEY`` (``columns``: with the column, and a long
        value cut, as ``check-config`` reports them)."""
        errors = []
        for key, setting in values.items():
            where = getattr(setting, "at", setting.where) if columns else setting.where
            at = f"{where}: {keypath}.{plugin}.{key}"
            option = self.options.get(key)
            if option is None:
                known = ", ".join(self.options)
                errors.append(ConfigError(at, "unknown setting " + (
                    f"(expected one of: {known})" if known else "(it takes none)")
                    + suggest(key, self.options)))
                continue
            try:
                expected = option.check(setting.value)
                why = "" if expected or option.validate is None else \
                    option.validate(setting.value)
            except Exception as exc:  # a plugin's check failing on a value it did not foresee
                expected, why = "", f"cannot be checked: {type(exc).__name__}: {exc}"
            if expected:
                value = shown(setting.value) if columns else repr(setting.value)
                errors.append(ConfigError(at, f"expected {expected}, got {value}"))
            elif why:
                errors.append(ConfigError(at, why))
        return errors

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults (copied: a plugin may change its lists) overridden by ``values``'
        (already checked) settings."""
        chosen = {key: copy.deepcopy(option.default) for key, option in self.options.items()}
        chosen.update((key, setting.value) for key, setting in values.items())
        return chosen


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:  # a case slip ('TIMEOUT') is not always close by difflib's measure
        close = [choice for choice in choices if choice.lower() == word.lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown(value: Any) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def declared(plugin: object, builtin: bool = False) -> Options | None:
    """The declaration a plugin object carries (None: it declares nothing, so its settings
    cannot be checked; a built-in that declares nothing takes no setting)."""
    found = getattr(plugin, ATTRIBUTE, None)
    return found if isinstance(found, Options) else Options() if builtin else None
