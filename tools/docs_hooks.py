"""MkDocs hooks (``hooks:`` in mkdocs.yml): the pages made when the site is built.

- ``plugins/hooks.md``, the hook reference, generated from the hook specs' docstrings and the
  policies beside them (``glidein_plugins.engine.hookref.markdown``): never written by hand, so it
  cannot
  drift from the code;
- ``settings.md`` and ``migration.md``, while docs/ has no such page: a short page saying where
  the subject is documented.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOOK_REFERENCE = "plugins/hooks.md"
PLACEHOLDERS = {
    "settings.md": """\
# Settings reference

Each plugin's settings (`settings: {<plugin>: {...}}` in the factory configuration) are listed,
with their defaults and meaning, in the operator guide's
[plugin settings](operator/configure.md#plugin-settings); the `gpus` plugin's in
[GPUs and libraries](admin/gpus.md#settings), the reference VO plugins' in
[Reference VO plugins](plugins/reference.md). `glidein-plugins check-config` checks them.
""",
    "migration.md": """\
# Migration from GlideinWMS

An entry that used GlideinWMS's `singularity_setup.sh` switches without changing its attributes:
glidein_plugins reads the same variables (see [Deploying on a factory](operator/deploy.md) and
the [input variables](operator/configure.md#input-variables)) and publishes the same attribute
names (see [Attributes](admin/attributes.md)). Where it deliberately behaves differently, and
why: [Design decisions and deviations](design.md).
""",
}


def pages(existing: set[str]) -> dict[str, str]:
    """``docs/`` path -> Markdown of every page to generate, given the paths docs/ has."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the checkout's package, not whatever is installed
    from glidein_plugins.engine import hookref  # noqa: PLC0415 - after the path is set

    made = {HOOK_REFERENCE: hookref.markdown()}
    made.update({path: text for path, text in PLACEHOLDERS.items() if path not in existing})
    return made


def on_files(files: Any, config: Any) -> Any:
    """MkDocs' ``on_files`` event: add the generated pages to the site's files."""
    from mkdocs.structure.files import File  # noqa: PLC0415 - only mkdocs runs this

    existing = {file.src_uri for file in files}
    for path, text in pages(existing).items():
        if path in existing:
            raise ValueError(f"docs/{path} is generated at build time: remove the file")
        files.append(File.generated(config, path, content=text))
    return files
