"""The apps' Args and request bodies: what is refused, and the field each refusal names (no Ray needed)."""

import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from serve_apps.doubleit.app import DoubleItArgs, DoubleItRequest
from serve_apps.iris.app import IrisArgs, IrisRequest
from serve_apps.tabular.app import TabularArgs, TabularRequest
from serve_apps.zero_shot.app import ZeroShotArgs, ZeroShotRequest, hypotheses

MODEL = {"uri": "file://models/x.onnx", "sha256": "0" * 64}


def error_locations(model: type[BaseModel], body: Any) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as error:
        model.model_validate(body)
    return [tuple(item["loc"]) for item in error.value.errors()]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"instances": []}, ("instances",)),
        ({"instances": [[5.1, 3.5, 1.4]]}, ("instances", 0)),
        ({"instances": [[5.1, 3.5, 1.4, 0.2, 9.9]]}, ("instances", 0)),
        ({"instances": [[5.1, 3.5, 1.4, math.nan]]}, ("instances", 0, 3)),
        ({"instances": [[5.1, math.inf, 1.4, 0.2]]}, ("instances", 0, 1)),
        ({"instances": [[5.1, "3.5", 1.4, 0.2]]}, ("instances", 0, 1)),
        ({"instances": [[5.1, True, 1.4, 0.2]]}, ("instances", 0, 1)),
        ({"instances": [[5.1, None, 1.4, 0.2]]}, ("instances", 0, 1)),
        ({"instances": [[0, 0, 0, 1.68e38]]}, ("instances", 0, 3)),  # finite, but overflows float32 in the model
        ({"rows": [[5.1, 3.5, 1.4, 0.2]]}, ("instances",)),
    ],
)
def test_iris_refuses(body: Any, location: tuple[str | int, ...]) -> None:
    assert location in error_locations(IrisRequest, body)


def test_iris_accepts_integers_and_floats() -> None:
    assert IrisRequest.model_validate({"instances": [[5, 3.5, 1, 0.2]]}).instances == [[5.0, 3.5, 1.0, 0.2]]


def test_tabular_needs_30_features() -> None:
    assert error_locations(TabularRequest, {"instances": [[1.0] * 29]}) == [("instances", 0)]
    assert error_locations(TabularRequest, {"instances": [[1.0] * 29 + [-3e38]]}) == [("instances", 0, 29)]
    assert len(TabularRequest.model_validate({"instances": [[1.0] * 30]}).instances[0]) == 30


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"values": []}, ("values",)),
        ({"values": [1, "two"]}, ("values", 1)),
        ({"values": [math.nan]}, ("values", 0)),
        ({"values": [1e308]}, ("values", 0)),  # its double would overflow to infinity
        ({"value": [1]}, ("values",)),
    ],
)
def test_doubleit_refuses(body: Any, location: tuple[str | int, ...]) -> None:
    assert location in error_locations(DoubleItRequest, body)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"text": "", "labels": ["a"]}, ("text",)),
        ({"text": "   ", "labels": ["a"]}, ("text",)),
        ({"text": "hi", "labels": []}, ("labels",)),
        ({"text": "hi", "labels": ["a", " "]}, ("labels", 1)),
        ({"text": "hi", "labels": ["a", "b", "a"]}, ("labels",)),
        ({"text": "hi", "labels": ["x" * 101]}, ("labels", 0)),
        ({"text": "hi", "labels": ["a"], "hypothesis_template": "About nothing."}, ("hypothesis_template",)),
        ({"text": 42, "labels": ["a"]}, ("text",)),
        ({"text": "hi", "candidate_labels": ["a"]}, ("labels",)),
    ],
)
def test_zero_shot_refuses(body: Any, location: tuple[str | int, ...]) -> None:
    assert location in error_locations(ZeroShotRequest, body)


def test_zero_shot_labels_are_stripped() -> None:
    assert ZeroShotRequest.model_validate({"text": "hi", "labels": [" sports "]}).labels == ["sports"]


def test_hypotheses_leave_other_braces_alone() -> None:
    assert hypotheses("About {} {0} {x}.", ["sports"]) == ("About sports {0} {x}.",)


@pytest.mark.parametrize("args_type", [ZeroShotArgs, IrisArgs, TabularArgs, DoubleItArgs])
def test_args_need_a_model_and_forbid_unknown_keys(args_type: type[BaseModel]) -> None:
    assert ("model",) in error_locations(args_type, {})
    assert ("modle",) in error_locations(args_type, {"model": MODEL, "modle": MODEL})
    assert args_type.model_validate({"model": MODEL}).model_dump()["model"] == MODEL


def test_zero_shot_args_template_needs_placeholder() -> None:
    assert error_locations(ZeroShotArgs, {"model": MODEL, "hypothesis_template": "No slot."}) == [
        ("hypothesis_template",)
    ]


def test_args_describe_every_field() -> None:
    for args_type in (ZeroShotArgs, IrisArgs, TabularArgs, DoubleItArgs):
        undescribed = [name for name, field in args_type.model_fields.items() if not field.description]
        assert undescribed == [], f"{args_type.__name__}: {undescribed}"
