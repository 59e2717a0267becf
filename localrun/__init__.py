"""Running an environment on this machine (`nox -s serve`, the load tests, the benchmarks): a local Ray with the
rendered Serve config, and the rule by which everything it started stops. It imports the renderer, so it lives
outside serve_apps/, which is all the serving image holds."""
