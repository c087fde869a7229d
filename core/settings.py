"""The base of every stage's settings object, and readable errors when one does not validate.

Each stage owns one frozen :class:`Section` (``tasks/<stage>/settings.py``, ``model/config.py``,
``flows/config.py``); a default is written once, there or in the signature of the one function the
section maps onto (read with :func:`keyword_defaults`). Unknown keys are refused everywhere, and
:func:`describe_validation_error` names the wrong key and the closest valid one.
"""
from __future__ import annotations

import difflib
import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    """A frozen settings section that refuses unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def keyword_defaults(fn: Any) -> dict[str, Any]:
    """A function's keyword defaults: written once, in its signature; a settings section reads them."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def closest_key(key: str, valid: Any) -> str | None:
    """The valid key closest to a misspelt one, if one is close (difflib ratio >= 0.6)."""
    found = difflib.get_close_matches(str(key), [str(v) for v in valid], n=1, cutoff=0.6)
    return found[0] if found else None


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (its parent path)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def describe_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem: ``section.key: message``; an unknown key also names the closest valid one."""
    lines = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where = ".".join(str(x) for x in loc) or "(top level)"
        if err.get("type") == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            valid = sorted(owner.model_fields) if owner is not None else []
            hint = closest_key(loc[-1], valid) if loc else None
            parent = ".".join(str(x) for x in loc[:-1])
            msg = f"unknown key {where!r}"
            if hint:
                msg += f" (did you mean {(parent + '.' if parent else '') + hint!r}?)"
            elif valid:
                msg += f"; {'the ' + parent + ' section' if parent else 'the top level'} takes: {', '.join(valid)}"
            lines.append(msg)
        else:
            lines.append(f"{where}: {err.get('msg', 'invalid')}")
    return "\n".join(lines)
