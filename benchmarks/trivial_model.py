"""A zero-shot artifact whose encoder costs next to nothing, to measure what serving costs without the model.

Same inputs, output and tokenizer as the real encoder (serve_apps/zero_shot/model.py), so the served app runs
exactly its own code (HTTP, validation, batching, tokenization, scoring, prediction log); only the graph is a
tiny embedding lookup, mean-pooled and normalised instead of six transformer layers. The benchmark serves it as
a second app beside the real one: its throughput and CPU per request are the serving path's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from serve_apps.common.artifact import ModelArtifact, sha256_of
from serve_apps.zero_shot.model import TOKENIZER_METADATA_KEY

DIM = 8
OPSET = 17


def build(real_model: Path, out: Path) -> ModelArtifact:
    """Write the trivial encoder, carrying `real_model`'s tokenizer, to `out`; its artifact (file:// URI)."""
    tokenizer_json = next(
        prop.value
        for prop in onnx.load(real_model, load_external_data=False).metadata_props
        if prop.key == TOKENIZER_METADATA_KEY
    )
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_str(tokenizer_json).get_vocab_size()
    table = np.random.default_rng(0).standard_normal((vocab, DIM)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["token_vectors"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["token_vectors", "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "token_axis"], ["summed"], keepdims=0),
        helper.make_node("LpNormalization", ["summed"], ["embeddings"], axis=-1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "trivial_encoder",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        outputs=[helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIM])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "token_axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    helper.set_model_props(model, {TOKENIZER_METADATA_KEY: tokenizer_json})
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
    return ModelArtifact(uri=f"file://{out.resolve()}", sha256=sha256_of(out))
