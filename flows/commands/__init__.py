"""``redweb`` subcommands: each a ``add_arguments(parser)`` + ``run(args, config)`` that calls one flow."""
from __future__ import annotations

import argparse
from typing import Any


def flow_inputs(args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """The shared flow inputs from the shared CLI options: ``config_file``, ``data_root`` and ``overrides``.

    ``options``: this command's own flags as ``{"section.field": value}``; those that are None (not
    given) are left out, the others win over the user's ``--set``.
    """
    from flows.config import override_items

    overrides = dict(override_items(getattr(args, "overrides", None) or []))
    overrides.update({k: v for k, v in options.items() if v is not None})
    return {"config_file": getattr(args, "config", None), "data_root": getattr(args, "data_root", None),
            "overrides": overrides}
