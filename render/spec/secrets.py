"""A reference to a secret in a secret store: what the spec holds instead of any secret value."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from render.spec.base import StrictModel
from render.spec.rules import rule_error

SECRET_NAME_PATTERN = r"^[A-Za-z0-9/_+=.@-]{1,512}$"  # noqa: S105 - a pattern, not a secret
SECRETS_MANAGER_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$"
GCP_SECRET_PATTERN = r"^(projects/[a-z0-9-]+/secrets/)?[A-Za-z0-9_-]{1,255}(/versions/(latest|\d+))?$"  # noqa: S105


class SecretRef(StrictModel):
    """Where a secret lives: a reference only, never the value."""

    aws_secrets_manager: Annotated[
        str | None,
        Field(
            default=None,
            pattern=f"({SECRETS_MANAGER_ARN_PATTERN})|({SECRET_NAME_PATTERN})",
            description="AWS Secrets Manager secret ARN or name.",
        ),
    ]
    gcp_secret_manager: Annotated[
        str | None,
        Field(
            default=None,
            pattern=GCP_SECRET_PATTERN,
            description="GCP Secret Manager secret: `projects/<p>/secrets/<name>[/versions/<v>]` or a bare name.",
        ),
    ]
    key: Annotated[
        str | None,
        Field(default=None, description="Property inside a JSON secret; unset means the whole secret string."),
    ]

    @model_validator(mode="after")
    def exactly_one_secret_source(self) -> SecretRef:
        sources = [s for s in (self.aws_secrets_manager, self.gcp_secret_manager) if s is not None]
        if len(sources) != 1:
            raise rule_error(
                "exactly_one_secret_source",
                field="",
                got=len(sources),
                rule="a secret reference names exactly one store",
                hint="set one of aws_secrets_manager or gcp_secret_manager",
            )
        return self
