"""ONNX Runtime sessions sized to the CPUs Ray gave the replica."""

from pathlib import Path

import onnxruntime as ort


def onnx_session(path: Path, num_threads: int) -> ort.InferenceSession:
    """A CPU inference session on `path` running `num_threads` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    # One graph branch at a time: the models here are sequential and extra pools would only oversubscribe.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle threads that spin burn the CPUs Ray assigned to other replicas on the node.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
