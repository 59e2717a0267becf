"""`nox -s bench -- --gpu`: on one NVIDIA GPU, 4 zero-shot replicas x num_gpus 0.25 against 1 replica x 1.0.

Each layout is the bench env's zero-shot application with a fixed replica count and GPU fraction, loaded by the
same closed-loop generator; recorded: throughput, p95 and the GPU memory of each replica (nvidia-smi). Goal: the
four shared replicas serve at least 3x the single replica. Without an NVIDIA GPU (no nvidia-smi) it is skipped
with a message, and nothing is written. Not run yet: no machine of this project has had a GPU. A replica that Ray
gives a GPU runs its ONNX session on CUDA (then the CPU for what CUDA lacks) when the environment's onnxruntime has
CUDA, i.e. onnxruntime-gpu instead of the CPU build pyproject.toml pins; otherwise it warns and runs on the CPU
(serve_apps/common/onnx_session.py), and this comparison would measure CPU inference.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import say
from benchmarks.workload import request_bodies

LAYOUTS = ((1, 1.0), (4, 0.25))  # (replicas, num_gpus per replica)
GOAL_SPEEDUP = 3.0


def missing_gpu() -> str | None:
    """Why the comparison cannot run here, or None when an NVIDIA GPU answers."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (nvidia-smi not found)"
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    if done.returncode != 0 or "GPU" not in done.stdout:
        return f"nvidia-smi lists no GPU ({done.stderr.strip() or done.stdout.strip()})"
    return None


def gpu_memory_mib_by_pid() -> dict[int, int]:
    """GPU memory used by each process on the GPUs, in MiB."""
    done = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(",") for line in done.stdout.splitlines() if line.strip()]
    return {int(pid): int(memory) for pid, memory in rows}


def layout_config(config: dict[str, Any], replicas: int, num_gpus: float) -> dict[str, Any]:
    """The Serve config with the app's deployment at a fixed replica count, each holding `num_gpus`."""
    app = config["applications"][0]
    deployment = {k: v for k, v in app["deployments"][0].items() if k != "autoscaling_config"}
    deployment["num_replicas"] = replicas
    deployment["ray_actor_options"] = {**deployment["ray_actor_options"], "num_gpus": num_gpus}
    return {**config, "applications": [{**app, "deployments": [deployment]}]}


def main(root: Path, out: Path, env: str = "bench", clients: int = 16, duration_s: float = 20) -> int:
    """Run both layouts one after the other on a fresh Ray each; print and write the comparison."""
    reason = missing_gpu()
    if reason is not None:
        say(
            f"GPU comparison skipped: {reason}. It needs one NVIDIA GPU, onnxruntime-gpu, and ONNX sessions on the"
            " CUDA provider (serve_apps/common/onnx_session.py asks for the CPU one today)."
        )
        return 0
    from benchmarks.serving import APP, free_port, replica_pids
    from localrun.serve import apply_ray_env, deploy, env_plan, local_ray_env
    from localrun.stop import local_ray

    plan = env_plan(root, env)
    base = plan.serve_config()
    base["applications"] = [a for a in base["applications"] if a["name"] == APP]
    apply_ray_env(local_ray_env(plan))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        bodies = Path(scratch) / "bodies.json"
        bodies.write_text(json.dumps(request_bodies()))
        for replicas, num_gpus in LAYOUTS:
            config = layout_config(base, replicas, num_gpus)
            with local_ray(
                address="local", num_cpus=replicas + 1, num_gpus=1, include_dashboard=False, log_to_driver=False
            ):
                port = free_port()
                served = deploy(config, port)
                url = f"{served.url}{config['applications'][0]['route_prefix']}/predict"
                say(f"{replicas} x {num_gpus:g} GPU: loading {url}")
                command = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--bodies", str(bodies)]
                command += ["--clients", str(clients), "--duration-s", str(duration_s)]
                load = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
                memory = gpu_memory_mib_by_pid()
                per_replica = {pid: memory.get(pid, 0) for pid in replica_pids()}
                results.append({"replicas": replicas, "num_gpus": num_gpus, "load": load, "gpu_mib": per_replica})
                say(f"{replicas} x {num_gpus:g}: {load['rps']:.1f} req/s, p95 {load['p95_ms']:.1f} ms, {per_replica}")
    speedup = results[1]["load"]["rps"] / results[0]["load"]["rps"]
    print(f"4 x 0.25 GPU / 1 x 1.0 GPU = {speedup:.2f}x ({'PASS' if speedup >= GOAL_SPEEDUP else 'FAIL'}, goal 3x)")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"layouts": results, "speedup": speedup}, indent=2) + "\n")
    say(f"wrote {path}")
    return 0
