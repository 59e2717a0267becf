"""`python -m loadtests <env> [<app>]`: load-test an environment's apps against the SLOs of its spec.

Each app is offered a little over its min_rps (loadtests.slo) and passes when it keeps up with p95 and error
rate within their limits. Without --host a local Serve of the environment runs for the test (localrun.serve).
Locust's CSV files and HTML report go to reports/loadtest/<env>/<app>/.

Exit status: 0 when every SLO holds; 1 when one is violated (each is named, measured vs limit) or the test could
not run; 2 for bad arguments, an unknown env or app included; 130 when stopped by Ctrl-C or SIGTERM (what it
started is stopped first).
"""

import argparse
import sys
import urllib.parse

from loadtests.errors import LoadTestError
from loadtests.run import REPORTS_DIR, LoadOptions, run_load_tests, table
from loadtests.slo import OFFERED_LOAD_FACTOR
from loadtests.spec import ROOT, select_apps
from localrun.serve import DeployError
from localrun.stop import stop_on_signals
from render.errors import SpecError
from render.spec.load import known_envs, load_specs

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _base_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(text)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    return text


_positive_int.__name__ = "positive integer"  # argparse names the type in its error message
_positive_float.__name__ = "positive number"
_base_url.__name__ = "URL (http://host:port)"


def parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m loadtests`."""
    defaults = LoadOptions()
    cli = argparse.ArgumentParser(
        prog="python -m loadtests",
        usage="%(prog)s <env> [<app>] [--host URL] [--users N] [--duration S] [--spawn-rate R]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("env", help="environment under deployments/")
    cli.add_argument("app", nargs="?", help="one app of the environment (default: all of them)")
    cli.add_argument(
        "--host", type=_base_url, metavar="URL", help="test the Serve at URL (http://host:port) instead of a local one"
    )
    cli.add_argument(
        "--users",
        type=_positive_int,
        metavar="N",
        help=f"concurrent users per app (default: enough to offer {OFFERED_LOAD_FACTOR:g} x min_rps at p95_ms)",
    )
    cli.add_argument(
        "--duration",
        type=_positive_int,
        default=defaults.duration_s,
        metavar="S",
        help=f"seconds of load per app (default {defaults.duration_s})",
    )
    cli.add_argument(
        "--spawn-rate", type=_positive_float, metavar="R", help="users started per second (default: all at once)"
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    cli = parser()
    args = cli.parse_args(argv)
    try:
        spec = load_specs(ROOT, [args.env])[args.env]
    except SpecError as error:
        print(error, file=sys.stderr)
        return USAGE_ERROR if args.env not in known_envs(ROOT) else 1
    try:
        apps = select_apps(spec, [args.app] if args.app else None)
    except LoadTestError as error:
        cli.print_usage(sys.stderr)
        print(f"{cli.prog}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    options = LoadOptions(users=args.users, duration_s=args.duration, spawn_rate=args.spawn_rate)
    stop_on_signals()
    try:
        reports = run_load_tests(ROOT, spec, apps, args.host, options)
    except (LoadTestError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    print(table(reports))
    broken = [violation for report in reports for violation in report.violations]
    for violation in broken:
        print(f"SLO violated: {violation}", file=sys.stderr)
    print(f"reports: {REPORTS_DIR / args.env}/<app>/", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
