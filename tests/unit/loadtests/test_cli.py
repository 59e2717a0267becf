"""`python -m loadtests`: bad arguments exit 2 with a usage message before anything starts."""

import pytest

from loadtests.__main__ import main


def test_an_unknown_env_prints_the_spec_message_listing_known_envs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    error = capsys.readouterr().err
    assert "got 'nope'; no such environment" in error
    assert "known environments: " in error and "dev" in error


def test_an_unknown_app_names_the_apps_of_the_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "zero_shot"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: python -m loadtests <env> [<app>]")
    assert "dev has no app 'zero_shot'. Hint: apps of dev: doubleit, iris, plain-language, tabular, zero-shot" in error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: env"),
        (["dev", "--users", "0"], "argument --users: invalid positive integer value: '0'"),
        (["dev", "--duration", "ten"], "argument --duration: invalid positive integer value: 'ten'"),
        (["dev", "--spawn-rate", "-1"], "argument --spawn-rate: invalid positive number value: '-1'"),
        (["dev", "iris", "extra"], "unrecognized arguments: extra"),
        (["dev", "--host", "127.0.0.1:8000"], "argument --host: invalid URL (http://host:port) value: '127.0.0.1"),
        (["dev", "--host", "http://x:99999"], "argument --host: invalid URL (http://host:port) value: 'http://x:"),
    ],
)
def test_bad_arguments_exit_2_with_usage(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: python -m loadtests <env> [<app>] [--host URL]")
    assert message in error
