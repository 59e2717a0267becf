"""The HTTP path alone: one FastAPI route with the zero-shot request and response and no model behind it, served by
uvicorn (as the hand-tuned peer runs) and by Ray Serve (as the served app runs).

POST /predict validates a ZeroShotRequest, as the served app and the peer do, and answers a ZeroShotResponse with
the request's labels at equal scores: no model, batching, prediction log or middleware. `nox -s bench` runs it as
`floor_uvicorn` (uvicorn, the peer's worker count) and `floor_serve` (this module's Serve app on the served app's
Ray, with its replicas, resources and throughput settings). What `floor_serve` spends per request over
`floor_uvicorn` is what Ray Serve's request path costs beyond uvicorn's on that machine, whatever the app does;
benchmarks/report.py derives from it the most the served app can reach against the peer (`ceiling`).
"""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from serve_apps.zero_shot.app import ZeroShotRequest, ZeroShotResponse

api = FastAPI(title="HTTP floor", description="The zero-shot request and response without a model.")


@api.get("/healthz")
def healthz() -> dict[str, str]:
    """200 once the process serves."""
    return {"status": "ok"}


@api.post("/predict")
async def predict(body: ZeroShotRequest) -> ZeroShotResponse:
    """The request's labels in its order, at equal scores."""
    share = 1.0 / len(body.labels)
    return ZeroShotResponse(sequence=body.text, labels=body.labels, scores=[share] * len(body.labels))


@serve.deployment
@serve.ingress(api)
class HttpFloor:
    """The routes above as a Serve ingress deployment."""


def app_builder(args: dict[str, object]) -> Application:
    """The Serve application (it takes no arguments)."""
    if args:
        raise ValueError(f"the HTTP floor takes no args; got {sorted(args)}")
    # The decorators made HttpFloor a Deployment; mypy does not apply class decorators.
    return HttpFloor.bind()  # type: ignore[attr-defined]
