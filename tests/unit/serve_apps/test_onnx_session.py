"""Where an ONNX session runs: the CPU unless Ray gave the replica a GPU and ONNX Runtime can use it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from serve_apps.common.onnx_session import CPU_PROVIDER, CUDA_PROVIDER, execution_providers, onnx_session


def test_no_gpu_means_the_cpu_even_where_cuda_is_installed() -> None:
    assert execution_providers([], [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]


def test_a_gpu_replica_runs_on_cuda_with_the_cpu_for_what_cuda_lacks() -> None:
    assert execution_providers(["0"], [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]


def test_a_gpu_replica_without_cuda_in_onnxruntime_warns_and_runs_on_the_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        assert execution_providers([0], [CPU_PROVIDER]) == [CPU_PROVIDER]
    assert "install onnxruntime-gpu" in caplog.text


def test_a_session_outside_ray_runs_on_the_cpu(built_models: dict[str, Path]) -> None:
    session = onnx_session(built_models["iris"], num_threads=1)
    assert isinstance(session, ort.InferenceSession)
    assert session.get_providers() == [CPU_PROVIDER]


def test_a_session_where_ray_is_not_installed_runs_on_the_cpu(
    built_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as in the bench's BentoML venv
    session = onnx_session(built_models["iris"], num_threads=1)
    assert session.get_providers() == [CPU_PROVIDER]
