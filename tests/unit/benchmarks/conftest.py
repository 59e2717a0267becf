"""Fixtures of the bench's unit tests: the serve_apps tests' built model artifacts."""

from tests.unit.serve_apps.conftest import built_models

__all__ = ["built_models"]
