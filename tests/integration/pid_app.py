"""A Serve app that answers with its replica's process ID (import path tests.integration.pid_app:app)."""

import os

from ray import serve


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Pid:
    """Answers with the PID of the worker process that hosts the replica."""

    def __call__(self) -> int:
        return os.getpid()


app = Pid.bind()
