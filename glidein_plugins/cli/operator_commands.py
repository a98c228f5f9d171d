"""The commands an operator runs: ``run``, ``plugins``, ``check-config``, ``config``, ``hooks``,
``pack`` and ``factory-xml``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from glidein_plugins.cli import report_text
from glidein_plugins.cli.args import config_files, entry_name, usage_error
from glidein_plugins.config import factory_config
from glidein_plugins.engine import config_check, manager, registry
from glidein_plugins.errors import InputError
from glidein_plugins.protocol.glideinwms import glidein_config
from glidein_plugins.runs.session import run_setup


def cmd_run(args: argparse.Namespace) -> int:
    """A dry run on this node in a temporary glidein work dir."""
    overrides = _parse_sets(args.set or [])
    config, _ = factory_config.load_checked(config_files(args))
    entry_name(args, config)
    work_dir = Path(tempfile.mkdtemp(prefix="glidein-plugins-run-"))
    try:
        (work_dir / "condor_vars.lst").write_text("")
        values = {
            "GLIDEIN_Entry_Name": args.entry,
            "GLIDEIN_Name": "dry-run",
            "GLIDEIN_Factory": "dry-run",
            "GLIDECLIENT_Name": "dry-run",
            "GLIDEIN_WORK_DIR": str(work_dir),
            "GLIDEIN_ENTRY_WORK_DIR": str(work_dir),
            "TMP_DIR": str(work_dir / "tmp"),
            "CONDOR_VARS_FILE": str(work_dir / "condor_vars.lst"),
            # a Frontend that would like containers, so the dry run shows what the node offers
            "GLIDEIN_Singularity_Use": "PREFERRED",
            **overrides,
        }
        (work_dir / "tmp").mkdir()
        (work_dir / "glidein_config").write_text(
            "".join(f"{glidein_config.format_line(key, value)}\n" for key, value in values.items()),
            encoding="utf-8", errors="surrogateescape")
        outcome = run_setup(Path("glidein_config"), "entry", config_files(args), work_dir)
        if args.json:
            json.dump(report_text.as_json(outcome), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            import socket  # noqa: PLC0415 - only this command needs it

            report_text.print_run(outcome, socket.gethostname(), sys.stdout, args.verbose > 0)
        return outcome.report.exit_code
    finally:
        if args.keep:
            print(f"work dir kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def _parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items; anything that would not make a glidein_config line exits 2."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError("no '='")
            glidein_config.format_line(key, value)
        except ValueError as exc:
            usage_error(f"--set expects KEY=VALUE (a glidein_config key and a one-line value), "
                         f"got {item!r}: {exc}")
        values[key] = value
    return values


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins an entry would run, their distribution and hooks."""
    config = factory_config.load(config_files(args))
    entry = config.entry(entry_name(args, config))
    plugins = manager.build(entry, os.environ)
    report_text.print_plugins(plugins, manager.entry_points(), sys.stdout)
    return 1 if any(problem.fatal for problem in plugins.problems) else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate factory config files: syntax, keys, types, values, duplicates, plugin names."""
    files = [Path(path) for path in args.files]
    if args.config_dir:
        directory = Path(args.config_dir)
        files += sorted(directory.glob("*.yaml")) if directory.is_dir() else [directory]
    if not files:
        usage_error("check-config needs a FILE (or --config-dir DIR)")
    config, errors = factory_config.load_checked(files)
    meaning, warnings = config_check.check(config)
    order = {str(path): index for index, path in enumerate(files)}
    errors = sorted([*errors, *meaning], key=lambda error: (
        order.get(config_check.position(error)[0], len(order)), config_check.position(error)))
    for line in [*map(str, errors), *warnings]:
        print(line, file=sys.stderr)
    if errors:
        print(f"{report_text.plural(len(errors), 'problem')} found", file=sys.stderr)
        return 1
    print(f"OK: {report_text.plural(len(files), 'file')}, "
          f"{report_text.plural(len(config.entries), 'entry', 'entries')}")
    for path in files if args.verbose else ():
        names = [name for name, (_, where) in config.entries.items()
                 if where.startswith(f"{path}:")]
        print(f"  {path}: {report_text.plural(len(names), 'entry', 'entries')}"
              + (f": {', '.join(names)}" if names else ""))
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """An entry's effective configuration, each value with where it came from."""
    from glidein_plugins.cli import config_show  # noqa: PLC0415 - only this command needs it

    config = factory_config.load(config_files(args))
    entry = config.entry(entry_name(args, config))
    plugins = manager.build(entry, {})
    declarations = registry.registered_declarations(plugins.manager)
    sets = {}
    for item in args.set or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            usage_error(f"--set expects KEY=VALUE or PLUGIN.KEY=VALUE, got {item!r}")
        sets[key] = _yaml_value(text) if "." in key else text
    entry = config_show.with_sets(entry, sets, list(declarations))
    shown = config_show.effective(config, entry, declarations)
    if args.json:
        json.dump([{"key": item.key, "value": item.value, "source": item.source}
                   for item in shown], sys.stdout, indent=2, default=repr)
        sys.stdout.write("\n")
    else:
        print(f"Entry {entry.name!r}" + ("" if entry.name in config.entries else
                                         " (no section of its own: the defaults)"))
        report_text.table([("KEY", "VALUE", "FROM")] + [
            (item.key, json.dumps(item.value, default=repr), item.source) for item in shown],
            sys.stdout)
    problems = config_check.entry_problems(entry, declarations)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _yaml_value(text: str) -> object:
    """A ``--set`` value as YAML reads it (``30`` a number, ``[a, b]`` a list)."""
    import yaml  # noqa: PLC0415 - only this command needs it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def cmd_config_reference(args: argparse.Namespace) -> int:
    """The settings reference (Markdown), generated from the built-in plugins' declarations."""
    from glidein_plugins.cli import config_show  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(config_show.reference(
        registry.builtin_declarations(),
        {key: accepts for key, (_, accepts) in config_check.ATTRIBUTE_RULES.items()}))
    return 0


def cmd_hooks(args: argparse.Namespace) -> int:
    """The hook reference, generated from the hook specs."""
    from glidein_plugins.engine import hookref  # noqa: PLC0415 - only this command needs it

    hookref.render(sys.stdout)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Build the glidein tarball (reproducible) and report its size."""
    from glidein_plugins.tarball import pack  # noqa: PLC0415 - only this command needs it

    configs = Path(args.factory_configs) if args.factory_configs else \
        pack.source_dir("factory_configs")
    errors = config_problems(configs)
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        print(f"glidein-plugins: error: pack: {report_text.plural(len(errors), 'problem')} in "
              "the factory configs: nothing written (see glidein-plugins check-config)",
              file=sys.stderr)
        return 1
    try:
        packed = pack.build(Path(args.output), pythons=args.bytecode_for or None,
                            configs=args.factory_configs and Path(args.factory_configs),
                            vendor_from=[Path(path) for path in args.vendor_from or ()])
    except (pack.PackError, OSError) as exc:
        print(f"glidein-plugins: error: pack: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {packed.path}: {packed.size} bytes ({packed.size / 1024:.1f} KiB), "
          f"{packed.files} files, sha256 {packed.sha256}")
    print(f"vendored: {'; '.join(packed.vendored)}")
    for note in packed.notes:
        print(f"note: {note}")
    print("psutil is not included (compiled): the package runs without it")
    return 0


def config_problems(directory: Path) -> list[InputError]:
    """Every problem ``check-config`` finds in ``directory/*.yaml``, loaded as the setup hook
    loads a tarball's factory_configs/."""
    config, errors = factory_config.load_checked(sorted(directory.glob("*.yaml")))
    return [*errors, *config_check.check(config)[0]]


def cmd_factory_xml(args: argparse.Namespace) -> int:
    """The entry's <attrs> and <files> for glideinWMS.xml."""
    from glidein_plugins.config import factory_xml  # noqa: PLC0415 - only this command needs it
    from glidein_plugins.tarball import pack  # noqa: PLC0415 - only this command needs it

    config = factory_config.load(config_files(args))
    entry = config.entry(entry_name(args, config))
    directory = os.path.abspath(args.factory_dir)
    layout = factory_xml.Layout(
        tarball=args.tarball or os.path.join(directory, pack.tarball_name()),
        unpacked_dir=os.path.join(directory, "glidein_plugins"))
    sys.stdout.write(factory_xml.render(entry, layout))
    return 0
