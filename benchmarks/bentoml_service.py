"""The BentoML peer of `nox -s bench`: the int8 zero-shot model behind BentoML 1.4's adaptive batching.

Runs only in BentoML's own virtualenv (benchmarks/peers.py builds it), started with BentoML's CLI:
`bentoml serve benchmarks.bentoml_service:ZeroShot --working-dir <repo>`, BENCH_ZERO_SHOT in the environment.

Laid out as BentoML's documentation says for a batchable API whose requests carry several fields ("Adaptive
batching", "Handle multiple parameters"): the ingress service `ZeroShot` takes the served app's request
(POST /predict with text, labels, multi_label, hypothesis_template) and answers its response (sequence, labels,
scores); it hands each request, as a one-item list, to the batchable `classify` of the `ZeroShotEncoder` service,
whose dispatcher merges the lists of concurrent requests into batches. BentoML runs each service in processes of
its own and calls between them over a Unix socket.

Configured as the documentation recommends on a CPU (Parallelize requests handling: "CPU workloads"): the model
service runs `workers="cpu_count"` processes (the Python work of one batch holds the GIL, so one process per core),
each ONNX session with one intra-op thread so that the workers do not oversubscribe the cores; the ingress keeps
BentoML's default of one worker. The model code is the served app's (serve_apps.zero_shot.model), so the two
answer alike; access logs are off, as the served app's are in the bench environment.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
from pydantic import BaseModel

from benchmarks.peer_config import BENTOML, ModelSettings
from serve_apps.zero_shot.model import Query, Scoring, ZeroShotModel


class EncoderQuery(BaseModel):
    """One request as the encoder service receives it: the text and each label's hypothesis sentence."""

    text: str
    labels: list[str]
    hypotheses: list[str]
    multi_label: bool


class ZeroShotAnswer(BaseModel):
    """The served app's response: labels by descending score."""

    sequence: str
    labels: list[str]
    scores: list[float]


@bentoml.service(
    workers=BENTOML["encoder_workers"],
    runner_connection=BENTOML["runner_connection"],
    logging={"access": {"enabled": False}},
)
class ZeroShotEncoder:
    """The model: one ZeroShotModel per worker process, batches formed by BentoML's adaptive dispatcher."""

    def __init__(self) -> None:
        settings = ModelSettings.from_env()
        scoring = Scoring(temperature=settings.temperature, multi_label_threshold=settings.multi_label_threshold)
        self.model = ZeroShotModel(Path(settings.model_path), scoring, num_threads=int(BENTOML["onnx_threads"]))

    @bentoml.api(
        batchable=True, max_batch_size=int(BENTOML["max_batch_size"]), max_latency_ms=int(BENTOML["max_latency_ms"])
    )
    def classify(self, queries: list[EncoderQuery]) -> list[ZeroShotAnswer]:
        """Score a batch of queries in one model call."""
        results = self.model.classify(
            [
                Query(text=q.text, labels=tuple(q.labels), hypotheses=tuple(q.hypotheses), multi_label=q.multi_label)
                for q in queries
            ]
        )
        return [ZeroShotAnswer(sequence=r.sequence, labels=r.labels, scores=r.scores) for r in results]


@bentoml.service(workers=BENTOML["ingress_workers"], logging={"access": {"enabled": False}})
class ZeroShot:
    """The ingress: the served app's request and response, one request at a time into the encoder's batches."""

    encoder = bentoml.depends(ZeroShotEncoder)

    def __init__(self) -> None:
        self.template = ModelSettings.from_env().hypothesis_template

    @bentoml.api(route="/predict")
    async def predict(
        self, text: str, labels: list[str], multi_label: bool = False, hypothesis_template: str | None = None
    ) -> ZeroShotAnswer:
        """Score the candidate labels for the text."""
        template = hypothesis_template or self.template
        query = EncoderQuery(
            text=text,
            labels=labels,
            hypotheses=[template.replace("{}", label) for label in labels],
            multi_label=multi_label,
        )
        (answer,) = await self.encoder.to_async.classify([query])
        return answer
