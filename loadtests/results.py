"""What one Locust run hands back to `python -m loadtests`: a JSON file written when Locust quits.

Locust's CSV files are rewritten once a second while it runs and are not refreshed at the end, so they may miss
the last second; this file is computed from the final statistics, the ones Locust's HTML report shows.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from loadtests.slo import Measurement


class RunResult(BaseModel):
    """The measurement of one app, and the exceptions the locustfile itself raised (a broken test, not the app)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(description="Spec name of the app the run drove.")
    measurement: Measurement
    locustfile_errors: list[str] = Field(default_factory=list, description="One line per distinct exception.")


def write_result(path: Path, result: RunResult) -> None:
    """Write `result` to `path` as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_result(path: Path) -> RunResult:
    """The RunResult in `path`; raises OSError or pydantic.ValidationError."""
    return RunResult.model_validate_json(path.read_text(encoding="utf-8"))
