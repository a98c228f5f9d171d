"""The command line's grammar: every sub-command with its options, help and examples.

Each sub-command names its handler as ``MODULE.FUNCTION`` under ``glidein_plugins.cli``
(``handler``), imported only when that command runs: ``setup`` never loads what ``pack`` needs."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any

from glidein_plugins._version import __version__
from glidein_plugins.cli.args import CONFIG_DIR_ENV

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
    setup.set_defaults(handler="node_commands.cmd_setup")

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
    periodic.set_defaults(handler="node_commands.cmd_periodic")

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
    wrap.set_defaults(handler="node_commands.cmd_wrap")


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
    run.set_defaults(handler="operator_commands.cmd_run")

    plugins = with_config(_command(
        sub, "plugins", "list the plugins an entry runs",
        "List the plugins an entry registers (built-in, entry point or site drop-in), their "
        "distribution and hooks, what it blocks, and what could not be loaded. Exit 1 when a "
        "required plugin cannot be used.",
        ["glidein-plugins plugins", "glidein-plugins plugins --config site.yaml --entry CE_ONE"]))
    with_entry(plugins, default="default", help="factory entry name (default: default)")
    plugins.set_defaults(handler="operator_commands.cmd_plugins")

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
    check.set_defaults(handler="operator_commands.cmd_check_config")

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
    show.set_defaults(handler="operator_commands.cmd_config_show")
    reference = _command(config_sub, "reference", "print the settings reference (Markdown)",
                         "The settings of every built-in plugin, from their declarations, and "
                         "the GlideinWMS values checked in attributes.",
                         ["glidein-plugins config reference > docs/settings.md"])
    reference.set_defaults(handler="operator_commands.cmd_config_reference")

    hooks = _command(
        sub, "hooks", "print the hook reference (from the hook specs)",
        "Print every hook a plugin can implement, in the order the phases call them, with "
        "its arguments, result and failure policy (generated from the hook specs).",
        ["glidein-plugins hooks | less"])
    hooks.set_defaults(handler="operator_commands.cmd_hooks")

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
    pack.set_defaults(handler="operator_commands.cmd_pack")

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
    fxml.set_defaults(handler="operator_commands.cmd_factory_xml")
