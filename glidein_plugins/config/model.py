"""The factory configuration's model: settings with where they were written, sections,
entries and the merged configuration (``factory_config`` loads it, ``config_yaml`` parses it)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glidein_plugins.errors import ConfigError

PLUGIN_LISTS = ("enable", "disable", "required", "optional", "directories")
SECTION_KEYS = ("budget_seconds", "plugins", "attributes", "settings")
ATTR_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


@dataclass(frozen=True)
class Setting:
    """A configured value and where it was written: ``file:line``, followed by the key path
    (``file:line: entries.X.plugins.enable``) for plugin names, which are only ever reported."""

    value: Any
    where: str
    column: int = field(default=0, compare=False)  # of the key, from 1 (0: not known)

    @property
    def at(self) -> str:
        """``file:line:col`` (``where`` when the column is not known)."""
        return f"{self.where}:{self.column}" if self.column else self.where


@dataclass(frozen=True)
class EntryConfig:
    """The merged configuration of one factory entry."""

    name: str
    budget_seconds: float = 120.0
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # enabled, and may fail to load without failing the setup
    directories: tuple[str, ...] = ()
    attributes: Mapping[str, Setting] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Setting]] = field(default_factory=dict)

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        return {key: item.value for key, item in self.settings.get(plugin, {}).items()}


@dataclass
class Section:
    budget: Setting | None = None
    lists: dict[str, list[Setting]] = field(default_factory=lambda: {k: [] for k in PLUGIN_LISTS})
    attributes: dict[str, Setting] = field(default_factory=dict)
    settings: dict[str, dict[str, Setting]] = field(default_factory=dict)
    settings_where: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Section) -> None:
        self.budget = other.budget or self.budget
        for key, names in other.lists.items():
            known = {item.value for item in self.lists[key]}
            self.lists[key] += [item for item in names if item.value not in known]
        self.attributes.update(other.attributes)
        for plugin, values in other.settings.items():
            self.settings.setdefault(plugin, {}).update(values)
        self.settings_where.update(other.settings_where)

    def plugin_references(self) -> Iterable[tuple[str, str]]:
        """``(plugin name, file:line)`` for every plugin this section names."""
        for key in ("enable", "disable", "required", "optional"):
            yield from ((item.value, item.where) for item in self.lists[key])
        yield from self.settings_where.items()


@dataclass
class FactoryConfig:
    """Every loaded file merged: the defaults and the entries (with the file each came from)."""

    defaults: Section = field(default_factory=Section)
    entries: dict[str, tuple[Section, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    # what check-config refuses but a glidein tolerates (a file without a version, an empty one)
    doubts: list[ConfigError] = field(default_factory=list, compare=False)

    def merged(self, name: str) -> Section:
        """Entry ``name``'s section merged over the defaults (the defaults alone when it has
        no section of its own)."""
        merged = Section()
        merged.merge(self.defaults)
        if name in self.entries:
            merged.merge(self.entries[name][0])
        return merged

    def entry(self, name: str) -> EntryConfig:
        """The configuration of entry ``name`` (the defaults alone when it has no section)."""
        merged = self.merged(name)
        return EntryConfig(
            name=name,
            budget_seconds=float(merged.budget.value) if merged.budget else 120.0,
            **{key: tuple(item.value for item in merged.lists[key]) for key in PLUGIN_LISTS},
            attributes=dict(merged.attributes),
            settings={plugin: dict(values) for plugin, values in merged.settings.items()},
        )

    def sections(self) -> list[Section]:
        """The defaults, then every entry's own section (not merged)."""
        return [self.defaults, *(section for section, _ in self.entries.values())]

    def plugin_references(self) -> list[tuple[str, str]]:
        """``(plugin name, where)`` for every plugin named anywhere (to check they exist)."""
        return [ref for section in self.sections() for ref in section.plugin_references()]

    def directories(self) -> tuple[str, ...]:
        """Every plugin directory named anywhere, once each."""
        return tuple(dict.fromkeys(item.value for section in self.sections()
                                   for item in section.lists["directories"]))


@dataclass
class File:
    """One file's sections, before merging: ``entries`` maps a name to (section, where)."""

    path: str
    defaults: Section | None = None
    entries: dict[str, tuple[Section, str]] = field(default_factory=dict)
    doubts: list[ConfigError] = field(default_factory=list, compare=False)

    def merge_into(self, config: FactoryConfig, errors: list[ConfigError]) -> None:
        config.files.append(self.path)
        config.doubts += self.doubts
        if self.defaults is not None:
            config.defaults.merge(self.defaults)
        for name, (section, where) in self.entries.items():
            if name in config.entries:
                errors.append(ConfigError(f"{where}: entries.{name}",
                                          f"entry already defined at {config.entries[name][1]}"))
            else:
                config.entries[name] = (section, where)
