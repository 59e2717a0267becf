"""Replica plumbing that runs without Ray: user_config parsing and the light imports of app modules."""

import subprocess
import sys

import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from serve_apps.common.api import reject
from serve_apps.common.replica import ModelReplica, parse_user_config
from serve_apps.common.schemas import BatchedUserConfig, UserConfig

HEAVY_MODULES = ["onnxruntime", "torch", "xgboost", "transformers", "sqlalchemy", "tokenizers", "joblib", "boto3"]


def test_batching_user_config_is_parsed() -> None:
    config = parse_user_config(
        BatchedUserConfig, {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01}}, "zero-shot"
    )
    assert config.batching is not None
    assert (config.batching.max_batch_size, config.batching.batch_wait_timeout_s) == (8, 0.01)


def test_unknown_user_config_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"^zero-shot: user_config.temprature: Extra inputs are not permitted"):
        parse_user_config(BatchedUserConfig, {"temprature": 1}, "zero-shot")


def test_bad_batching_value_is_named() -> None:
    with pytest.raises(ValueError, match=r"user_config.batching.max_batch_size: Input should be greater than or equal"):
        parse_user_config(BatchedUserConfig, {"batching": {"max_batch_size": 0, "batch_wait_timeout_s": 0}}, "z")


def test_app_without_tunables_refuses_batching() -> None:
    with pytest.raises(
        ValueError, match=r"^iris: user_config.batching: .*Hint: user_config keys this app accepts: none"
    ):
        parse_user_config(UserConfig, {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01}}, "iris")


def test_reject_reads_like_fastapi_validation() -> None:
    with pytest.raises(RequestValidationError) as error:
        reject(["labels"], "at most 20 labels per request", 21)
    assert error.value.errors() == [
        {"type": "value_error", "loc": ("body", "labels"), "msg": "at most 20 labels per request", "input": 21}
    ]


def test_app_modules_import_no_model_libraries() -> None:
    # The render step imports the apps for their Args types; model libraries would make that slow.
    apps = ", ".join(f"serve_apps.{app}.app" for app in ("zero_shot", "iris", "tabular", "doubleit"))
    code = f"import sys, {apps}; print(sorted(set({HEAVY_MODULES!r}) & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


class BrokenLog:
    """A prediction log whose writer died too often to be started again."""

    writer_restarts = 5

    def writer_problem(self) -> str:
        return "the prediction-log writer thread stopped 6 times within 60 s (last: Boom) and is not started again"


def replica_with_broken_log() -> ModelReplica:
    replica = object.__new__(ModelReplica)
    replica.app_name, replica.model, replica.model_sha256 = "zero-shot", object(), "a" * 64
    replica.prediction_log = BrokenLog()  # type: ignore[assignment]
    return replica


def test_a_log_writer_that_cannot_start_fails_the_health_check() -> None:
    with pytest.raises(RuntimeError, match=r"^zero-shot: the prediction-log writer thread stopped 6 times"):
        replica_with_broken_log().check_health()


def test_a_log_writer_that_cannot_start_makes_healthz_503() -> None:
    with pytest.raises(HTTPException) as error:
        replica_with_broken_log().health_report()
    assert error.value.status_code == 503
    assert error.value.detail.startswith("zero-shot: the prediction-log writer thread stopped 6 times")
