"""A typed Serve app whose answers take `delay_s` (import path tests.integration.slow_app:app_builder): requests are
in flight long enough to be caught by a SIGTERM. GET <route_prefix>/healthz answers at once. A `delay_s` in the
deployment's user_config replaces the arg in place, with no new replica: a latency fault the alert test injects."""

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from starlette.requests import Request


class SlowArgs(BaseModel):
    """Arguments of the slow app."""

    model_config = ConfigDict(extra="forbid")

    delay_s: Annotated[float, Field(default=1.0, ge=0, le=10, description="How long each answer takes, seconds.")]


@serve.deployment
class Slow:
    """Answers "done" after the delay; the health path at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def reconfigure(self, user_config: dict[str, float]) -> None:
        self.delay_s = float(user_config.get("delay_s", self.delay_s))

    async def __call__(self, request: Request) -> str:
        if request.url.path.endswith("/healthz"):
            return "ok"
        await asyncio.sleep(self.delay_s)
        return "done"


def app_builder(args: SlowArgs) -> Application:
    """Build the slow app from its typed args."""
    return Slow.bind(args.delay_s)  # type: ignore[attr-defined]
