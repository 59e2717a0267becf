"""The Locust side every locustfile shares: the `--env` option, the user that POSTs `<route_prefix>/predict` and
checks every answer, and the SLO verdict when Locust quits.

A locustfile subclasses PredictUser and says how to build its Workload from the spec's App. Which app that is
(and so its route prefix and SLOs) comes from the spec of `--env` (loadtests.spec), never from the locustfile.

The users together send the load the app's SLOs call for (loadtests.slo.offered_rps) as one even stream (Pacer).
"""

import inspect
import logging
import random
from functools import cache
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import StatsEntry

from loadtests.errors import LoadTestError
from loadtests.results import RunResult, write_result
from loadtests.slo import Measurement, Pacer, offered_rps, violations
from loadtests.spec import ROOT, app_of_package
from loadtests.workload import Workload, problem
from render.errors import SpecError
from render.spec.load import known_envs, load_specs
from render.spec.models import App

logger = logging.getLogger(__name__)


@events.init_command_line_parser.add_listener
def add_options(parser: Any, **_: Any) -> None:
    """--env (choices: the environments under deployments/) and --result-json (for `python -m loadtests`)."""
    envs = known_envs(ROOT)
    parser.add_argument(
        "--env",
        choices=envs,
        default="dev" if "dev" in envs else None,
        help="environment under deployments/ whose spec gives the app's route prefix and SLOs (default: dev)",
    )
    parser.add_argument(
        "--result-json",
        metavar="PATH",
        include_in_web_ui=False,
        help="write the final measurement to PATH as JSON when Locust quits",
    )


class PredictUser(FastHttpUser):
    """POSTs its workload's requests to its app's `<route_prefix>/predict`; a wrong answer is a failed request."""

    abstract = True

    @classmethod
    def workload_for(cls, app: App) -> Workload:
        """The workload for `app` (the spec's App, for what the answers depend on, e.g. its args)."""
        raise NotImplementedError

    @classmethod
    def package(cls) -> str:
        """The serve_apps package this user drives: the name of its locustfile's directory."""
        return Path(inspect.getfile(cls)).parent.name

    @classmethod
    def target(cls, env: str) -> tuple[App, Workload]:
        """The spec's app for this user in `env`, and its workload; loaded once per process."""
        return _target(cls, env)

    def on_start(self) -> None:
        app, self._workload = self.target(_options(self.environment).env)
        self._path = app.route_prefix.rstrip("/") + "/predict"
        self._rng = random.Random()  # noqa: S311 - request data, not secrets
        self._pacer = _pacer(type(self), offered_rps(app.slo))
        gevent.sleep(self._pacer.wait())  # users spawned together would otherwise all send at once

    def wait_time(self) -> float:
        return self._pacer.wait()

    @task
    def predict(self) -> None:
        request = self._workload.request(self._rng)
        with self.client.post(self._path, json=request, catch_response=True) as response:
            if not response.status_code:  # no HTTP answer at all (refused, reset, timed out)
                response.failure(f"no answer: {response.error!r}")
            elif (reason := problem(self._workload, request, response.status_code, response.text)) is not None:
                response.failure(reason)
            else:
                response.success()


@cache
def _pacer(user: type[PredictUser], rate: float) -> Pacer:
    return Pacer(rate)


@cache
def _target(user: type[PredictUser], env: str) -> tuple[App, Workload]:
    app = app_of_package(load_specs(ROOT, [env])[env], user.package())
    return app, user.workload_for(app)


def _predict_users(environment: Environment) -> list[type[PredictUser]]:
    return [user for user in environment.user_classes if issubclass(user, PredictUser)]


def _options(environment: Environment) -> Any:
    """Locust's parsed command line, with add_options' --env and --result-json."""
    assert environment.parsed_options is not None, "run through locust's command line or run_single_user"
    return environment.parsed_options


@events.init.add_listener
def resolve_targets(environment: Environment, **_: Any) -> None:
    """Read the spec before any user starts, so that a spec problem stops Locust with its message alone."""
    for user in _predict_users(environment):
        try:
            user.target(_options(environment).env)
        except (SpecError, LoadTestError) as error:
            raise SystemExit(f"{error}") from None
    # Loading the spec blocked the event loop, whose clock gevent caches: refresh it, or --run-time's timer,
    # armed next, would fire early by as long as the load took.
    gevent.get_hub().loop.update_now()


def measurement(total: StatsEntry) -> Measurement:
    """The figures of Locust's aggregated statistics."""
    return Measurement(
        requests=total.num_requests,
        failures=total.num_failures,
        rps=total.total_rps,
        p50_ms=total.get_response_time_percentile(0.5),
        p95_ms=total.get_response_time_percentile(0.95),
    )


@events.quitting.add_listener
def slo_verdict(environment: Environment, **_: Any) -> None:
    """Log each violated SLO and exit 1 if any, else 0; write --result-json when asked."""
    users = _predict_users(environment)
    if len(users) != 1 or isinstance(environment.runner, WorkerRunner):
        return  # a worker holds part of the statistics; the master judges
    options = _options(environment)
    app = users[0].target(options.env)[0]
    measured = measurement(environment.stats.total)
    exceptions = environment.runner.exceptions.values() if environment.runner else []
    errors = [f"{error['count']}x {error['msg']}" for error in exceptions]
    if options.result_json:
        write_result(
            Path(options.result_json),
            RunResult(app=app.name, measurement=measured, locustfile_errors=errors),
        )
    found = violations(app.name, app.slo, measured)
    for violation in found:
        logger.error("SLO violated: %s", violation)
    if found:
        environment.process_exit_code = 1
    elif not errors:
        environment.process_exit_code = 0  # failed requests within the error_rate SLO pass
