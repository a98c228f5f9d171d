"""Per-entry factory configuration (YAML): which plugins run on which factory entry, with what.

A file holds ``defaults`` (every entry) and ``entries`` keyed by ``GLIDEIN_Entry_Name``::

    version: 1
    defaults:  {budget_seconds: 120, plugins: {...}, attributes: {...}, settings: {...}}
    entries:
      CMS_T2_US_Site_ce1: {plugins: {enable: [cms], required: [cms]}}

Files are merged in order after the embedded ``default_config.yaml``: scalars and mappings
override, plugin lists accumulate. An entry's section is merged over ``defaults``. Every error
names the file, line and key path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from glidein_plugins.errors import ConfigError

EMBEDDED = Path(__file__).with_name("default_config.yaml")
_PLUGIN_LISTS = ("enable", "disable", "required", "directories")
_SECTION_KEYS = ("budget_seconds", "plugins", "attributes", "settings")
_ATTR_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


@dataclass(frozen=True)
class Setting:
    """A configured value and where it was written (``file:line``)."""

    value: Any
    where: str


@dataclass(frozen=True)
class EntryConfig:
    """The merged configuration of one factory entry."""

    name: str
    budget_seconds: float = 120.0
    enable: Tuple[str, ...] = ()
    disable: Tuple[str, ...] = ()
    required: Tuple[str, ...] = ()
    directories: Tuple[str, ...] = ()
    attributes: Mapping[str, Setting] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Setting]] = field(default_factory=dict)

    def plugin_settings(self, plugin: str) -> Dict[str, Any]:
        return {key: item.value for key, item in self.settings.get(plugin, {}).items()}


@dataclass
class _Section:
    budget: Optional[Setting] = None
    lists: Dict[str, List[Setting]] = field(default_factory=lambda: {k: [] for k in _PLUGIN_LISTS})
    attributes: Dict[str, Setting] = field(default_factory=dict)
    settings: Dict[str, Dict[str, Setting]] = field(default_factory=dict)
    settings_where: Dict[str, str] = field(default_factory=dict)

    def merge(self, other: _Section) -> None:
        self.budget = other.budget or self.budget
        for key, names in other.lists.items():
            known = {item.value for item in self.lists[key]}
            self.lists[key] += [item for item in names if item.value not in known]
        self.attributes.update(other.attributes)
        for plugin, values in other.settings.items():
            self.settings.setdefault(plugin, {}).update(values)
        self.settings_where.update(other.settings_where)

    def plugin_references(self) -> Iterable[Tuple[str, str]]:
        """``(plugin name, file:line)`` for every plugin this section names."""
        for key in ("enable", "disable", "required"):
            yield from ((item.value, item.where) for item in self.lists[key])
        yield from self.settings_where.items()


@dataclass
class FactoryConfig:
    """Every loaded file merged: the defaults and the entries (with the file each came from)."""

    defaults: _Section = field(default_factory=_Section)
    entries: Dict[str, Tuple[_Section, str]] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)

    def entry(self, name: str) -> EntryConfig:
        """The configuration of entry ``name`` (the defaults alone when it has no section)."""
        merged = _Section()
        merged.merge(self.defaults)
        if name in self.entries:
            merged.merge(self.entries[name][0])
        return EntryConfig(
            name=name,
            budget_seconds=float(merged.budget.value) if merged.budget else 120.0,
            **{key: tuple(item.value for item in merged.lists[key]) for key in _PLUGIN_LISTS},
            attributes=dict(merged.attributes),
            settings={plugin: dict(values) for plugin, values in merged.settings.items()},
        )

    def plugin_references(self) -> List[Tuple[str, str]]:
        """``(plugin name, file:line)`` for every plugin named anywhere (to check they exist)."""
        sections = [self.defaults, *(section for section, _ in self.entries.values())]
        return [ref for section in sections for ref in section.plugin_references()]


def load(paths: Sequence[Path] = ()) -> FactoryConfig:
    """Load the embedded defaults then ``paths``; raise ConfigError listing every problem."""
    config, errors = load_checked(paths)
    if errors:
        raise ConfigError(errors[0].where, "; ".join(str(err) for err in errors))
    return config


def load_checked(paths: Sequence[Path] = ()) -> Tuple[FactoryConfig, List[ConfigError]]:
    """Like ``load`` but return the problems instead of raising (for ``check-config``)."""
    config = FactoryConfig()
    errors: List[ConfigError] = []
    for path in (EMBEDDED, *paths):
        _Parser(path, errors).merge_into(config)
    return config, errors


class _Parser:
    """Walks one YAML file's node tree, keeping line numbers for every error."""

    def __init__(self, path: Path, errors: List[ConfigError]) -> None:
        self.path = path
        self.errors = errors
        self.loader: Optional[yaml.SafeLoader] = None

    def error(self, node: Optional[yaml.Node], keypath: str, message: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = f"{self.path}{line}" + (f": {keypath}" if keypath else "")
        self.errors.append(ConfigError(where, message))

    def merge_into(self, config: FactoryConfig) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append(ConfigError(str(self.path), f"cannot read: {exc}"))
            return
        try:
            self.loader = yaml.SafeLoader(text)
            root = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{self.path}:{mark.line + 1}" if mark else str(self.path)
            problem = getattr(exc, "problem", None) or str(exc)
            self.errors.append(ConfigError(where, f"YAML syntax error: {problem}"))
            return
        finally:
            if self.loader is not None:
                self.loader.dispose()
        config.files.append(str(self.path))
        if root is None:
            return
        top = self.mapping(root, "", ("version", "defaults", "entries"))
        if "version" in top and self.scalar(top["version"], "version") != 1:
            self.error(top["version"], "version", "only version 1 is understood")
        if "defaults" in top:
            config.defaults.merge(self.section(top["defaults"], "defaults"))
        for name, node in self.mapping(top.get("entries"), "entries").items():
            where = f"{self.path}:{node.start_mark.line + 1}"
            if name in config.entries:
                self.error(node, f"entries.{name}",
                           f"entry already defined at {config.entries[name][1]}")
                continue
            config.entries[name] = (self.section(node, f"entries.{name}"), where)

    def mapping(self, node: Optional[yaml.Node], keypath: str,
                allowed: Optional[Sequence[str]] = None) -> Dict[str, yaml.Node]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, keypath, "expected a mapping")
            return {}
        result: Dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{keypath}.{key}" if keypath else str(key)
            if not isinstance(key, str) or not key:
                self.error(key_node, keypath, "keys must be non-empty strings")
            elif key in result:
                self.error(key_node, sub, "duplicate key")
            elif allowed is not None and key not in allowed:
                self.error(key_node, sub, f"unknown key (expected one of: {', '.join(allowed)})")
            else:
                result[key] = value_node
        return result

    def scalar(self, node: yaml.Node, keypath: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, keypath, "expected a single value")
            return None
        assert self.loader is not None
        return self.loader.construct_object(node)

    def names(self, node: yaml.Node, keypath: str) -> List[Setting]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, keypath, "expected a list of names")
            return []
        names = []
        for item in node.value:
            value = self.scalar(item, keypath)
            if not isinstance(value, str) or not value.strip():
                self.error(item, keypath, f"expected a name, got {value!r}")
            else:
                names.append(Setting(value.strip(), self.where(item)))
        return names

    def section(self, node: yaml.Node, keypath: str) -> _Section:
        section = _Section()
        items = self.mapping(node, keypath, _SECTION_KEYS)
        if "budget_seconds" in items:
            value = self.scalar(items["budget_seconds"], f"{keypath}.budget_seconds")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                self.error(items["budget_seconds"], f"{keypath}.budget_seconds",
                           f"expected a positive number of seconds, got {value!r}")
            else:
                section.budget = Setting(value, self.where(items["budget_seconds"]))
        plugins = self.mapping(items.get("plugins"), f"{keypath}.plugins", _PLUGIN_LISTS)
        for key, value_node in plugins.items():
            section.lists[key] = self.names(value_node, f"{keypath}.plugins.{key}")
        for key, value_node in self.mapping(items.get("attributes"), f"{keypath}.attributes").items():
            sub = f"{keypath}.attributes.{key}"
            value = self.scalar(value_node, sub)
            if not _ATTR_KEY.match(key):
                self.error(value_node, sub, "not a valid glidein_config key")
            elif isinstance(value, (str, int, float, bool)) or value is None:
                text = "" if value is None else str(value)
                if "\n" in text or "\r" in text:
                    self.error(value_node, sub, "a value cannot span lines")
                else:
                    section.attributes[key] = Setting(text, self.where(value_node))
            else:
                self.error(value_node, sub, f"expected a text or number, got {value!r}")
        for plugin, value_node in self.mapping(items.get("settings"), f"{keypath}.settings").items():
            values = {}
            for key, leaf in self.mapping(value_node, f"{keypath}.settings.{plugin}").items():
                assert self.loader is not None
                values[key] = Setting(self.loader.construct_object(leaf, deep=True),
                                      self.where(leaf))
            section.settings[plugin] = values
            section.settings_where[plugin] = self.where(value_node)
        return section

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"
