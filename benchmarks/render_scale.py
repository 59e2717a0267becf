"""Render benchmark: time per stage for generated specs of growing size (goal: 500 apps in under 5 s, linear).

Usage: python -m benchmarks.render_scale [--sizes 100,200,300,400,500] [--out reports/bench/render.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from render.pipeline import render_repo
from render.validate.crd import crd_dir_from_env
from render.write import write_tree

REPO = Path(__file__).resolve().parents[1]
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def generated_repo(directory: Path, apps: int) -> Path:
    """A repo with the real clusters/ and base env, and `apps` generated iris-like apps in one env."""
    shutil.copytree(REPO / "clusters", directory / "clusters")
    (directory / "deployments/base").mkdir(parents=True)
    shutil.copy(REPO / "deployments/base/env.yaml", directory / "deployments/base/env.yaml")
    (directory / "deployments/bench").mkdir()
    env = yaml.safe_load((REPO / "deployments/dev/env.yaml").read_text())
    env.pop("apps", None)
    env["worker_groups"] = [{"name": "cpu", "max_replicas": 200}]
    env["apps"] = [
        {
            "name": f"app-{i:04d}",
            "import_path": "serve_apps.iris.app:app_builder",
            "route_prefix": f"/app-{i:04d}",
            "model": {"uri": f"s3://bench-models/app-{i:04d}/iris.onnx", "sha256": SHA},
            "slo": {"p95_ms": 50, "error_rate": 0.01, "min_rps": 10},
            "deployments": [
                {
                    "name": "IrisClassifier",
                    "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
                    "ray_actor_options": {"num_cpus": 0.25},
                }
            ],
        }
        for i in range(apps)
    ]
    (directory / "deployments/bench/env.yaml").write_text(yaml.safe_dump(env))
    return directory


def measure(apps: int, crd_dir: Path | None) -> dict[str, float]:
    """Seconds per stage for one render of a generated spec with `apps` apps, written to a temp dir."""
    with tempfile.TemporaryDirectory() as scratch:
        repo = generated_repo(Path(scratch) / "repo", apps)
        start = time.perf_counter()
        rendered = render_repo(repo, crd_dir)
        stages = dict(rendered.seconds_by_stage)
        before_write = time.perf_counter()
        write_tree(rendered.files, repo / "rendered")
        stages["write"] = time.perf_counter() - before_write
        stages["total"] = time.perf_counter() - start
        return stages


def main() -> None:
    """Run the benchmark, print a table, write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,200,300,400,500")
    parser.add_argument("--out", default="reports/bench/render.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    crd_dir = crd_dir_from_env(None)
    measure(10, crd_dir)  # warm-up: imports and CRD parsing are paid once per process, not per app
    results = {n: measure(n, crd_dir) for n in sizes}
    stages = list(next(iter(results.values())))
    print(f"render time per stage in seconds (CRD validation: {'on, ' + str(crd_dir) if crd_dir else 'off'})")
    print(f"{'apps':>6} " + " ".join(f"{s:>10}" for s in stages) + f" {'ms/app':>8}")
    for n, figures in results.items():
        print(f"{n:>6} " + " ".join(f"{figures[s]:>10.3f}" for s in stages) + f" {figures['total'] / n * 1000:>8.2f}")
    largest = max(sizes)
    verdict = "PASS" if results[largest]["total"] < 5 else "FAIL"
    print(f"goal: {largest} apps in < 5 s: {results[largest]['total']:.2f} s {verdict}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"crd_validation": crd_dir is not None, "seconds": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
