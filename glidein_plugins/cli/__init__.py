"""The ``glidein-plugins`` command (argparse, standard library only).

Exit status: 0 all is well, 1 a check failed (a config problem, a failed setup or dry run), 2 a
usage error. Output piped into a command that stops reading early (``run | head``) is no error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from glidein_plugins import __version__
from glidein_plugins._where import INSTALL_DIR
from glidein_plugins.cli import report_text
from glidein_plugins.config import factory_config, options
from glidein_plugins.config.model import FactoryConfig
from glidein_plugins.engine import config_check, manager, registry
from glidein_plugins.errors import Failure, FailureType, InputError
from glidein_plugins.node import commands
from glidein_plugins.protocol.glideinwms import glidein_config, result_xml
from glidein_plugins.runs.session import run_setup

CONFIG_DIR_ENV = "GLIDEIN_PLUGINS_CONFIG_DIR"


def _config_files(args: argparse.Namespace) -> list[Path]:
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


def cmd_setup(args: argparse.Namespace) -> int:
    """GlideinWMS custom-script mode: ``setup glidein_config ID``."""
    outcome = run_setup(Path(args.glidein_config), args.id, _config_files(args))
    report_text.print_setup(outcome, sys.stdout)
    return outcome.report.exit_code


def _entry_name(args: argparse.Namespace, config: FactoryConfig) -> str:
    """``--entry``, checked against the entries the config defines: a near miss of one is a
    usage error (exit 2, with a did-you-mean); another name gets the defaults, said on stderr."""
    name: str = args.entry
    if name in config.entries or not config.entries:
        return name
    hint = options.suggest(name, config.entries)
    if hint:
        _usage_error(f"--entry {name!r} is not an entry of the config{hint}")
    if getattr(args, "verbose", 0) or args.command != "run":
        print(f"glidein-plugins: note: no section for entry {name!r} in the config: its "
              "defaults apply", file=sys.stderr)
    return name


def _usage_error(message: str) -> NoReturn:
    print(f"glidein-plugins: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def cmd_run(args: argparse.Namespace) -> int:
    """A dry run on this node in a temporary glidein work dir."""
    overrides = _parse_sets(args.set or [])
    config, _ = factory_config.load_checked(_config_files(args))
    _entry_name(args, config)
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
        outcome = run_setup(Path("glidein_config"), "entry", _config_files(args), work_dir)
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
            _usage_error(f"--set expects KEY=VALUE (a glidein_config key and a one-line value), "
                         f"got {item!r}: {exc}")
        values[key] = value
    return values


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins an entry would run, their distribution and hooks."""
    config = factory_config.load(_config_files(args))
    entry = config.entry(_entry_name(args, config))
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
        _usage_error("check-config needs a FILE (or --config-dir DIR)")
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

    config = factory_config.load(_config_files(args))
    entry = config.entry(_entry_name(args, config))
    plugins = manager.build(entry, {})
    declarations = registry.registered_declarations(plugins.manager)
    sets = {}
    for item in args.set or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            _usage_error(f"--set expects KEY=VALUE or PLUGIN.KEY=VALUE, got {item!r}")
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


def cmd_periodic(args: argparse.Namespace) -> int:
    """GlideinWMS periodic script (startd cron): print ``NAME = value`` lines; always exit 0."""
    from glidein_plugins.runs import periodic  # noqa: PLC0415 - only this command needs it

    return periodic.run(Path(args.glidein_config), args.id, _config_files(args), args.budget,
                        out=sys.stdout, log=sys.stderr)


def cmd_wrap(args: argparse.Namespace) -> int:
    """The job wrapper: start ``JOB ARGS...`` in its container (or as it is), as
    ``hooks/glidein_plugins_wrapper.sh`` does; ``--shell`` prints the plan for ``eval``."""
    from glidein_plugins.jobstart import wrap  # noqa: PLC0415 - only this command needs it

    job = list(args.job[1:] if args.job[:1] == ["--"] else args.job)
    if not job:
        print("glidein-plugins: error: wrap needs the job's command: wrap [OPTIONS] -- JOB "
              "[ARGS...]", file=sys.stderr)
        return 2
    package_dir = str(Path(INSTALL_DIR).resolve())
    result = wrap.decide(job, os.environ, args.state or "", args.wrapper or "", package_dir)
    if isinstance(result, int):
        return 1
    if args.shell:
        sys.stdout.flush()
        sys.stdout.buffer.write(result.shell(os.environ))
        return 0
    try:
        wrap.execute(result, os.environ)
    except OSError as exc:
        print(f"glidein-plugins: error: cannot run {result.argv[0]}: {exc.strerror or exc}",
              file=sys.stderr)
    return 127


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

    config = factory_config.load(_config_files(args))
    entry = config.entry(_entry_name(args, config))
    directory = os.path.abspath(args.factory_dir)
    layout = factory_xml.Layout(
        tarball=args.tarball or os.path.join(directory, pack.tarball_name()),
        unpacked_dir=os.path.join(directory, "glidein_plugins"))
    sys.stdout.write(factory_xml.render(entry, layout))
    return 0


EXIT_CODES = """exit status:
  0  all is well
  1  a check failed: a config problem, a setup or dry run that failed
  2  usage error (unknown option, malformed --set, misspelt --entry)"""


def _command(sub: Any, name: str, summary: str, description: str,
             examples: Sequence[str] = (), *, verbose: str = "") -> argparse.ArgumentParser:
    """A sub-command with its one-line summary, description, examples, and ``-v`` when
    ``verbose`` says what it adds (quiet by default)."""
    epilog = ("examples:\n" + "".join(f"  {line}\n" for line in examples) + "\n"
              if examples else "") + EXIT_CODES
    command: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=textwrap.fill(description, 78), epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if verbose:
        command.add_argument("-v", "--verbose", action="count", default=0, help=verbose)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glidein-plugins",
        description="Find, prove and advertise what a GlideinWMS worker node can run.",
        epilog="Run 'glidein-plugins COMMAND --help' for a command's options and examples.\n\n"
               + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _node_commands(sub)
    _operator_commands(sub)
    return parser


def with_config(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    command.add_argument("--config", action="append", metavar="FILE",
                         help="factory config YAML (repeatable), merged over the defaults")
    command.add_argument("--config-dir", metavar="DIR",
                         help=f"load every *.yaml in DIR (default: ${CONFIG_DIR_ENV})")
    return command


def with_entry(command: argparse.ArgumentParser, **how: Any) -> None:
    command.add_argument("--entry", metavar="NAME", **how)


def _node_commands(sub: Any) -> None:
    """What a glidein runs: setup, periodic, wrap."""
    setup = with_config(_command(
        sub, "setup", "run as a GlideinWMS setup script: setup GLIDEIN_CONFIG [ID]",
        "Run every phase for this glidein, publish the attributes into glidein_config and "
        "condor_vars.lst, and write the result XML (otrb_output.xml) in the current "
        "directory, as a GlideinWMS custom script does.",
        ["glidein-plugins setup glidein_config entry --config-dir factory_configs"]))
    setup.add_argument("glidein_config", help="path of glidein_config (relative to the cwd)")
    setup.add_argument("id", nargs="?", default="entry", help="main, entry, client, ...")
    setup.set_defaults(func=cmd_setup)

    periodic = with_config(_command(
        sub, "periodic", "startd-cron re-check (runtime, CVMFS, disk): periodic GLIDEIN_CONFIG",
        "Re-check what setup proved and print NAME = value ClassAd lines for the startd cron; "
        "always exits 0 (a problem is said in the _OK and _REASON attributes).",
        ["glidein-plugins periodic /path/to/glidein_config --budget 30"]))
    periodic.add_argument("glidein_config", help="path of glidein_config")
    periodic.add_argument("id", nargs="?", default="entry", help="main, entry, client, ...")
    periodic.add_argument("--budget", type=float, metavar="SECONDS",
                          help="total time for the checks (default: "
                               "$GLIDEIN_PLUGINS_PERIODIC_BUDGET in glidein_config, else 60)")
    periodic.set_defaults(func=cmd_periodic)

    wrap = _command(
        sub, "wrap", "the job wrapper: start a job in its container: wrap -- JOB [ARGS...]",
        "Start JOB in the container setup prepared (or as it is), as "
        "hooks/glidein_plugins_wrapper.sh does; --shell prints the plan for eval.",
        ["glidein-plugins wrap -- ./job.sh arg1",
         "glidein-plugins wrap --state .glidein_plugins/state.json --shell -- ./job.sh"])
    wrap.add_argument("--state", metavar="FILE",
                      help="the setup state (default: the machine ad's "
                           "GLIDEIN_PLUGINS_STATE; never the job's environment)")
    wrap.add_argument("--wrapper", metavar="FILE",
                      help="a wrapper script to run again inside the container, before the job")
    wrap.add_argument("--shell", action="store_true",
                      help="print the decision as shell commands (for eval) instead of running it")
    wrap.add_argument("job", nargs=argparse.REMAINDER, help="-- JOB [ARGS...]")
    wrap.set_defaults(func=cmd_wrap)



def _operator_commands(sub: Any) -> None:
    """What an operator runs: run, plugins, check-config, config, hooks, pack, factory-xml."""
    run = with_config(_command(
        sub, "run", "dry run on this node, print what it offers",
        "Run the setup on this node in a temporary glidein work dir (nothing is published) "
        "and print the result: mode, runtime candidates, images, binds, attributes, and the "
        "warnings of the decision trace (-v: every decision).",
        ["glidein-plugins run", "glidein-plugins run --config site.yaml --entry CE_ONE -v",
         "glidein-plugins run --set GLIDEIN_Singularity_Use=REQUIRED --json"],
        verbose="also every decision of the trace, the absent default binds, and the other "
                "names each attribute is published under"))
    with_entry(run, default="default", help="factory entry name (default: default)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a glidein_config value (repeatable)")
    run.add_argument("--json", action="store_true", help="print JSON instead of tables")
    run.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    run.set_defaults(func=cmd_run)

    plugins = with_config(_command(
        sub, "plugins", "list the plugins an entry runs",
        "List the plugins an entry registers (built-in, entry point or site drop-in), their "
        "distribution and hooks, what it blocks, and what could not be loaded. Exit 1 when a "
        "required plugin cannot be used.",
        ["glidein-plugins plugins", "glidein-plugins plugins --config site.yaml --entry CE_ONE"]))
    with_entry(plugins, default="default", help="factory entry name (default: default)")
    plugins.set_defaults(func=cmd_plugins)

    check = _command(
        sub, "check-config", "validate factory config YAML files before deploy",
        "Check factory config files as the glideins will load them (in order, over the "
        "embedded defaults): YAML syntax, structure and limits, every plugin setting against "
        "the plugin's declaration, the GlideinWMS values set in attributes, plugin names, "
        "entries defined twice. Every problem is reported at once, as "
        "FILE:LINE:COL: KEY: WHY, with a suggestion for a misspelt name.",
        ["glidein-plugins check-config factory_configs/site.yaml",
         "glidein-plugins check-config --config-dir factory_configs"],
        verbose="also list the entries each file defines")
    check.add_argument("files", nargs="*", metavar="FILE", help="factory config YAML files")
    check.add_argument("--config-dir", metavar="DIR", help="every *.yaml in DIR, after FILEs")
    check.set_defaults(func=cmd_check_config)

    config = _command(
        sub, "config", "show an entry's effective settings, or the settings reference",
        "config show: every value an entry runs with (budget, plugin lists, attributes, each "
        "plugin's settings, defaults included) and where it came from: 'default', the file "
        "and line (and whether from the entry's section or the defaults), or --set. "
        "config reference: the settings reference, generated from the plugins' declarations "
        "(docs/settings.md).",
        ["glidein-plugins config show --config site.yaml --entry CE_ONE",
         "glidein-plugins config show --entry CE_ONE --set probe.timeout=30",
         "glidein-plugins config reference > docs/settings.md"])
    config_sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = with_config(_command(
        config_sub, "show", "an entry's effective settings",
        "Every value an entry runs with (declared defaults included) and where it came from: "
        "FILE:LINE:COL (defaults) or (entries.NAME), 'default', or --set. The entry's "
        "problems, if any, follow on stderr (exit 1).",
        ["glidein-plugins config show --config-dir factory_configs --entry CE_ONE",
         "glidein-plugins config show --entry CE_ONE --set probe.timeout=30 --json"]))
    with_entry(show, default="default", help="factory entry name (default: default)")
    show.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="PLUGIN.KEY=VALUE (a YAML value) sets a plugin setting, KEY=VALUE "
                           "an attribute (repeatable)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=cmd_config_show)
    reference = _command(config_sub, "reference", "print the settings reference (Markdown)",
                         "The settings of every built-in plugin, from their declarations, and "
                         "the GlideinWMS values checked in attributes.",
                         ["glidein-plugins config reference > docs/settings.md"])
    reference.set_defaults(func=cmd_config_reference)

    hooks = _command(
        sub, "hooks", "print the hook reference (from the hook specs)",
        "Print every hook a plugin can implement, in the order the phases call them, with "
        "its arguments, result and failure policy (generated from the hook specs).",
        ["glidein-plugins hooks | less"])
    hooks.set_defaults(func=cmd_hooks)

    pack = _command(
        sub, "pack", "build the glidein tarball (reproducible gzip tar)",
        "Check the shipped factory configs (a problem stops it), then write "
        "glidein_plugins-VERSION.tar.gz: the package, hooks/, factory_configs/ (with their "
        "parsed form) and the vendored pure-Python dependencies, byte-for-byte reproducible.",
        ["glidein-plugins pack --output dist",
         "glidein-plugins pack --bytecode-for python3.9 --bytecode-for python3.12"])
    pack.add_argument("--output", default=".", metavar="DIR",
                      help="directory to write glidein_plugins-VERSION.tar.gz in (default: .)")
    pack.add_argument("--bytecode-for", action="append", metavar="PYTHON",
                      help="ship bytecode for this interpreter (repeat for several; default: "
                           "the one running pack); a glidein whose Python is one of them "
                           "skips compiling at start-up")
    pack.add_argument("--factory-configs", metavar="DIR",
                      help="ship DIR/*.yaml as the factory configuration (default: the "
                           "package's factory_configs/); the VO plugins they enable are "
                           "shipped too")
    pack.add_argument("--vendor-from", action="append", metavar="DIR",
                      help="wheels or sdists of the pluggy and PyYAML that vendor.lock pins, "
                           "for when the installed ones are other versions (repeatable)")
    pack.set_defaults(func=cmd_pack)

    fxml = with_config(_command(
        sub, "factory-xml", "print an entry's <attrs> and <files> for glideinWMS.xml",
        "Print the <attrs> and <files> elements an entry needs in the Factory's "
        "glideinWMS.xml, from its configuration.",
        ["glidein-plugins factory-xml --config-dir factory_configs --entry CE_ONE"]))
    with_entry(fxml, required=True, help="factory entry name")
    fxml.add_argument("--factory-dir", default=".", metavar="DIR",
                      help="where the factory keeps the tarball and, in DIR/glidein_plugins, "
                           "the tarball unpacked (the scripts are shipped from its hooks/; "
                           "default: .)")
    fxml.add_argument("--tarball", metavar="PATH",
                      help="the tarball's path on the factory (default: "
                           "DIR/glidein_plugins-VERSION.tar.gz)")
    fxml.set_defaults(func=cmd_factory_xml)


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # glidein_config may hold bytes that are not UTF-8: a log line must never crash on them
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    if args.command in ("setup", "periodic", "run"):
        # a probed binary's daemon (setsid) comes back to us and is killed when its command
        # ends (commands.reap_orphans); nothing changes where prctl is not available
        commands.become_subreaper()
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, where a reader gone early is caught, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`, which has all it wanted: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # last resort: a clear one-line error, and the XML in setup mode
        failure = (Failure(FailureType.CONFIG, str(exc)) if isinstance(exc, InputError) else
                   Failure(FailureType.CORRUPTION, f"internal error: {type(exc).__name__}: {exc}"))
        print(f"glidein-plugins: error: {failure.message}", file=sys.stderr)
        if args.command == "setup":
            _emergency_xml(args.id, failure, sys.stderr)
        return 1


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once: flush the output and kill the commands still
    running (all the interpreter's teardown would do for us), then skip the teardown, which
    costs a glidein tens of milliseconds for a few hundred modules and does nothing useful."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    commands.kill_all()
    os._exit(code)


def _emergency_xml(script_id: str, failure: Failure, log: TextIO) -> None:
    try:
        result_xml.write(Path.cwd(), script_id, failure, {})
    except Exception as exc:
        print(f"glidein-plugins: cannot write {result_xml.FILE_NAME}: {exc}", file=log)


if __name__ == "__main__":
    exit_now(main())
