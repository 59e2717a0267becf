"""Building blocks shared by every spec model, target configs included."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class StrictModel(BaseModel):
    """A model a person edits: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


K8sName = Annotated[
    str,
    StringConstraints(pattern=K8S_NAME_PATTERN, max_length=63),
    Field(description="A Kubernetes name: lower-case letters, digits and '-', at most 63 characters."),
]

EnvVarName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$"),
    Field(description="An environment variable name in UPPER_SNAKE_CASE."),
]


def unique_names(names: list[str], what: str) -> None:
    """Raise ValueError naming every name that appears more than once among `what` (a file's list of entries)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")
