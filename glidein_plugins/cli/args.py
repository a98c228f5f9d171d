"""What several commands share: the factory config files, the entry name, a usage error."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from glidein_plugins.config import options
from glidein_plugins.config.model import FactoryConfig

CONFIG_DIR_ENV = "GLIDEIN_PLUGINS_CONFIG_DIR"


def config_files(args: argparse.Namespace) -> list[Path]:
    """``--config`` files, then every ``*.yaml`` of ``--config-dir`` (sorted).

    A config dir that is not a directory is passed on as a file, so that loading it reports
    the problem (a missing dir must not silently mean "defaults only").
    """
    files = [Path(path) for path in args.config or []]
    directory = args.config_dir or os.environ.get(CONFIG_DIR_ENV)
    if directory:
        path = Path(directory)
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return files


def entry_name(args: argparse.Namespace, config: FactoryConfig) -> str:
    """``--entry``, checked against the entries the config defines: a near miss of one is a
    usage error (exit 2, with a did-you-mean); another name gets the defaults, said on stderr."""
    name: str = args.entry
    if name in config.entries or not config.entries:
        return name
    hint = options.suggest(name, config.entries)
    if hint:
        usage_error(f"--entry {name!r} is not an entry of the config{hint}")
    if getattr(args, "verbose", 0) or args.command != "run":
        print(f"glidein-plugins: note: no section for entry {name!r} in the config: its "
              "defaults apply", file=sys.stderr)
    return name


def usage_error(message: str) -> NoReturn:
    print(f"glidein-plugins: error: {message}", file=sys.stderr)
    raise SystemExit(2)
