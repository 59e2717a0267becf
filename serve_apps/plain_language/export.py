"""Export a T5 checkpoint to two ONNX graphs that decode with a key/value cache.

- `encoder.onnx`: (input_ids, attention_mask) [batch, source] → cross_kv [layers, 2, batch, heads, source, d_kv]:
  the encoder runs once and its output is already projected into every decoder layer's cross-attention keys
  and values, which stay fixed while the decoder runs.
- `decoder.onnx`: one step. (input_ids [batch, 1], encoder_attention_mask [batch, source], cross_kv, past_kv
  [layers, 2, batch, heads, past, d_kv]) → (logits [batch, vocab], present_kv, past + 1 long). The first step
  takes a past of length 0.

The graphs are written from the checkpoint's own modules (its linear layers, norms, feed-forward and position
bias tables), with the attention and the cache written out here: transformers' cache classes do not trace. They
cover the T5 architecture as transformers implements it (`t5` and `mt5` configs: relu or gated feed-forward,
tied or untied output layer); tests/unit/serve_apps/test_plain_language_model.py holds them to transformers'
own outputs.
"""

import warnings
from pathlib import Path
from typing import Any

import torch

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
OPSET = 17
SUPPORTED_MODEL_TYPES = ("t5", "mt5")


def export_onnx(checkpoint: Path, out_dir: Path) -> None:
    """Write ENCODER_FILE and DECODER_FILE for the T5 checkpoint directory `checkpoint` into `out_dir`."""
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    model = T5ForConditionalGeneration.from_pretrained(str(checkpoint)).eval()
    if model.config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"{checkpoint}: model_type {model.config.model_type!r} is not T5's; expected one of {SUPPORTED_MODEL_TYPES}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    batch, source = 2, 5
    input_ids = torch.ones(batch, source, dtype=torch.int64)
    mask = torch.ones(batch, source, dtype=torch.int64)
    layers, heads, d_kv = config.num_decoder_layers, config.num_heads, config.d_kv
    cross_kv = torch.zeros(layers, 2, batch, heads, source, d_kv)
    past_kv = torch.zeros(layers, 2, batch, heads, 3, d_kv)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python ints taken from shapes; the tests run the graphs at other lengths.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        _export(
            _Encoder(model),
            (input_ids, mask),
            out_dir / ENCODER_FILE,
            inputs={"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"}},
            outputs={"cross_kv": {2: "batch", 4: "source"}},
        )
        _export(
            _DecoderStep(model),
            (input_ids[:, :1], mask, cross_kv, past_kv),
            out_dir / DECODER_FILE,
            inputs={
                "input_ids": {0: "batch"},
                "encoder_attention_mask": {0: "batch", 1: "source"},
                "cross_kv": {2: "batch", 4: "source"},
                "past_kv": {2: "batch", 4: "past"},
            },
            outputs={"logits": {0: "batch"}, "present_kv": {2: "batch", 4: "present"}},
        )


def _export(
    module: torch.nn.Module, example: tuple[Any, ...], path: Path, inputs: dict[str, Any], outputs: dict[str, Any]
) -> None:
    torch.onnx.export(
        module,
        example,
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=list(inputs),
        output_names=list(outputs),
        dynamic_axes={**inputs, **outputs},
    )


def _attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, output: torch.nn.Module
) -> torch.Tensor:
    # T5 does not scale the scores: the position bias and the initialisation account for it.
    weights = torch.softmax(torch.matmul(query, key.transpose(2, 3)) + bias, dim=-1)
    merged = torch.matmul(weights, value).transpose(1, 2)
    return output(merged.reshape(merged.shape[0], merged.shape[1], -1))


def _heads(states: torch.Tensor, linear: torch.nn.Module, n_heads: int, d_kv: int) -> torch.Tensor:
    """[batch, length, d_model] → [batch, heads, length, d_kv]."""
    projected = linear(states)
    return projected.view(projected.shape[0], projected.shape[1], n_heads, d_kv).transpose(1, 2)


def _mask_bias(mask: torch.Tensor) -> torch.Tensor:
    """Attention mask [batch, source] (1 = token) → additive bias [batch, 1, 1, source]."""
    return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min


def _position_bias(
    attention: torch.nn.Module, queries: torch.Tensor, keys: torch.Tensor, bidirectional: bool
) -> torch.Tensor:
    """T5's bucketed relative position bias for query and key positions: [1, heads, queries, keys]."""
    buckets = attention._relative_position_bucket(
        keys[None, :] - queries[:, None],
        bidirectional=bidirectional,
        num_buckets=attention.relative_attention_num_buckets,
        max_distance=attention.relative_attention_max_distance,
    )
    return attention.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)


class _Encoder(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        config, encoder = self.config, self.model.encoder
        hidden = encoder.embed_tokens(input_ids)
        positions = torch.arange(input_ids.shape[1], dtype=torch.int64)
        first = encoder.block[0].layer[0].SelfAttention
        bias = _position_bias(first, positions, positions, bidirectional=True) + _mask_bias(attention_mask)
        for block in encoder.block:
            self_attention = block.layer[0]
            normed = self_attention.layer_norm(hidden)
            layer = self_attention.SelfAttention
            q, k, v = (_heads(normed, linear, config.num_heads, config.d_kv) for linear in (layer.q, layer.k, layer.v))
            hidden = hidden + _attention(q, k, v, bias, layer.o)
            hidden = block.layer[1](hidden)
        hidden = encoder.final_layer_norm(hidden)
        cross = []
        for block in self.model.decoder.block:
            layer = block.layer[1].EncDecAttention
            k, v = (_heads(hidden, linear, config.num_heads, config.d_kv) for linear in (layer.k, layer.v))
            cross.append(torch.stack((k, v)))
        return torch.stack(cross)


class _DecoderStep(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        cross_kv: torch.Tensor,
        past_kv: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        config, decoder = self.config, self.model.decoder
        hidden = decoder.embed_tokens(input_ids)
        past = past_kv.shape[4]
        first = decoder.block[0].layer[0].SelfAttention
        # The new token is at position `past` and sees every earlier one: no causal mask is needed.
        self_bias = _position_bias(
            first,
            torch.arange(past, past + 1, dtype=torch.int64),
            torch.arange(past + 1, dtype=torch.int64),
            bidirectional=False,
        )
        cross_bias = _mask_bias(encoder_attention_mask)
        present = []
        for index, block in enumerate(decoder.block):
            self_attention = block.layer[0]
            normed = self_attention.layer_norm(hidden)
            layer = self_attention.SelfAttention
            q, k, v = (_heads(normed, linear, config.num_heads, config.d_kv) for linear in (layer.q, layer.k, layer.v))
            k = torch.cat((past_kv[index, 0], k), dim=2)
            v = torch.cat((past_kv[index, 1], v), dim=2)
            present.append(torch.stack((k, v)))
            hidden = hidden + _attention(q, k, v, self_bias, layer.o)
            cross_attention = block.layer[1]
            normed = cross_attention.layer_norm(hidden)
            layer = cross_attention.EncDecAttention
            q = _heads(normed, layer.q, config.num_heads, config.d_kv)
            hidden = hidden + _attention(q, cross_kv[index, 0], cross_kv[index, 1], cross_bias, layer.o)
            hidden = block.layer[2](hidden)
        hidden = decoder.final_layer_norm(hidden)
        if config.scale_decoder_outputs:  # tied input and output embeddings (T5 v1.0)
            hidden = hidden * (config.d_model**-0.5)
        return self.model.lm_head(hidden)[:, 0, :], torch.stack(present)
