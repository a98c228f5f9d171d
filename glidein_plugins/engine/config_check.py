"""What a factory config means, checked before deploy and again at setup.

The YAML parser (``config_yaml``) checks the shape; this module checks the meaning, the same way
in ``check-config``, ``pack`` and the setup on the node:

- every plugin's settings against the declaration of the plugin that owns them
  (``glidein_plugins.config.options``): unknown keys (with a did-you-mean), wrong types and values;
- the GlideinWMS variables an entry sets in ``attributes`` against the values GlideinWMS
  accepts: ``GLIDEIN_Singularity_Use``, ``GLIDEIN_SINGULARITY_REQUIRE`` (and a pair of them
  the negotiation table turns into FAIL), ``SINGULARITY_IMAGE_RESTRICTIONS`` tokens, bind lists
  (``src[:dst[:ro|rw]]``) and the images dict (``platform:URI,...``);
- plugin names that no built-in, installed entry point or drop-in provides (did-you-mean).

Every problem is a ``ConfigError`` whose ``where`` is ``file:line:col: key``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glidein_plugins.config.model import EntryConfig, FactoryConfig, Section, Setting
from glidein_plugins.config.options import (
    ATTRIBUTE,
    Options,
    shown,
    suggest,
)
from glidein_plugins.container import binds as bind_lists
from glidein_plugins.container import images as image_lists
from glidein_plugins.container import mode
from glidein_plugins.container.images import RESTRICTIONS, RESTRICTIONS_KEY
from glidein_plugins.engine.registry import (
    BUILTINS,
    builtin_declarations,
    other_plugins,
    registered_declarations,
)
from glidein_plugins.errors import ConfigError, InputError
from glidein_plugins.spec.results import Mode


def _one_of(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        # read as the mode plugin reads it: case-insensitive, blanks around ignored, '' = default
        normal = value.strip().upper()
        return "" if not normal or normal in allowed else \
            f"not one of {', '.join(allowed)}{suggest(normal, allowed)}"
    return check


def _restrictions(value: str) -> str:
    unknown = sorted({token.strip().lower() for token in value.split(",") if token.strip()}
                     - set(RESTRICTIONS))
    return (f"unknown restriction {', '.join(map(repr, unknown))}"
            f"{suggest(unknown[0], RESTRICTIONS)} (known: {', '.join(RESTRICTIONS)}; "
            "comma separated)") if unknown else ""


def _parsed_by(parse: Callable[[str, str], Any]) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            parse(value, "")
        except InputError as exc:
            return exc.message
        return ""
    return check


_BINDS = "comma-separated src[:dst[:ro|rw]], absolute paths without '..' or ':'"
# the GlideinWMS variables checked in ``attributes``: the check, and what it accepts in words
ATTRIBUTE_RULES: dict[str, tuple[Callable[[str], str], str]] = {
    mode.FRONTEND_KEY: (_one_of(mode.FRONTEND_VALUES), " / ".join(mode.FRONTEND_VALUES)
                        + " (any case; empty: DISABLE_GWMS)"),
    mode.FACTORY_KEY: (_one_of(mode.FACTORY_VALUES), " / ".join(mode.FACTORY_VALUES)
                       + " (any case; empty: OPTIONAL)"),
    RESTRICTIONS_KEY: (_restrictions, "comma-separated tokens among "
                       + ", ".join(RESTRICTIONS) + " (empty: cvmfs)"),
    "GLIDEIN_SINGULARITY_BINDPATH": (_parsed_by(bind_lists.parse), _BINDS),
    "GLIDEIN_SINGULARITY_BINDPATH_DEFAULT": (_parsed_by(bind_lists.parse), _BINDS),
    "SINGULARITY_IMAGES_DICT": (_parsed_by(image_lists.parse_dict),
                                "comma-separated platform:URI items, each with a platform"),
}
ATTRIBUTE_CHECKS = {key: check for key, (check, _) in ATTRIBUTE_RULES.items()}


def attribute_problems(attributes: Mapping[str, Setting], keypath: str) -> list[ConfigError]:
    """Every GlideinWMS variable of ``attributes`` set to a value GlideinWMS does not accept."""
    errors = []
    for key, setting in attributes.items():
        check = ATTRIBUTE_CHECKS.get(key)
        why = check(setting.value) if check is not None else ""
        if why:
            errors.append(ConfigError(f"{setting.at}: {keypath}.{key}",
                                      f"{shown(setting.value)}: {why}"))
    return errors


def negotiation_problems(entry: EntryConfig, keypath: str) -> list[ConfigError]:
    """The entry's own Frontend and Factory modes, when both are set and cannot meet."""
    use, require = (entry.attributes.get(key) for key in (mode.FRONTEND_KEY, mode.FACTORY_KEY))
    if use is None or require is None or any(
            ATTRIBUTE_CHECKS[key](item.value) for key, item in
            ((mode.FRONTEND_KEY, use), (mode.FACTORY_KEY, require))):
        return []
    outcome, reason = mode.negotiate(use.value.strip().upper() or "DISABLE_GWMS",
                                     require.value.strip().upper() or "OPTIONAL")
    if outcome is not Mode.FAIL:
        return []
    return [ConfigError(f"{require.at}: {keypath}.attributes.{mode.FACTORY_KEY}",
                        f"{reason} (the Frontend's value is set at {use.at})")]


def settings_problems(settings: Mapping[str, Mapping[str, Setting]],
                      declarations: Mapping[str, Options | None],
                      keypath: str = "settings", columns: bool = False,
                      describe: Callable[[str], str] | None = None) -> list[ConfigError]:
    """Every setting of ``settings`` (plugin -> key -> Setting) its plugin's declaration
    refuses; plugins without a declaration (or not known) are not checked here.
    ``describe(plugin)``, when given, leads each message (as a plugin's own failure does)."""
    errors = []
    for plugin, values in settings.items():
        declared = declarations.get(plugin)
        if declared is not None:
            found = declared.problems(plugin, values, keypath, columns)
            errors += ([ConfigError("", f"{describe(plugin)}: {error}") for error in found]
                       if describe is not None else found)
    return errors


def section_problems(section: Section, keypath: str,
                     declarations: Mapping[str, Options | None]) -> list[ConfigError]:
    """A file's section (``defaults`` or an entry's own) checked as written."""
    return [*settings_problems(section.settings, declarations, f"{keypath}.settings", True),
            *attribute_problems(section.attributes, f"{keypath}.attributes")]


def entry_problems(entry: EntryConfig, declarations: Mapping[str, Options | None],
                   describe: Callable[[str], str] | None = None,
                   given: Container[str] = ()) -> list[ConfigError]:
    """One entry's merged configuration checked: what the setup on the node checks first.
    ``given``: the keys glidein_config sets, whose ``attributes`` are not used (nor checked:
    the mode plugin judges the values in effect)."""
    used = {key: setting for key, setting in entry.attributes.items() if key not in given}
    return [*settings_problems(entry.settings, declarations, describe=describe),
            *attribute_problems(used, "attributes"),
            *negotiation_problems(dataclasses.replace(entry, attributes=used), "entry")]


def config_problems(config: FactoryConfig, declarations: Mapping[str, Options | None],
                    known_plugins: Iterable[str],
                    optional: Container[str] = ()) -> list[ConfigError]:
    """Every file's sections, every entry merged, and every plugin name (but the ``optional``
    ones, which may be missing), checked."""
    known = sorted(set(known_plugins))
    errors = [*config.doubts, *section_problems(config.defaults, "defaults", declarations)]
    errors += negotiation_problems(config.entry(""), "defaults")
    for name, (section, _) in config.entries.items():
        errors += section_problems(section, f"entries.{name}", declarations)
        errors += negotiation_problems(config.entry(name), f"entries.{name}")
    for name, where in config.plugin_references():
        if name not in known and name not in optional:
            errors.append(ConfigError(where, f"unknown plugin {name!r}{suggest(name, known)} "
                                             f"(known: {', '.join(known)})"))
    return sorted(_unique(errors), key=position)


def position(error: ConfigError) -> tuple[str, int, int]:
    """``(file, line, column)`` of an error, to list them in the order of the files."""
    match = re.match(r"(.*?):(\d+)(?::(\d+))?(?::|$)", error.where)
    if match is None:
        return (error.where, 0, 0)
    return (match.group(1), int(match.group(2)), int(match.group(3) or 0))


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    """Each message once (a value in ``defaults`` is checked once, not once per entry)."""
    seen: set[str] = set()
    kept = []
    for error in errors:
        if str(error) not in seen:
            seen.add(str(error))
            kept.append(error)
    return kept


@dataclass
class Survey:
    """The plugins a config names, loaded to learn their declarations (for ``check-config``,
    ``pack`` and ``config show``; the setup uses the plugins it registered)."""

    declarations: dict[str, Options | None] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # warnings: not errors


def survey(config: FactoryConfig) -> Survey:
    """Every built-in, and every plugin the config names (loaded as the setup loads them)."""
    from glidein_plugins.engine import manager  # noqa: PLC0415 - pluggy, only when needed

    names = sorted({name for name, _ in config.plugin_references()})
    plugins = manager.build(EntryConfig("check-config", enable=tuple(names),
                                        directories=config.directories()), {})
    found = Survey({**builtin_declarations(), **registered_declarations(plugins.manager)})
    found.known = (set(BUILTINS) | set(plugins.info) | set(manager.drop_ins(config.directories()))
                   | (set(manager.entry_points()) if set(names) - set(BUILTINS) else set()))
    found.notes = [f"warning: {problem}" for problem in plugins.problems
                   if problem.name in found.known]
    for section in config.sections():
        for plugin, where in section.settings_where.items():
            if plugin in found.known and found.declarations.get(plugin) is None:
                found.notes.append(f"warning: {where}: plugin {plugin!r} declares no settings "
                                   f"({ATTRIBUTE} = Options(...)): they are not checked")
    found.notes = list(dict.fromkeys(found.notes))
    return found


def plugin_problems(config: FactoryConfig) -> list[ConfigError]:
    """What each entry's plugin lists do at setup (the defaults alone, for any other entry):
    a required plugin that is disabled or cannot be loaded, no plugin left to decide the
    Singularity mode. (An unknown name is reported by ``config_problems``.)"""
    from glidein_plugins.engine import manager  # noqa: PLC0415 - pluggy, only when needed

    errors = []
    for name in ["", *config.entries]:
        section, where = config.entries[name] if name else (config.defaults, "")
        keypath = f"entries.{name}.plugins" if name else "defaults.plugins"
        plugins = manager.build(config.entry(name), {})
        lists = [*section.lists["required"], *config.defaults.lists["required"]]
        for problem in plugins.problems:
            if problem.fatal and "unknown plugin" not in problem.message:
                at = next((item.where for item in lists if item.value == problem.name),
                          where or keypath)
                errors.append(ConfigError(at, f"{problem} (the setup would fail)"))
        disabled = [item.where for item in section.lists["disable"] if item.value == "mode"]
        if (disabled or not name) and not plugins.manager.hook.glidein_mode_negotiate \
                .get_hookimpls():
            errors.append(ConfigError(disabled[0] if disabled else keypath, (
                "no plugin left to decide the Singularity mode (the built-in 'mode' is "
                "disabled): every setup would fail")))
    return errors


def check(config: FactoryConfig) -> tuple[list[ConfigError], list[str]]:
    """``(errors, warnings)`` for a loaded config: what ``check-config`` and ``pack`` report."""
    found = survey(config)
    optional = {name for name, (_, is_optional) in other_plugins(config).items()
                if is_optional and name not in found.known}
    errors = config_problems(config, found.declarations, found.known, optional)
    notes = [f"warning: {where}: optional plugin {name!r} is not installed here: entries "
             "that enable it run without it" for name, where in config.plugin_references()
             if name in optional]
    return (sorted(_unique([*errors, *plugin_problems(config)]), key=position),
            [*found.notes, *dict.fromkeys(notes)])
