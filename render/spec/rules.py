"""How a cross-field rule reports itself, so every error can name the exact key path it concerns."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError


def rule_error(
    rule_name: str,
    *,
    field: str,
    got: Any,
    rule: str,
    hint: str,
    related: tuple[str, ...] = (),
) -> PydanticCustomError:
    """Build the error a named validator raises.

    `field` is the dotted path, relative to the model that raises, of the key the problem is reported at;
    `related` are other relative paths that took part (an overlay that set one of them is the file to blame).
    """
    return PydanticCustomError(
        rule_name,
        "{rule}",
        {"rule": rule, "field": field, "got": repr(got), "hint": hint, "related": related},
    )
