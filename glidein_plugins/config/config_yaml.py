"""Parsing one factory configuration file (YAML), keeping line and column for every error.

Structural limits keep a hostile or broken file a clear error, never a crash or a hang: at most
``MAX_BYTES`` of text, ``MAX_DEPTH`` nested collections, ``MAX_VALUES`` values once every alias
is expanded (a "billion laughs" file is refused, not expanded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from glidein_plugins.config.model import (
    ATTR_KEY,
    PLUGIN_LISTS,
    SECTION_KEYS,
    File,
    Section,
    Setting,
)
from glidein_plugins.config.options import suggest
from glidein_plugins.errors import ConfigError

_Item = tuple[yaml.Node, yaml.Node]  # (key node, value node) of a mapping
_INVALID: Any = object()  # a value already reported as wrong
_YAML_TAG = "tag:yaml.org,2002:"
MAX_BYTES = 4 << 20
MAX_DEPTH = 64
MAX_VALUES = 1_000_000
TOP_KEYS = ("version", "defaults", "entries")


class _Limit(yaml.YAMLError):
    """A structural limit exceeded, at ``mark``."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing collections nested deeper than ``MAX_DEPTH`` (its
    composer recurses once per level: 500 levels would end in a RecursionError)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.depth >= MAX_DEPTH:
            raise _Limit(f"too deep: collections nested more than {MAX_DEPTH} levels",
                         self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` holds once every alias is expanded (each node counted once
    per reference), stopping past ``MAX_VALUES``; raises ``_Limit`` for an alias inside the
    collection it names (an endless value)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # collections whose children are being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = ([n for pair in node.value for n in pair]
                    if isinstance(node, yaml.MappingNode) else
                    list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(MAX_VALUES + 1, 1 + sum(sizes[id(n)] for n in children))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise _Limit("an alias inside the collection it names (an endless value)",
                         node.start_mark)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack += [(child, False) for child in children if id(child) not in sizes]
    return sizes[id(root)]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _short_tag(tag: str) -> str:
    """``!!int`` for ``tag:yaml.org,2002:int``, as it is written in YAML."""
    return "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag


def _short_text(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else "a collection"


def _positive(value: Any) -> bool:
    """A finite positive number (not a bool, not an integer beyond any float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:
        return False


class Parser:
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

    def setting(self, value: Any, node: yaml.Node) -> Setting:
        return Setting(value, self.where(node), node.start_mark.column + 1)

    def error(self, node: yaml.Node, keypath: str, message: str) -> None:
        if not keypath.isprintable():  # a key with a newline: one line per problem still
            keypath = keypath.encode("unicode_escape").decode("ascii")
        where = self.setting(None, node).at + (f": {keypath}" if keypath else "")
        self.errors.append(ConfigError(where, message))

    def parse(self, text: str) -> File | None:
        """The file's sections; None when it is not YAML (reported)."""
        root = self.compose(text)
        if root is _INVALID:
            return None
        parsed = File(str(self.path))
        if root is None:
            parsed.doubts.append(ConfigError(str(self.path), "empty: no settings in it (a "
                                                             "factory config starts with "
                                                             "'version: 1')"))
            return parsed
        top = self.mapping((root, root), "", TOP_KEYS)
        if "version" in top and self.scalar(top["version"], "version") not in (1, _INVALID):
            self.error(top["version"][0], "version", "only version 1 is understood")
        elif "version" not in top and isinstance(root, yaml.MappingNode):
            parsed.doubts.append(ConfigError(f"{self.setting(None, root).at}: version",
                                             "missing: add 'version: 1' at the top of the file"))
        if "defaults" in top:
            parsed.defaults = self.section(top["defaults"], "defaults")
        for name, item in self.mapping(top.get("entries"), "entries").items():
            parsed.entries[name] = (self.section(item, f"entries.{name}"), self.where(item[0]))
        return parsed

    def compose(self, text: str) -> Any:
        """The file's root node, None when empty, ``_INVALID`` after reporting why not."""
        if len(text) > MAX_BYTES:
            self.errors.append(ConfigError(str(self.path), f"larger than {MAX_BYTES >> 20} MiB: "
                                                           "not a factory config"))
            return _INVALID
        try:
            self.loader = _Loader(text)  # its reader refuses control characters at once
            root = self.loader.get_single_node()
            if root is not None and _expanded_size(root) > MAX_VALUES:
                raise _Limit(f"too large: more than {MAX_VALUES} values once its aliases "
                             "are expanded", root.start_mark)
            return root
        except _Limit as exc:
            mark = exc.problem_mark
            self.errors.append(ConfigError(f"{self.path}:{mark.line + 1}:{mark.column + 1}",
                                           exc.problem))
            return _INVALID
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            position = getattr(exc, "position", None)  # a ReaderError has no mark
            line = (mark.line + 1 if mark else
                    text.count("\n", 0, position) + 1 if isinstance(position, int) else None)
            where = (f"{self.path}:{line}" + (f":{mark.column + 1}" if mark else "")
                     if line else str(self.path))
            problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
            if isinstance(exc, yaml.reader.ReaderError):
                problem = f"character {exc.character!r} not allowed: {problem}"
            context = getattr(exc, "context", None)
            context_mark = getattr(exc, "context_mark", None)
            if context and context_mark:
                problem += f" ({context} at line {context_mark.line + 1})"
            self.errors.append(ConfigError(where, f"YAML syntax error: {problem}"))
            return _INVALID
        finally:
            if self.loader is not None:
                self.loader.dispose()

    def construct(self, item: _Item, keypath: str) -> Any:
        """The Python value of ``item``'s node (``_INVALID`` after reporting an unknown tag)."""
        assert self.loader is not None
        try:
            return self.loader.construct_object(item[1], deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
        except (ValueError, TypeError, KeyError, AttributeError):  # '!!int abc', '!!bool x'
            problem = f"{_short_tag(item[1].tag)} cannot be {_short_text(item[1])}"
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
                self.error(key_node, sub, f"unknown key{suggest(key, allowed)} (expected one "
                                          f"of: {', '.join(allowed)})")
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
                names.append(Setting(value.strip(), f"{self.setting(None, node).at}: {keypath}"))
        return names

    def section(self, item: _Item, keypath: str) -> Section:
        section = Section()
        items = self.mapping(item, keypath, SECTION_KEYS)
        if "budget_seconds" in items:
            sub = f"{keypath}.budget_seconds"
            value = self.scalar(items["budget_seconds"], sub)
            if value is _INVALID:
                pass
            elif not _positive(value):
                self.error(items["budget_seconds"][0], sub,
                           f"expected a positive number of seconds, got {value!r}")
            else:
                section.budget = self.setting(value, items["budget_seconds"][0])
        plugins = self.mapping(items.get("plugins"), f"{keypath}.plugins", PLUGIN_LISTS)
        for key, value in plugins.items():
            section.lists[key] = self.names(value, f"{keypath}.plugins.{key}")
        attributes = self.mapping(items.get("attributes"), f"{keypath}.attributes")
        for key, value in attributes.items():
            text = self.attribute(key, value, f"{keypath}.attributes.{key}")
            if text is not None:
                section.attributes[key] = self.setting(text, value[0])
        for plugin, value in self.mapping(items.get("settings"), f"{keypath}.settings").items():
            sub = f"{keypath}.settings.{plugin}"
            settings = {key: (leaf, self.construct(leaf, f"{sub}.{key}"))
                        for key, leaf in self.mapping(value, sub).items()}
            section.settings[plugin] = {key: self.setting(setting, leaf[0])
                                        for key, (leaf, setting) in settings.items()
                                        if setting is not _INVALID}
            section.settings_where[plugin] = f"{self.setting(None, value[0]).at}: {sub}"
        return section

    def attribute(self, key: str, item: _Item, keypath: str) -> str | None:
        """The glidein_config text of an ``attributes`` value, or None after reporting why not.

        The text is taken as written (``yes`` stays ``yes``, ``010`` stays ``010``): a
        glidein_config value is text, not a YAML-typed value; ``null`` or nothing is ''. So a
        tag (``!!python/name:...``, ``!!int``) is refused, as the ``settings`` refuse the tags
        PyYAML's safe loader does not know: it would be ignored.
        """
        node = item[1]
        if not ATTR_KEY.match(key):
            self.error(item[0], keypath, "not a valid glidein_config key")
        elif not isinstance(node, yaml.ScalarNode):
            self.error(item[0], keypath, "expected a single text or number")
        elif node.tag != self._implicit_tag(node):
            self.error(item[0], keypath, f"a YAML tag ({_short_tag(node.tag)}) is not allowed "
                                         "here: the value is glidein_config text, taken as written")
        elif _is_null(node):
            return ""
        elif "\n" in node.value or "\r" in node.value or "\0" in node.value:
            self.error(item[0], keypath, "a value cannot span lines")
        else:
            return str(node.value)
        return None

    def _implicit_tag(self, node: yaml.ScalarNode) -> str:
        """The tag PyYAML gives ``node``'s text when it carries none (plain or quoted)."""
        assert self.loader is not None
        plain = node.style is None
        return str(self.loader.resolve(  # type: ignore[no-untyped-call]
            yaml.ScalarNode, node.value, (plain, True)))
