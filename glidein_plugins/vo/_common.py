"""What the reference VO plugins share: settings checked against their defaults (a wrong one is
a Config failure naming file:line and key), and images checked the way the built-in ``images``
plugin checks its own (restrictions, CVMFS rebasing and real paths, existence)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from glidein_plugins import paths
from glidein_plugins.builtin import images as builtin_images
from glidein_plugins.builtin.discovery import cvmfs_root
from glidein_plugins.context import Context
from glidein_plugins.errors import FailureType, GlideinFailure
from glidein_plugins.images import rebase_cvmfs, under
from glidein_plugins.results import Image

Check = Callable[[Any], str]  # '' when the value is fine, else what was expected


def seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        return "a positive number of seconds"
    return ""


def boolean(value: Any) -> str:
    return "" if isinstance(value, bool) else "true or false"


def integer(value: Any) -> str:
    return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"


def path_or_empty(value: Any) -> str:
    return "" if isinstance(value, str) and (value == "" or value.startswith("/")) else \
        "an absolute path (or '' for none)"


def strings(value: Any) -> str:
    ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return "" if ok else "a list of strings"


def settings(context: Context, plugin: str, defaults: Mapping[str, Any],
             checks: Mapping[str, Check]) -> dict[str, Any]:
    """The entry's settings for ``plugin`` over ``defaults``, each checked."""
    values = dict(defaults)
    for key, setting in context.entry.settings.get(plugin, {}).items():
        where = f"{setting.where}: settings.{plugin}.{key}"
        if key not in defaults:
            raise GlideinFailure(FailureType.CONFIG, f"{where}: unknown setting (expected one "
                                 f"of: {', '.join(defaults)})")
        expected = checks[key](setting.value)
        if expected:
            raise GlideinFailure(FailureType.CONFIG,
                                 f"{where}: expected {expected}, got {setting.value!r}")
        values[key] = setting.value
    return values


def where(context: Context, plugin: str, key: str) -> str:
    """``file:line: settings.plugin.key`` (``default`` when the entry does not set it)."""
    setting = context.entry.settings.get(plugin, {}).get(key)
    return f"{setting.where if setting is not None else 'default'}: settings.{plugin}.{key}"


def usable_images(context: Context, wanted: Sequence[tuple[str, str]], source: str,
                  timeout: float) -> list[Image]:
    """The ``(platform, uri)`` images that pass the built-in ``images`` plugin's checks, CVMFS
    ones replaced by their real paths; each refusal is a trace line with the reason."""
    root = cvmfs_root(context).rstrip("/") or "/cvmfs"
    allowed = builtin_images.restrictions(context)
    candidates = []
    for platform, configured in wanted:
        uri = rebase_cvmfs(configured, root)
        why = builtin_images.refusal(uri, allowed, root)
        if why:
            context.note(f"{platform}: {configured} ({source}) refused: {why}", "warning")
        else:
            candidates.append((platform, uri))
    resolved = builtin_images.resolve(context, [uri for _, uri in candidates if under(uri, root)],
                                      root, timeout)
    real = {uri: resolved.real.get(uri) or uri for _, uri in candidates}
    local = [path for path in real.values() if path.startswith("/")]
    found = paths.inspect(local, timeout, context.quiet_run, split_under=[root])
    usable = []
    for platform, uri in candidates:
        image = Image(platform, real[uri], source if real[uri] == uri else
                      f"{source}, configured as {uri}")
        why = found[image.uri].reason if image.uri in found else ""
        why = why or builtin_images.refusal(image.uri, allowed, root) or \
            builtin_images.advertisable(image)
        if why:
            context.note(f"{platform}: {image.uri} ({source}) unusable: {why}", "warning")
        else:
            context.note(f"{platform}: {image.uri} ({source}) usable")
            usable.append(image)
    return usable
