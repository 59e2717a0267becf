"""The task entry point's arguments (its drain runs in tests/integration/test_graceful_shutdown.py)."""

import pytest

from serve_apps.entrypoint import STOP_RESERVE_S, parse_args

SIZE = ["--num-cpus=1", "--num-gpus=0", "--memory=1073741824", "--object-store-memory=536870912"]


def test_the_rendered_arguments_parse() -> None:
    args = parse_args(["--grace-period-s=10", *SIZE, "/tmp/serve-config.yaml"])
    assert (args.grace_period_s, args.num_cpus, str(args.config)) == (10, 1, "/tmp/serve-config.yaml")


def test_a_grace_period_within_the_stop_reserve_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([f"--grace-period-s={STOP_RESERVE_S:g}", *SIZE, "/tmp/serve-config.yaml"])
    assert "--grace-period-s must exceed" in capsys.readouterr().err
