"""ONNX Runtime sessions sized to the CPUs Ray gave the replica, on its GPU when it has one."""

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

logger = logging.getLogger("ray.serve")


def execution_providers(gpu_ids: Sequence[object], available: Sequence[str]) -> list[str]:
    """CUDA first when Ray gave the replica a GPU and this ONNX Runtime build has CUDA (onnxruntime-gpu), then the
    CPU, which runs whatever CUDA does not; the CPU alone otherwise."""
    if not gpu_ids:
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in available:
        logger.warning(
            "the replica holds GPU(s) %s but this onnxruntime has no %s (install onnxruntime-gpu in the image):"
            " it runs on the CPU",
            list(gpu_ids),
            CUDA_PROVIDER,
        )
        return [CPU_PROVIDER]
    return [CUDA_PROVIDER, CPU_PROVIDER]


def assigned_gpu_ids() -> list[object]:
    """The GPUs Ray assigned to this process (none outside a Ray worker); Ray sets CUDA_VISIBLE_DEVICES to them, so
    CUDA's device 0 is the first."""
    try:
        import ray
    except ImportError:  # the model run without Ray, as the bench's peers run it
        return []

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


def onnx_session(path: Path, num_threads: int) -> ort.InferenceSession:
    """An inference session on `path` running `num_threads` intra-op CPU threads, on the replica's GPU if any."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    # One graph branch at a time: the models here are sequential and extra pools would only oversubscribe.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle threads that spin burn the CPUs Ray assigned to other replicas on the node.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    providers = execution_providers(assigned_gpu_ids(), ort.get_available_providers())
    return ort.InferenceSession(str(path), options, providers=providers)
