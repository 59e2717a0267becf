"""Serving metrics outside Ray: they record nowhere, never fail, and bound client-chosen label values."""

from serve_apps.common.metrics import MAX_LABEL_VALUES, OTHER_LABEL, ServingMetrics


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
