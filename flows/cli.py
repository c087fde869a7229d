"""`redweb`: one console script, one subcommand per stage.

Each subcommand lives in ``flows/commands/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args, config) -> int``. This module parses the shared options, builds and validates the
config once, and dispatches. Command modules keep heavy imports inside ``run``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, str] = {
    "demo": "run the whole DAG offline on the embedded samples",
    "ingest": "crawl or read stereo photos into the catalog",
    "process": "turn stereo pairs into relative depth maps",
    "status": "counts per state and reason",
    "review": "serve the annotators' web UI",
    "export": "write accepted maps as a ReDWeb-layout dataset",
    "train": "train a monocular relative-depth network",
    "evaluate": "score predictions or a checkpoint on a benchmark",
    "predict": "predict relative depth for images",
    "audit": "measure the process configuration on real stereo with ground truth",
    "finetune": "fine-tune on metric depth (NYUv2) or segmentation (VOC)",
    "experiment": "run a grid of training + evaluation settings into one table",
    "release": "publish a versioned dataset release with a datasheet",
    "withdraw": "withdraw items by hand (takedown request)",
    "revalidate": "re-check sources; withdraw deleted, private or re-licensed photos",
}


def _global_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("shared options")
    g.add_argument("--config", metavar="FILE", help="YAML config file (see README: Configuration)")
    g.add_argument("--data-root", metavar="DIR", help="data root (default ./data, env REDWEB_DATA_ROOT)")
    g.add_argument("--set", metavar="SECTION.FIELD=VALUE", action="append", default=[], dest="overrides",
                   help="override one config field, e.g. --set process.correspondence=flownet2 (repeatable)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog="redweb", description="Relative-depth datasets from web stereo photos, and networks trained on them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # none: main lists them
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"flows.commands.{name}")
        except ModuleNotFoundError as exc:  # a stage not built into this checkout
            if exc.name != f"flows.commands.{name}":
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """Usage, then every command this checkout has with its one-line help (``redweb`` with no command)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = list(sub.choices)
    width = max(map(len, names), default=0)
    lines = [f"usage: {parser.prog} COMMAND [options]   ({parser.prog} COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {COMMANDS[name]}" for name in names]
    return "\n".join(lines) + "\n"


def _prefect_defaults() -> None:
    """A busy 2-core machine needs more than Prefect's 20 s to start its temporary API server."""
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline machines: no telemetry errors


def main(argv: list[str] | None = None) -> int:
    from flows.config import ConfigError, load_config, redact_secrets_in_logs

    _prefect_defaults()

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `redweb` alone: what can it do?
        sys.stdout.write(command_list(parser))
        return 0 if not (sys.argv[1:] if argv is None else argv) else 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, data_root=args.data_root, overrides=args.overrides)
    except ConfigError as exc:
        print(f"redweb: {exc}", file=sys.stderr)
        return 2
    redact_secrets_in_logs(config)  # -v logs every library at DEBUG; none of them may print a secret
    return int(args._module.run(args, config) or 0)


if __name__ == "__main__":
    sys.exit(main())
