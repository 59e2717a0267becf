"""Serving metrics outside Ray: they record nowhere, never fail, and bound client-chosen label values.

Ray's C++ core takes tag values as ASCII; outside a worker the tags are still encoded, so a non-ASCII tag fails here
as it does in a replica.
"""

import hashlib

import pytest

from serve_apps.common.metrics import (
    DIGEST_HEX_CHARS,
    DIGEST_PREFIX,
    INTER_TOKEN_BOUNDARIES_MS,
    MAX_LABEL_VALUES,
    MAX_TAG_CHARS,
    OTHER_LABEL,
    TTFT_BOUNDARIES_MS,
    ServingMetrics,
    tag_value,
)


def test_metrics_work_without_ray() -> None:
    metrics = ServingMetrics()
    metrics.predictions("iris", [["setosa", "virginica"], ["setosa"]], latencies_ms=[1.5, 2.0])
    metrics.log_buffer("iris", 3)
    metrics.log_dropped("iris", 2)
    metrics.log_write_failed("iris")


def test_label_values_are_bounded() -> None:
    metrics = ServingMetrics()
    labels = [f"label-{i}" for i in range(MAX_LABEL_VALUES)]
    assert [metrics.label_tag(label) for label in labels] == labels
    assert metrics.label_tag("one too many") == OTHER_LABEL
    assert metrics.label_tag(labels[0]) == labels[0]


def test_tag_value_keeps_printable_ascii() -> None:
    assert tag_value("sports") == "sports"
    assert tag_value("x" * MAX_TAG_CHARS) == "x" * MAX_TAG_CHARS


@pytest.mark.parametrize(
    ("label", "tag"),
    [
        ("⚽ sports", "\\u26bd sports"),
        ("café", "caf\\xe9"),
        ("😀", "\\U0001f600"),
        ("\ud800", "\\ud800"),
        ("tab\there\x00\x7f", "tab\\there\\x00\\x7f"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_tag_value_escapes_everything_else(label: str, tag: str) -> None:
    assert tag_value(label) == tag


def test_tag_value_of_long_or_digest_like_text_is_its_digest() -> None:
    digest = hashlib.sha256(("⚽" * 100).encode()).hexdigest()[:DIGEST_HEX_CHARS]
    assert tag_value("⚽" * 100) == DIGEST_PREFIX + digest
    assert tag_value("h:" + digest) != DIGEST_PREFIX + digest  # no label poses as another's digest
    assert tag_value("h:" + digest).startswith(DIGEST_PREFIX)


def test_tag_values_are_printable_ascii_bounded_and_distinct() -> None:
    labels = ["⚽ sports", "\\u26bd sports", "\ud800", "\udfff", "a\x00", "a\\x00", "x" * 10_000, "y" * 10_000, "h:"]
    tags = [tag_value(label) for label in labels]
    assert all(tag.isascii() and tag.isprintable() and len(tag) <= MAX_TAG_CHARS for tag in tags)
    assert len(set(tags)) == len(labels)


def test_labels_in_any_script_are_counted() -> None:
    metrics = ServingMetrics()
    metrics.predictions("zero-shot", [["⚽ sports", "cooking"], ["\ud800", "a\x00b", "日本語" * 1000]], [1.0, 2.0])


def test_generation_metrics_work_without_ray() -> None:
    metrics = ServingMetrics()
    metrics.first_tokens("plain-language", [12.5, 340.0])
    metrics.tokens_generated("plain-language", 3, inter_token_ms=[4.0, 5.5])
    metrics.tokens_generated("plain-language", 0, inter_token_ms=[])  # a step that produced nothing new
    metrics.generation_queue("plain-language", 2)


def test_generation_histograms_have_increasing_positive_boundaries() -> None:
    # Ray refuses a histogram whose boundaries are not positive and increasing, when the replica starts.
    for boundaries in (TTFT_BOUNDARIES_MS, INTER_TOKEN_BOUNDARIES_MS):
        assert boundaries[0] > 0 and boundaries == sorted(set(boundaries))
