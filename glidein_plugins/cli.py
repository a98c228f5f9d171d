"""The ``glidein-plugins`` command (argparse, standard library only)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from glidein_plugins import (
    __version__,
    commands,
    factory_config,
    glidein_config,
    manager,
    report_text,
    result_xml,
)
from glidein_plugins.builtin import BUILTINS
from glidein_plugins.errors import ConfigError, FailureType, InputError
from glidein_plugins.results import Failure
from glidein_plugins.session import run_setup

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


def cmd_run(args: argparse.Namespace) -> int:
    """A dry run on this node in a temporary glidein work dir."""
    overrides = _parse_sets(args.set or [])
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

            report_text.print_run(outcome, socket.gethostname(), sys.stdout)
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
            print(f"glidein-plugins: error: --set expects KEY=VALUE (a glidein_config key and a "
                  f"one-line value), got {item!r}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        values[key] = value
    return values


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins an entry would run, their distribution and hooks."""
    entry = factory_config.load(_config_files(args)).entry(args.entry)
    plugins = manager.build(entry, os.environ)
    report_text.print_plugins(plugins, manager.entry_points(), sys.stdout)
    return 1 if any(problem.fatal for problem in plugins.problems) else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate factory config files: syntax, keys, types, duplicates, plugin names."""
    config, errors = factory_config.load_checked([Path(path) for path in args.files])
    known = (set(BUILTINS) | set(manager.entry_points())
             | set(manager.drop_ins(config.directories())))
    errors += [ConfigError(where, f"unknown plugin {name!r} (known: {', '.join(sorted(known))})")
               for name, where in config.plugin_references() if name not in known]
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} problem(s) found", file=sys.stderr)
        return 1
    entries = len(config.entries)
    print(f"OK: {len(args.files)} file(s), {entries} entr{'y' if entries == 1 else 'ies'}")
    return 0


def cmd_periodic(args: argparse.Namespace) -> int:
    """GlideinWMS periodic script (startd cron): print ``NAME = value`` lines; always exit 0."""
    from glidein_plugins import periodic  # noqa: PLC0415 - only this command needs it

    return periodic.run(Path(args.glidein_config), args.id, _config_files(args), args.budget,
                        out=sys.stdout, log=sys.stderr)


def cmd_wrap(args: argparse.Namespace) -> int:
    """The job wrapper: start ``JOB ARGS...`` in its container (or as it is), as
    ``hooks/glidein_plugins_wrapper.sh`` does; ``--shell`` prints the plan for ``eval``."""
    from glidein_plugins import wrap  # noqa: PLC0415 - only this command needs it

    job = list(args.job[1:] if args.job[:1] == ["--"] else args.job)
    if not job:
        print("glidein-plugins: error: wrap needs the job's command: wrap [OPTIONS] -- JOB "
              "[ARGS...]", file=sys.stderr)
        return 2
    package_dir = str(Path(wrap.__file__).resolve().parent.parent)
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
    from glidein_plugins import hookref  # noqa: PLC0415 - only this command needs it

    hookref.render(sys.stdout)
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Build the glidein tarball (reproducible) and report its size."""
    from glidein_plugins import pack  # noqa: PLC0415 - only this command needs it

    try:
        packed = pack.build(Path(args.output), pythons=args.bytecode_for or None)
    except (pack.PackError, OSError) as exc:
        print(f"glidein-plugins: error: pack: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {packed.path}: {packed.size} bytes ({packed.size / 1024:.1f} KiB), "
          f"{packed.files} files, sha256 {packed.sha256}")
    print("psutil is not included (compiled): the package runs without it")
    return 0


def cmd_factory_xml(args: argparse.Namespace) -> int:
    """The entry's <attrs> and <files> for glideinWMS.xml."""
    from glidein_plugins import factory_xml, pack  # noqa: PLC0415 - only this command needs it

    entry = factory_config.load(_config_files(args)).entry(args.entry)
    directory = os.path.abspath(args.factory_dir)
    layout = factory_xml.Layout(
        tarball=args.tarball or os.path.join(directory, pack.tarball_name()),
        unpacked_dir=os.path.join(directory, "glidein_plugins"))
    sys.stdout.write(factory_xml.render(entry, layout))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glidein-plugins",
        description="Find, prove and advertise what a GlideinWMS worker node can run.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--config", action="append", metavar="FILE",
                             help="factory config YAML (repeatable), merged over the defaults")
        command.add_argument("--config-dir", metavar="DIR",
                             help=f"load every *.yaml in DIR (default: ${CONFIG_DIR_ENV})")
        return command

    setup = with_config(sub.add_parser(
        "setup", help="run as a GlideinWMS setup script: setup GLIDEIN_CONFIG [ID]"))
    setup.add_argument("glidein_config", help="path of glidein_config (relative to the cwd)")
    setup.add_argument("id", nargs="?", default="entry", help="main, entry, client, ...")
    setup.set_defaults(func=cmd_setup)

    run = with_config(sub.add_parser("run", help="dry run on this node, print what it offers"))
    run.add_argument("--entry", default="default", help="factory entry name (default: default)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="a glidein_config value (repeatable)")
    run.add_argument("--json", action="store_true", help="print JSON instead of tables")
    run.add_argument("--keep", action="store_true", help="keep the temporary work dir")
    run.set_defaults(func=cmd_run)

    plugins = with_config(sub.add_parser("plugins", help="list the plugins an entry runs"))
    plugins.add_argument("--entry", default="default")
    plugins.set_defaults(func=cmd_plugins)

    check = sub.add_parser("check-config", help="validate factory config YAML files")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    periodic = with_config(sub.add_parser(
        "periodic", help="startd-cron re-check (runtime, CVMFS, disk): periodic GLIDEIN_CONFIG"))
    periodic.add_argument("glidein_config", help="path of glidein_config")
    periodic.add_argument("id", nargs="?", default="entry", help="main, entry, client, ...")
    periodic.add_argument("--budget", type=float, metavar="SECONDS",
                          help="total time for the checks (default: "
                               "$GLIDEIN_PLUGINS_PERIODIC_BUDGET in glidein_config, else 60)")
    periodic.set_defaults(func=cmd_periodic)

    wrap = sub.add_parser(
        "wrap", help="the job wrapper: start a job in its container: wrap -- JOB [ARGS...]")
    wrap.add_argument("--state", metavar="FILE",
                      help="the setup state (default: the machine ad's "
                           "GLIDEIN_PLUGINS_STATE; never the job's environment)")
    wrap.add_argument("--wrapper", metavar="FILE",
                      help="a wrapper script to run again inside the container, before the job")
    wrap.add_argument("--shell", action="store_true",
                      help="print the decision as shell commands (for eval) instead of running it")
    wrap.add_argument("job", nargs=argparse.REMAINDER, help="-- JOB [ARGS...]")
    wrap.set_defaults(func=cmd_wrap)

    hooks = sub.add_parser("hooks", help="print the hook reference (from the hook specs)")
    hooks.set_defaults(func=cmd_hooks)

    pack = sub.add_parser("pack", help="build the glidein tarball (reproducible gzip tar)")
    pack.add_argument("--output", default=".", metavar="DIR",
                      help="directory to write glidein_plugins-VERSION.tar.gz in (default: .)")
    pack.add_argument("--bytecode-for", action="append", metavar="PYTHON",
                      help="ship bytecode for this interpreter (repeat for several; default: "
                           "the one running pack); a glidein whose Python is one of them "
                           "skips compiling at start-up")
    pack.set_defaults(func=cmd_pack)

    fxml = with_config(sub.add_parser(
        "factory-xml", help="print an entry's <attrs> and <files> for glideinWMS.xml"))
    fxml.add_argument("--entry", required=True, help="factory entry name")
    fxml.add_argument("--factory-dir", default=".", metavar="DIR",
                      help="where the factory keeps the tarball and, in DIR/glidein_plugins, "
                           "the tarball unpacked (the scripts are shipped from its hooks/; "
                           "default: .)")
    fxml.add_argument("--tarball", metavar="PATH",
                      help="the tarball's path on the factory (default: "
                           "DIR/glidein_plugins-VERSION.tar.gz)")
    fxml.set_defaults(func=cmd_factory_xml)
    return parser


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
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
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
