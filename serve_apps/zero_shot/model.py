"""Zero-shot text classification with a sentence encoder in ONNX Runtime; no Ray.

The artifact is one ONNX file: MiniLM-L6 with mean pooling and L2 normalisation inside the graph (inputs
`input_ids`, `attention_mask`; output `embeddings`, unit vectors), and its tokenizer (tokenizer.json,
truncation and padding configured) in the model's metadata under TOKENIZER_METADATA_KEY.

Scores compare the text's embedding with each label's hypothesis (a sentence such as "This text is about
sports.", made by the app from its template) by cosine:
- single label: softmax(cos / temperature) over the labels, summing to 1;
- multi label: sigmoid((cos - multi_label_threshold) / temperature) per label, independent; a label scores
  0.5 where its cosine equals the threshold.

A query whose strings the tokenizer refuses (the request models let none through; this is the backstop) is named
in `ItemErrors` with an `InvalidInput` before the encoder runs, so that the batcher answers the rest of the batch
without it.
"""

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from serve_apps.common.batching import ItemErrors
from serve_apps.common.onnx_session import onnx_session

TOKENIZER_METADATA_KEY = "tokenizer.json"


class InvalidInput(ValueError):
    """A string of a query the tokenizer refuses; `field` is the request field it came from."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Query:
    """One text to classify against its candidate labels, each stated as a hypothesis sentence."""

    text: str
    labels: tuple[str, ...]
    hypotheses: tuple[str, ...]
    multi_label: bool


@dataclass(frozen=True)
class Classification:
    """Labels sorted by descending score (ties keep the request's order), in the HF zero-shot pipeline shape."""

    sequence: str
    labels: list[str]
    scores: list[float]


@dataclass(frozen=True)
class Scoring:
    """How cosine similarities become scores (see the module docstring)."""

    temperature: float
    multi_label_threshold: float


class ZeroShotModel:
    """Embeds texts and hypotheses with the ONNX encoder and scores labels; hypothesis embeddings are LRU-cached."""

    def __init__(self, path: Path, scoring: Scoring, num_threads: int = 1, label_cache_size: int = 1024) -> None:
        self._session = onnx_session(path, num_threads)
        metadata = self._session.get_modelmeta().custom_metadata_map
        if TOKENIZER_METADATA_KEY not in metadata:
            raise ValueError(f"{path}: no {TOKENIZER_METADATA_KEY!r} in the ONNX metadata; not a zero-shot artifact")
        self._tokenizer = Tokenizer.from_str(metadata[TOKENIZER_METADATA_KEY])
        self._scoring = scoring
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = label_cache_size
        self._cache_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, shape (len(texts), dim), float32."""
        return self._encode(self._tokenizer.encode_batch(list(texts)))

    def classify(self, queries: Sequence[Query]) -> list[Classification]:
        """Score each query's labels; the texts of all queries go through the encoder as one batch.

        Raises ItemErrors naming the queries whose strings the tokenizer refuses, before the encoder runs.
        """
        hypotheses = sorted({hypothesis for query in queries for hypothesis in query.hypotheses})
        hypothesis_embeddings = self._cached(hypotheses)
        missing = [text for text in hypotheses if text not in hypothesis_embeddings]
        try:
            text_tokens = self._tokenizer.encode_batch([query.text for query in queries])
            missing_tokens = self._tokenizer.encode_batch(missing)
        except Exception as error:
            refused = {
                index: invalid for index, query in enumerate(queries) if (invalid := self._refusal(query)) is not None
            }
            if refused:
                raise ItemErrors(refused) from error
            raise
        text_embeddings = self._encode(text_tokens)
        if missing:
            hypothesis_embeddings.update(zip(missing, self._encode(missing_tokens), strict=True))
            self._remember(missing, hypothesis_embeddings)
        results = []
        for query, text_embedding in zip(queries, text_embeddings, strict=True):
            label_embeddings = np.stack([hypothesis_embeddings[hypothesis] for hypothesis in query.hypotheses])
            scores = self.scores(label_embeddings @ text_embedding, query.multi_label)
            order = np.argsort(-scores, kind="stable")
            results.append(
                Classification(
                    sequence=query.text,
                    labels=[query.labels[i] for i in order],
                    scores=[float(scores[i]) for i in order],
                )
            )
        return results

    def scores(self, cosines: np.ndarray, multi_label: bool) -> np.ndarray:
        """Label scores from cosine similarities (module docstring)."""
        temperature = self._scoring.temperature
        if multi_label:
            return 1.0 / (1.0 + np.exp(-(cosines - self._scoring.multi_label_threshold) / temperature))
        logits = cosines / temperature
        weights = np.exp(logits - logits.max())
        return weights / weights.sum()

    def _encode(self, encodings: Sequence[Encoding]) -> np.ndarray:
        input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        attention_mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        (embeddings,) = self._session.run(["embeddings"], {"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(embeddings, dtype=np.float32)

    def _refusal(self, query: Query) -> InvalidInput | None:
        """Why the tokenizer refuses `query`, naming the field; labels come before the hypotheses made of them, so
        a hypothesis refused with its labels accepted is the template's fault."""
        parts = (
            ("text", [query.text]),
            ("labels", list(query.labels)),
            ("hypothesis_template", list(query.hypotheses)),
        )
        for field, texts in parts:
            try:
                self._tokenizer.encode_batch(texts)
            except Exception as error:
                return InvalidInput(field, f"the tokenizer cannot encode the {field} ({type(error).__name__})")
        return None

    def _cached(self, hypotheses: Sequence[str]) -> dict[str, np.ndarray]:
        with self._cache_lock:
            found = {text: self._cache[text] for text in hypotheses if text in self._cache}
            for text in found:
                self._cache.move_to_end(text)
        return found

    def _remember(self, texts: Sequence[str], embeddings: dict[str, np.ndarray]) -> None:
        with self._cache_lock:
            for text in texts:
                self._cache[text] = embeddings[text]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
