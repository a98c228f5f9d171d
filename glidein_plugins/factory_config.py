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

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glidein_plugins.errors import ConfigError

EMBEDDED = Path(__file__).with_name("default_config.yaml")
_PLUGIN_LISTS = ("enable", "disable", "required", "directories")
_SECTION_KEYS = ("budget_seconds", "plugins", "attributes", "settings")
_ATTR_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


@dataclass(frozen=True)
class Setting:
    """A configured value and where it was written: ``file:line``, followed by the key path
    (``file:line: entries.X.plugins.enable``) for plugin names, which are only ever reported."""

    value: Any
    where: str


@dataclass(frozen=True)
class EntryConfig:
    """The merged configuration of one factory entry."""

    name: str
    budget_seconds: float = 120.0
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    directories: tuple[str, ...] = ()
    attributes: Mapping[str, Setting] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, Setting]] = field(default_factory=dict)

    def plugin_settings(self, plugin: str) -> dict[str, Any]:
        return {key: item.value for key, item in self.settings.get(plugin, {}).items()}


@dataclass
class _Section:
    budget: Setting | None = None
    lists: dict[str, list[Setting]] = field(default_factory=lambda: {k: [] for k in _PLUGIN_LISTS})
    attributes: dict[str, Setting] = field(default_factory=dict)
    settings: dict[str, dict[str, Setting]] = field(default_factory=dict)
    settings_where: dict[str, str] = field(default_factory=dict)

    def merge(self, other: _Section) -> None:
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
        for key in ("enable", "disable", "required"):
            yield from ((item.value, item.where) for item in self.lists[key])
        yield from self.settings_where.items()


@dataclass
class FactoryConfig:
    """Every loaded file merged: the defaults and the entries (with the file each came from)."""

    defaults: _Section = field(default_factory=_Section)
    entries: dict[str, tuple[_Section, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

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

    def sections(self) -> list[_Section]:
        """The defaults, then every entry's own section (not merged)."""
        return [self.defaults, *(section for section, _ in self.entries.values())]

    def plugin_references(self) -> list[tuple[str, str]]:
        """``(plugin name, where)`` for every plugin named anywhere (to check they exist)."""
        return [ref for section in self.sections() for ref in section.plugin_references()]

    def directories(self) -> tuple[str, ...]:
        """Every plugin directory named anywhere, once each."""
        return tuple(dict.fromkeys(item.value for section in self.sections()
                                   for item in section.lists["directories"]))


def load(paths: Sequence[Path] = ()) -> FactoryConfig:
    """Load the embedded defaults then ``paths``; raise ConfigError listing every problem."""
    config, errors = load_checked(paths)
    if errors:
        # each error already starts with its own file:line
        raise ConfigError("", "; ".join(str(err) for err in errors))
    return config


def load_checked(paths: Sequence[Path] = ()) -> tuple[FactoryConfig, list[ConfigError]]:
    """Like ``load`` but return the problems instead of raising (for ``check-config``)."""
    config = FactoryConfig()
    errors: list[ConfigError] = []
    for path in (EMBEDDED, *paths):
        _Parser(path, errors).merge_into(config)
    return config, errors


_Item = tuple[yaml.Node, yaml.Node]  # (key node, value node) of a mapping
_INVALID: Any = object()  # a value already reported as wrong


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


class _Parser:
    """Walks one YAML file's node tree, keeping line numbers for every error.

    Values travel with their key node (``_Item``), so that an error about a value names the
    line of its key, even when the value is a block that starts on the next line.
    """

    def __init__(self, path: Path, errors: list[ConfigError]) -> None:
        self.path = path
        self.errors = errors
        self.loader: yaml.SafeLoader | None = None

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def error(self, node: yaml.Node, keypath: str, message: str) -> None:
        where = self.where(node) + (f": {keypath}" if keypath else "")
        self.errors.append(ConfigError(where, message))

    def merge_into(self, config: FactoryConfig) -> None:
        root = self.compose()
        if root is _INVALID:
            return
        config.files.append(str(self.path))
        if root is None:
            return
        top = self.mapping((root, root), "", ("version", "defaults", "entries"))
        if "version" in top and self.scalar(top["version"], "version") not in (1, _INVALID):
            self.error(top["version"][0], "version", "only version 1 is understood")
        if "defaults" in top:
            config.defaults.merge(self.section(top["defaults"], "defaults"))
        for name, item in self.mapping(top.get("entries"), "entries").items():
            if name in config.entries:
                self.error(item[0], f"entries.{name}",
                           f"entry already defined at {config.entries[name][1]}")
            else:
                config.entries[name] = (self.section(item, f"entries.{name}"),
                                        self.where(item[0]))

    def compose(self) -> Any:
        """The file's root node, None when empty, ``_INVALID`` after reporting why not."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            self.errors.append(ConfigError(str(self.path), f"cannot read: {exc.strerror or exc}"))
            return _INVALID
        except UnicodeDecodeError as exc:
            self.errors.append(ConfigError(str(self.path), f"not UTF-8 text: {exc.reason} at "
                                                           f"byte {exc.start}"))
            return _INVALID
        self.loader = yaml.SafeLoader(text)
        try:
            return self.loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{self.path}:{mark.line + 1}" if mark else str(self.path)
            problem = getattr(exc, "problem", None) or str(exc)
            context = getattr(exc, "context", None)
            context_mark = getattr(exc, "context_mark", None)
            if context and context_mark:
                problem += f" ({context} at line {context_mark.line + 1})"
            self.errors.append(ConfigError(where, f"YAML syntax error: {problem}"))
            return _INVALID
        finally:
            self.loader.dispose()

    def construct(self, item: _Item, keypath: str) -> Any:
        """The Python value of ``item``'s node (``_INVALID`` after reporting an unknown tag)."""
        assert self.loader is not None
        try:
            return self.loader.construct_object(item[1], deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.error(item[0], keypath, f"invalid value: {problem}")
            return _INVALID

    def mapping(self, item: _Item | None, keypath: str,
                allowed: Sequence[str] | None = None) -> dict[str, _Item]:
        if item is None or _is_null(item[1]):
            return {}
        if not isinstance(item[1], yaml.MappingNode):
            self.error(item[0], keypath, "expected a mapping")
            return {}
        result: dict[str, _Item] = {}
        for key_node, value_node in item[1].value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{keypath}.{key}" if keypath else str(key)
            if not isinstance(key, str) or not key:
                self.error(key_node, keypath, "keys must be non-empty strings")
            elif key in result:
                self.error(key_node, sub, "duplicate key")
            elif allowed is not None and key not in allowed:
                self.error(key_node, sub, f"unknown key (expected one of: {', '.join(allowed)})")
            else:
                result[key] = (key_node, value_node)
        return result

    def scalar(self, item: _Item, keypath: str) -> Any:
        if not isinstance(item[1], yaml.ScalarNode):
            self.error(item[0], keypath, "expected a single value")
            return _INVALID
        return self.construct(item, keypath)

    def names(self, item: _Item, keypath: str) -> list[Setting]:
        if _is_null(item[1]):
            return []
        if not isinstance(item[1], yaml.SequenceNode):
            self.error(item[0], keypath, "expected a list of names")
            return []
        names = []
        for node in item[1].value:
            value = self.scalar((node, node), keypath)
            if value is _INVALID:
                continue
            if not isinstance(value, str) or not value.strip():
                self.error(node, keypath, f"expected a name, got {value!r}")
            else:
                names.append(Setting(value.strip(), f"{self.where(node)}: {keypath}"))
        return names

    def section(self, item: _Item, keypath: str) -> _Section:
        section = _Section()
        items = self.mapping(item, keypath, _SECTION_KEYS)
        if "budget_seconds" in items:
            sub = f"{keypath}.budget_seconds"
            value = self.scalar(items["budget_seconds"], sub)
            if value is _INVALID:
                pass
            elif (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                self.error(items["budget_seconds"][0], sub,
                           f"expected a positive number of seconds, got {value!r}")
            else:
                section.budget = Setting(value, self.where(items["budget_seconds"][0]))
        plugins = self.mapping(items.get("plugins"), f"{keypath}.plugins", _PLUGIN_LISTS)
        for key, value in plugins.items():
            section.lists[key] = self.names(value, f"{keypath}.plugins.{key}")
        attributes = self.mapping(items.get("attributes"), f"{keypath}.attributes")
        for key, value in attributes.items():
            text = self.attribute(key, value, f"{keypath}.attributes.{key}")
            if text is not None:
                section.attributes[key] = Setting(text, self.where(value[0]))
        for plugin, value in self.mapping(items.get("settings"), f"{keypath}.settings").items():
            sub = f"{keypath}.settings.{plugin}"
            settings = {key: (leaf, self.construct(leaf, f"{sub}.{key}"))
                        for key, leaf in self.mapping(value, sub).items()}
            section.settings[plugin] = {key: Setting(setting, self.where(leaf[0]))
                                        for key, (leaf, setting) in settings.items()
                                        if setting is not _INVALID}
            section.settings_where[plugin] = f"{self.where(value[0])}: {sub}"
        return section

    def attribute(self, key: str, item: _Item, keypath: str) -> str | None:
        """The glidein_config text of an ``attributes`` value, or None after reporting why not.

        The text is taken as written (``yes`` stays ``yes``, ``010`` stays ``010``): a
        glidein_config value is text, not a YAML-typed value; ``null`` or nothing is ''.
        """
        node = item[1]
        if not _ATTR_KEY.match(key):
            self.error(item[0], keypath, "not a valid glidein_config key")
        elif not isinstance(node, yaml.ScalarNode):
            self.error(item[0], keypath, "expected a single text or number")
        elif _is_null(node):
            return ""
        elif "\n" in node.value or "\r" in node.value or "\0" in node.value:
            self.error(item[0], keypath, "a value cannot span lines")
        else:
            return str(node.value)
        return None
