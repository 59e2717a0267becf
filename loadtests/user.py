"""The Locust side every locustfile shares: the `--env` option, the users that drive an app and check every
answer, and the SLO verdict when Locust quits.

A locustfile subclasses PredictUser (POSTs `<route_prefix>/predict`) or GenerateUser (POSTs `<route_prefix>/generate`
and reads `<route_prefix>/generate/stream`, the contract of serve_apps/plain_language/api.py) and says how to build its
Workload from the spec's App. Which app that is (and so its route prefix and SLOs) comes from the spec of `--env`
(loadtests.spec), never from the locustfile.

The users together send the load the app's SLOs call for (loadtests.slo.offered_rps) as one even stream (Pacer).
A GenerateUser also times each stream's first token, as a Locust entry of its own (request type TTFT), which the
verdict holds to `slo.ttft_p95_ms` and keeps out of the requests' figures.
"""

import inspect
import logging
import random
import time
from functools import cache
from pathlib import Path
from typing import Any, cast

import gevent
import requests
from locust import FastHttpUser, HttpUser, User, events, task
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import RequestStats, StatsEntry

from loadtests.errors import LoadTestError
from loadtests.results import RunResult, write_result
from loadtests.slo import Measurement, Pacer, offered_rps, violations
from loadtests.spec import ROOT, app_of_package
from loadtests.sse import Event, EventStream
from loadtests.workload import BODY_EXCERPT_CHARS, HTTP_OK, StreamingWorkload, Workload, problem, stream_problem
from render.errors import SpecError
from render.spec.load import known_envs, load_specs
from render.spec.models import App
from serve_apps.plain_language.api import STREAM_MEDIA_TYPE, TOKEN_EVENT

logger = logging.getLogger(__name__)

# Locust's request type of the time-to-first-token entries: timed by GenerateUser, judged against slo.ttft_p95_ms.
TTFT = "TTFT"
GENERATE_PATH = "/generate"
STREAM_PATH = "/generate/stream"
# Streams and whole answers a GenerateUser asks for, in this proportion: streaming is what the app is for.
STREAM_WEIGHT = 3
# Longest wait for the next bytes of an answer: FastHttpUser's own network timeout, for the generation user too.
READ_TIMEOUT_S = 60.0


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


class AppUser(User):
    """What every user that drives an app shares: its app and workload from the spec of --env, and the pacing."""

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
        self._route = app.route_prefix.rstrip("/")
        self._rng = random.Random()  # noqa: S311 - request data, not secrets
        self._pacer = _pacer(type(self), offered_rps(app.slo))
        gevent.sleep(self._pacer.wait())  # users spawned together would otherwise all send at once

    def wait_time(self) -> float:
        return self._pacer.wait()


class PredictUser(AppUser, FastHttpUser):
    """POSTs its workload's requests to its app's `<route_prefix>/predict`; a wrong answer is a failed request."""

    abstract = True

    @task
    def predict(self) -> None:
        request = self._workload.request(self._rng)
        with self.client.post(self._route + "/predict", json=request, catch_response=True) as response:
            if not response.status_code:  # no HTTP answer at all (refused, reset, timed out)
                response.failure(f"no answer: {response.error!r}")
            elif (reason := problem(self._workload, request, response.status_code, response.text)) is not None:
                response.failure(reason)
            else:
                response.success()


class GenerateUser(AppUser, HttpUser):
    """Reads its app's `<route_prefix>/generate/stream` and POSTs `<route_prefix>/generate` (STREAM_WEIGHT to 1).

    A stream counts as one request timed to its last byte, failed when it breaks off or its events break the
    contract (StreamingWorkload.check_stream); the time to its first `token` event is its own TTFT entry. Requests
    rather than FastHttpUser's client: geventhttpclient's read(n) waits for n bytes, which would hold a token back
    until later ones filled the buffer, and requests hands each chunk over as it arrives.
    """

    abstract = True

    @classmethod
    def workload_for(cls, app: App) -> StreamingWorkload:
        """The workload for `app`, with the streaming side of the contract."""
        raise NotImplementedError

    @task(STREAM_WEIGHT)
    def generate_stream(self) -> None:
        workload = cast(StreamingWorkload, self._workload)
        request = workload.stream_request(self._rng)
        path = self._route + STREAM_PATH
        started = time.perf_counter()
        with self.client.post(
            path,
            json=request,
            stream=True,
            catch_response=True,
            timeout=READ_TIMEOUT_S,
            headers={"accept": STREAM_MEDIA_TYPE},
        ) as response:
            if not response.status_code:
                response.failure(f"no answer: {response.error!r}")
                return
            if response.status_code != HTTP_OK:
                response.failure(f"HTTP {response.status_code}: {response.text[:BODY_EXCERPT_CHARS]}")
                return
            events, broken = self._read_stream(response, path, started)
            # Locust timed the request to its headers; a stream's latency runs to its last byte, as Serve's does.
            cast(dict[str, Any], response.request_meta)["response_time"] = (time.perf_counter() - started) * 1000
            if broken is not None:
                response.failure(f"stream broken after {len(events)} events: {broken}")
            elif (reason := stream_problem(workload, request, events)) is not None:
                response.failure(reason)
            else:
                response.success()

    @task
    def generate(self) -> None:
        request = self._workload.request(self._rng)
        path = self._route + GENERATE_PATH
        with self.client.post(path, json=request, catch_response=True, timeout=READ_TIMEOUT_S) as response:
            if not response.status_code:
                response.failure(f"no answer: {response.error!r}")
            elif (reason := problem(self._workload, request, response.status_code, response.text)) is not None:
                response.failure(reason)
            else:
                response.success()

    def _read_stream(self, response: requests.Response, path: str, started: float) -> tuple[list[Event], str | None]:
        """The stream's events as they arrive, timing the first `token` one (TTFT entry); and why it broke off, if it
        did (a reset, a read timeout, a body cut short)."""
        parser, found = EventStream(), []

        def take(events: list[Event]) -> None:
            for event in events:
                if event.name == TOKEN_EVENT and not any(e.name == TOKEN_EVENT for e in found):
                    self._record_ttft(path, (time.perf_counter() - started) * 1000)
                found.append(event)

        try:
            for chunk in response.iter_content(chunk_size=None):
                take(parser.feed(chunk))
        except requests.RequestException as error:
            return found, repr(error)
        take(parser.end())
        return found, None

    def _record_ttft(self, path: str, ttft_ms: float) -> None:
        self.environment.events.request.fire(
            request_type=TTFT,
            name=path,
            response_time=ttft_ms,
            response_length=0,
            exception=None,
            context=self.context(),
        )


@cache
def _pacer(user: type[AppUser], rate: float) -> Pacer:
    return Pacer(rate)


@cache
def _target(user: type[AppUser], env: str) -> tuple[App, Workload]:
    app = app_of_package(load_specs(ROOT, [env])[env], user.package())
    return app, user.workload_for(app)


def _app_users(environment: Environment) -> list[type[AppUser]]:
    return [user for user in environment.user_classes if issubclass(user, AppUser)]


def _options(environment: Environment) -> Any:
    """Locust's parsed command line, with add_options' --env and --result-json."""
    assert environment.parsed_options is not None, "run through locust's command line or run_single_user"
    return environment.parsed_options


@events.init.add_listener
def resolve_targets(environment: Environment, **_: Any) -> None:
    """Read the spec before any user starts, so that a spec problem stops Locust with its message alone."""
    for user in _app_users(environment):
        try:
            user.target(_options(environment).env)
        except (SpecError, LoadTestError) as error:
            raise SystemExit(f"{error}") from None
    # Loading the spec blocked the event loop, whose clock gevent caches: refresh it, or --run-time's timer,
    # armed next, would fire early by as long as the load took.
    gevent.get_hub().loop.update_now()


def measurement(stats: RequestStats) -> Measurement:
    """The figures of Locust's statistics: the requests' from every entry but the TTFT ones, and the p95 of those
    (None when no first token was timed)."""
    requests_, first_tokens = StatsEntry(stats, "requests", ""), StatsEntry(stats, TTFT, TTFT)
    for entry in stats.entries.values():
        (first_tokens if entry.method == TTFT else requests_).extend(entry)
    return Measurement(
        requests=requests_.num_requests,
        failures=requests_.num_failures,
        rps=requests_.total_rps,
        p50_ms=requests_.get_response_time_percentile(0.5),
        p95_ms=requests_.get_response_time_percentile(0.95),
        ttft_p95_ms=first_tokens.get_response_time_percentile(0.95) if first_tokens.num_requests else None,
    )


@events.quitting.add_listener
def slo_verdict(environment: Environment, **_: Any) -> None:
    """Log each violated SLO and exit 1 if any, else 0; write --result-json when asked."""
    users = _app_users(environment)
    if len(users) != 1 or isinstance(environment.runner, WorkerRunner):
        return  # a worker holds part of the statistics; the master judges
    options = _options(environment)
    app = users[0].target(options.env)[0]
    measured = measurement(environment.stats)
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
