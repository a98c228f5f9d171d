"""Per-entry factory configuration (YAML): which plugins run on which factory entry, with what.

A file holds ``defaults`` (every entry) and ``entries`` keyed by ``GLIDEIN_Entry_Name``::

    version: 1
    defaults:  {budget_seconds: 120, plugins: {...}, attributes: {...}, settings: {...}}
    entries:
      CMS_T2_US_Site_ce1: {plugins: {enable: [cms], required: [cms]}}

Files are merged in order after the embedded ``default_config.yaml``: scalars and mappings
override, plugin lists accumulate. An entry's section is merged over ``defaults``. Every error
names the file, line and key path.

Parsing YAML costs a glidein more than everything else it does at start-up (PyYAML is
shipped without its C extension), so ``glidein-plugins pack`` stores each shipped file's
parsed form as JSON in ``__pycache__/NAME.yaml.json`` beside it; it is used only while the
YAML text is exactly the one it was made from, by the same package version.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glidein_plugins._version import __version__
from glidein_plugins.config.model import FactoryConfig, File, Section, Setting
from glidein_plugins.errors import ConfigError

EMBEDDED = Path(__file__).with_name("default_config.yaml")


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
        text = _read(path, errors)
        if text is not None:
            parsed = _cached(path, text) or _parse(path, text, errors)
            if parsed is not None:
                parsed.merge_into(config, errors)
    return config, errors


def _parse(path: Path, text: str, errors: list[ConfigError]) -> File | None:
    from glidein_plugins.config.config_yaml import Parser  # noqa: PLC0415 - PyYAML only if needed

    return Parser(path, errors).parse(text)


def _read(path: Path, errors: list[ConfigError]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(ConfigError(str(path), f"cannot read: {exc.strerror or exc}"))
    except UnicodeDecodeError as exc:
        errors.append(ConfigError(str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}"))
    return None


# -- the parsed form of a shipped file, as JSON ------------------------------------------------
# A Setting is [value, where without the file's path, column]: the cache is valid wherever it is
# unpacked.

CACHE_FORMAT = 2


def cache_path(path: Path) -> Path:
    """Where ``pack`` keeps the parsed form of ``path``."""
    return path.parent / "__pycache__" / f"{path.name}.json"


def compiled(path: Path) -> bytes | None:
    """The cache file's content for ``path``; None if a value has no exact JSON form.

    Raises ConfigError (every problem, with file:line) when the file is not valid.
    """
    errors: list[ConfigError] = []
    text = _read(path, errors)
    parsed = _parse(path, text, errors) if text is not None else None
    if errors or parsed is None or text is None:
        raise ConfigError("", "; ".join(str(err) for err in errors))
    prefix = str(path)

    def setting(item: Setting) -> list[Any]:
        if not item.where.startswith(prefix):
            raise ValueError(item.where)
        return [item.value, item.where[len(prefix):], item.column]

    def section(part: Section) -> dict[str, Any]:
        return {"budget": setting(part.budget) if part.budget else None,
                "lists": {key: [setting(item) for item in items]
                          for key, items in part.lists.items()},
                "attributes": {key: setting(item) for key, item in part.attributes.items()},
                "settings": {plugin: {key: setting(item) for key, item in values.items()}
                             for plugin, values in part.settings.items()},
                "settings_where": {plugin: where[len(prefix):]
                                   for plugin, where in part.settings_where.items()}}

    try:
        data = json.dumps({
            "format": CACHE_FORMAT, "version": __version__, "source": text,
            "defaults": section(parsed.defaults) if parsed.defaults else None,
            "entries": {name: [section(part), where[len(prefix):]]
                        for name, (part, where) in parsed.entries.items()}},
            allow_nan=False, ensure_ascii=False, indent=None)
    except (TypeError, ValueError):  # a date, a set, bytes, NaN...: not JSON
        return None
    if _from_json(json.loads(data), prefix) != parsed:  # e.g. a mapping with number keys
        return None
    return data.encode("utf-8")


def _from_json(data: dict[str, Any], prefix: str) -> File:
    def setting(item: list[Any]) -> Setting:
        return Setting(item[0], prefix + item[1], item[2])

    def section(part: dict[str, Any]) -> Section:
        budget = part["budget"]
        return Section(
            budget=setting(budget) if budget else None,
            lists={key: [setting(pair) for pair in items] for key, items in part["lists"].items()},
            attributes={key: setting(pair) for key, pair in part["attributes"].items()},
            settings={plugin: {key: setting(pair) for key, pair in values.items()}
                      for plugin, values in part["settings"].items()},
            settings_where={plugin: prefix + where
                            for plugin, where in part["settings_where"].items()})

    defaults = data["defaults"]
    return File(prefix, section(defaults) if defaults else None,
                 {name: (section(part), prefix + where)
                  for name, (part, where) in data["entries"].items()})


def _cached(path: Path, text: str) -> File | None:
    """The parsed form of ``path`` from its cache, if made from exactly ``text``."""
    # no cache, one from another version or text, or a damaged one: the YAML is parsed
    with contextlib.suppress(Exception):
        data = json.loads(cache_path(path).read_bytes())
        if (data["format"], data["version"], data["source"]) == (CACHE_FORMAT, __version__, text):
            return _from_json(data, str(path))
    return None
