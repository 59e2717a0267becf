"""How a target carries an app that streams tokens: the lines of the Streaming section of its parity report.

A stream is one HTTP request that lasts as long as its generation, so everything that bounds a request's length
bounds it: Ray Serve's proxy (the same on every target), whatever stands in front of the proxy (the target's), and
the grace a replica gets to finish its requests when it stops (a rollout, a scale-down). A stream also holds its
replica's slot for all of that time, which is what the autoscaling of each target sees, or does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from render.plan import AppPlan, EnvPlan

# Ray's DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_S (ray/serve/_private/constants.py): how long a stopping replica keeps
# serving the requests it holds. The spec does not set the deployment's graceful_shutdown_timeout_s.
RAY_GRACEFUL_SHUTDOWN_TIMEOUT_S = 20


def streaming_apps(plan: EnvPlan) -> tuple[AppPlan, ...]:
    """The environment's apps that stream tokens."""
    return tuple(a for a in plan.apps if a.streams_tokens)


def proxy_line(plan: EnvPlan, app_plan: AppPlan) -> str:
    """What Ray Serve's proxy does to the app's streams, the same on every target."""
    name = app_plan.app.name
    timeout = plan.spec.env.serve.request_timeout_s
    if timeout is None:
        bound = (
            "env.serve.request_timeout_s is unset, so the proxy does not bound a stream's length (the app's own"
            " limits on a generation do)"
        )
    else:
        # ray/serve/_private/proxy_response_generator.py times the whole response from the request's start; past it
        # the proxy cancels the request, and once the response started it sends nothing more (http_util.py
        # send_http_response_on_exception): the client sees the stream end without its `done` event.
        bound = (
            f"http_options.request_timeout_s ({timeout:g} s) bounds the whole request, the stream included: a"
            " stream still running then is cut without an error event (the client sees it end without `done`)"
        )
    return (
        f"{name}: streams tokens (text/event-stream) through Ray Serve's proxy, which passes each event on as the"
        f" replica yields it; {bound}"
    )


def drain_line(app_plan: AppPlan, stopping: str, platform_bound: str | None) -> str:
    """How long a stream survives its replica stopping; `stopping` names what stops, `platform_bound` what the
    platform allows after its SIGTERM (None on KubeRay, where the replica's own timeout is the bound)."""
    ray = (
        f"Ray's graceful_shutdown_timeout_s ({RAY_GRACEFUL_SHUTDOWN_TIMEOUT_S} s by default; the spec does not set it)"
    )
    bound = ray if platform_bound is None else f"the shorter of {platform_bound} and {ray}"
    return (
        f"{app_plan.app.name}: when {stopping} stops (a rollout, a scale-down), its streams get {bound} to finish;"
        " a longer one is cut"
    )
