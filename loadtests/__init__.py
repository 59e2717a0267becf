"""Load tests of the model apps, with the SLOs of the spec as pass/fail thresholds.

`python -m loadtests <env> [<app>]` (`nox -s loadtest -- ...`) runs every app's locustfile headless and prints the
verdicts. One locustfile per serve app, `loadtests/<package>/locustfile.py`; run from the repository root:

    python -m locust -f loadtests/iris/locustfile.py --env dev --host http://127.0.0.1:8000   # web UI
    python -m loadtests.iris.locustfile --env dev --host http://127.0.0.1:8000                # one user, for a debugger
"""
