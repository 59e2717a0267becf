"""The apps' Args and request bodies: what is refused, and the field each refusal names (no Ray needed)."""

import json
import math
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from serve_apps.doubleit.app import VALUES_CEILING, DoubleItArgs, DoubleItRequest
from serve_apps.iris.app import INSTANCES_CEILING, IrisArgs, IrisRequest
from serve_apps.tabular.app import TabularArgs, TabularRequest
from serve_apps.zero_shot.app import (
    LABEL_CHARS_CEILING,
    LABELS_CEILING,
    TEMPLATE_CHARS_CEILING,
    TEXT_CHARS_CEILING,
    ZeroShotArgs,
    ZeroShotRequest,
    hypotheses,
    within_limits,
)

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
        ({"instances": [[5.1, 3.5, 1.4, 0.2]] * (INSTANCES_CEILING + 1)}, ("instances",)),
    ],
)
def test_iris_refuses(body: Any, location: tuple[str | int, ...]) -> None:
    assert location in error_locations(IrisRequest, body)


def test_iris_accepts_integers_and_floats() -> None:
    assert IrisRequest.model_validate({"instances": [[5, 3.5, 1, 0.2]]}).instances == [[5.0, 3.5, 1.0, 0.2]]


def test_tabular_needs_30_features() -> None:
    assert error_locations(TabularRequest, {"instances": [[1.0] * 29]}) == [("instances", 0)]
    assert error_locations(TabularRequest, {"instances": [[1.0] * 29 + [-3e38]]}) == [("instances", 0, 29)]
    assert error_locations(TabularRequest, {"instances": [[1.0] * 30] * (INSTANCES_CEILING + 1)}) == [("instances",)]
    assert len(TabularRequest.model_validate({"instances": [[1.0] * 30]}).instances[0]) == 30


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"values": []}, ("values",)),
        ({"values": [1, "two"]}, ("values", 1)),
        ({"values": [math.nan]}, ("values", 0)),
        ({"values": [1e308]}, ("values", 0)),  # its double would overflow to infinity
        ({"value": [1]}, ("values",)),
        ({"values": [1] * (VALUES_CEILING + 1)}, ("values",)),
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
        ({"text": "hi", "labels": ["x" * (LABEL_CHARS_CEILING + 1)]}, ("labels", 0)),
        ({"text": "hi", "labels": [f"l{i}" for i in range(LABELS_CEILING + 1)]}, ("labels",)),
        ({"text": "x" * (TEXT_CHARS_CEILING + 1), "labels": ["a"]}, ("text",)),
        ({"text": "hi", "labels": ["a"], "hypothesis_template": "About nothing."}, ("hypothesis_template",)),
        ({"text": "hi", "labels": ["a"], "hypothesis_template": "{} or {}?"}, ("hypothesis_template",)),
        (
            {"text": "hi", "labels": ["a"], "hypothesis_template": "{}" * TEMPLATE_CHARS_CEILING},
            ("hypothesis_template",),
        ),
        ({"text": 42, "labels": ["a"]}, ("text",)),
        ({"text": "hi", "candidate_labels": ["a"]}, ("labels",)),
        # Lone surrogates: valid JSON escapes ("\ud800") that no UTF-8 tokenizer can encode.
        ({"text": "abc \ud800 def", "labels": ["a"]}, ("text",)),
        ({"text": "hi", "labels": ["a", "b\udfff"]}, ("labels", 1)),
        ({"text": "hi", "labels": ["a"], "hypothesis_template": "About {} \ud83d."}, ("hypothesis_template",)),
        # Booleans are JSON true/false only.
        ({"text": "hi", "labels": ["a"], "multi_label": "yes"}, ("multi_label",)),
        ({"text": "hi", "labels": ["a"], "multi_label": 1}, ("multi_label",)),
        ({"text": "hi", "labels": ["a"], "multi_label": "true"}, ("multi_label",)),
    ],
)
def test_zero_shot_refuses(body: Any, location: tuple[str | int, ...]) -> None:
    assert location in error_locations(ZeroShotRequest, body)


def test_zero_shot_surrogate_error_names_the_character() -> None:
    with pytest.raises(ValidationError, match="lone surrogate U\\+D800 at character 4"):
        # As FastAPI parses a body: json.loads, which, unlike pydantic's parser, lets a lone surrogate through.
        ZeroShotRequest.model_validate(json.loads('{"text": "abc \\ud800 def", "labels": ["a"]}'))


def test_zero_shot_accepts_a_surrogate_pair_and_json_booleans() -> None:
    request = ZeroShotRequest.model_validate(
        json.loads('{"text": "\\ud83d\\ude00", "labels": ["a"], "multi_label": true}')
    )
    assert request.text == "\U0001f600" and request.multi_label is True


def zero_shot_limit_location(args: dict[str, Any], body: dict[str, Any]) -> tuple[str | int, ...] | None:
    """Where within_limits rejects `body` under ZeroShotArgs `args`; None when it passes."""
    request = ZeroShotRequest.model_validate({"text": "hi", "labels": ["a"], **body})
    try:
        within_limits(request, ZeroShotArgs.model_validate({"model": MODEL, **args}))
    except RequestValidationError as error:
        (item,) = error.errors()
        return tuple(item["loc"])
    return None


@pytest.mark.parametrize(
    ("args", "body", "location"),
    [
        ({}, {"text": "x" * 2001}, ("body", "text")),
        ({"max_text_chars": 3000}, {"text": "x" * 2001}, None),
        ({}, {"labels": [f"l{i}" for i in range(21)]}, ("body", "labels")),
        ({}, {"labels": ["a", "x" * 101]}, ("body", "labels", 1)),
        ({"max_label_chars": 200}, {"labels": ["a", "x" * 101]}, None),
        ({}, {"hypothesis_template": "{}" + "x" * 199}, ("body", "hypothesis_template")),
        ({"max_template_chars": 500}, {"hypothesis_template": "{}" + "x" * 199}, None),
    ],
)
def test_zero_shot_limits_come_from_args(
    args: dict[str, Any], body: dict[str, Any], location: tuple[str | int, ...] | None
) -> None:
    assert zero_shot_limit_location(args, body) == location


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
