"""The BentoML peer, started with BentoML's CLI from its own venv, answers the served app's request with the served
app's response. Runs where `nox -s bench` has built that venv (about 10 s); building it takes a minute more, so a
machine without it skips this test and the bench checks the answers itself before it measures."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from benchmarks import peers
from benchmarks.peer_config import ModelSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV = REPO_ROOT / peers.BENTOML_VENV


def _venv_is_built() -> bool:
    try:
        return json.loads((VENV / peers.BENTOML_MARKER).read_text()) == peers.bentoml_pins(REPO_ROOT)
    except (OSError, ValueError):
        return False


@pytest.mark.skipif(not _venv_is_built(), reason=f"{VENV} is not built (`nox -s bench` builds it)")
def test_bentoml_answers_the_served_apps_request(built_models: dict[str, Path], tmp_path: Path) -> None:
    settings = ModelSettings.served_defaults(str(built_models["zero_shot"]))
    body = {"text": "The striker scored twice in the second half.", "labels": ["sports", "politics", "cooking"]}
    with peers.bentoml_server(REPO_ROOT, settings, sorted(os.sched_getaffinity(0)), tmp_path) as (url, _):
        request = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())

    assert set(answer) == {"sequence", "labels", "scores"}
    assert answer["sequence"] == body["text"]
    assert answer["labels"][0] == "sports"
    assert sorted(answer["labels"]) == sorted(body["labels"])
    assert sum(answer["scores"]) == pytest.approx(1.0, abs=1e-5)
