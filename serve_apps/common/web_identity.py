"""AWS credentials for a workload outside AWS that has a Google identity (Cloud Run): no stored key, only a role.

When AWS_ROLE_ARN is set and no AWS_WEB_IDENTITY_TOKEN_FILE is (with a token file botocore assumes the role by
itself, as on EKS), the session's credentials come from STS AssumeRoleWithWebIdentity with an ID token of the
instance's service account, fetched from the metadata server for the audience in GOOGLE_ID_TOKEN_AUDIENCE:
`GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=<aud>`
with `Metadata-Flavor: Google` (https://cloud.google.com/run/docs/container-contract#metadata-server,
https://cloud.google.com/compute/docs/instances/verifying-instance-identity#request_signature). botocore's own
fetcher and refreshable credentials do the exchange (botocore/credentials.py, AssumeRoleWithWebIdentityProvider
builds the same pair from a token file), so keys are renewed, with a fresh ID token, before they expire.

GCE_METADATA_HOST points at another metadata server (`host[:port]`), under the name google-auth reads
(google/auth/environment_vars.py); the tests point it at a local one.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
import urllib.request
from typing import Any

ROLE_ARN_ENV = "AWS_ROLE_ARN"
SESSION_NAME_ENV = "AWS_ROLE_SESSION_NAME"
TOKEN_FILE_ENV = "AWS_WEB_IDENTITY_TOKEN_FILE"  # noqa: S105 - a variable name
AUDIENCE_ENV = "GOOGLE_ID_TOKEN_AUDIENCE"
METADATA_HOST_ENV = "GCE_METADATA_HOST"
METADATA_HOST = "metadata.google.internal"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
DEFAULT_AUDIENCE = "sts.amazonaws.com"
METADATA_TIMEOUT_S = 5
METHOD = "assume-role-with-google-id-token"


class IdentityError(Exception):
    """The metadata server gave no ID token."""


def google_id_token(audience: str) -> str:
    """An ID token (a JWT) of the instance's service account for `audience`, from the metadata server."""
    host = os.environ.get(METADATA_HOST_ENV) or METADATA_HOST
    url = f"http://{host}{IDENTITY_PATH}?{urllib.parse.urlencode({'audience': audience})}"
    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=METADATA_TIMEOUT_S) as response:  # noqa: S310 - the metadata server speaks http
            token = response.read().decode().strip()
    except OSError as error:
        raise IdentityError(f"no ID token from the metadata server at {host}: {error}") from error
    if not token:
        raise IdentityError(f"the metadata server at {host} answered an empty ID token")
    return token


def boto3_session() -> Any:
    """The boto3 session AWS clients are built from: assuming AWS_ROLE_ARN with a Google ID token when the
    environment asks for it (see the module docstring), else boto3's default credential chain."""
    role_arn = os.environ.get(ROLE_ARN_ENV)
    if not role_arn or os.environ.get(TOKEN_FILE_ENV):
        import boto3

        return boto3.Session()
    return _web_identity_session(
        role_arn,
        os.environ.get(SESSION_NAME_ENV) or "serving-toolkit",
        os.environ.get(AUDIENCE_ENV) or DEFAULT_AUDIENCE,
    )


@functools.cache
def _web_identity_session(role_arn: str, session_name: str, audience: str) -> Any:
    # One session per process and role: its refreshable credentials are shared by every client built from it, so
    # the role is assumed once and renewed, not once per model fetched.
    import boto3
    import botocore.session
    from botocore.credentials import AssumeRoleWithWebIdentityCredentialFetcher, DeferredRefreshableCredentials

    core = botocore.session.get_session()
    fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
        client_creator=core.create_client,
        web_identity_token_loader=lambda: google_id_token(audience),
        role_arn=role_arn,
        extra_args={"RoleSessionName": session_name},
    )
    credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method=METHOD)
    core.get_component("credential_provider").insert_before("env", _Provider(credentials))
    return boto3.Session(botocore_session=core)


class _Provider:
    """A credential provider for botocore's resolver that hands out the refreshable credentials above."""

    METHOD = METHOD
    CANONICAL_NAME = "GoogleIdToken"

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials
