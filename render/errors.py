"""The exceptions a user can cause; the CLI turns them into messages, never tracebacks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the spec, located by file and dotted key path."""

    file: str
    path: str
    got: str
    rule: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        text = f"{where}: got {self.got}; {self.rule}."
        return f"{text} Hint: {self.hint}" if self.hint else text


class ServingError(Exception):
    """Root of every error the toolkit reports to a user."""


class SpecError(ServingError):
    """The spec under deployments/ is invalid; carries every problem found, and the checks that could not run
    because of them (one sentence each, e.g. "prod: ... did not run: ...")."""

    def __init__(self, problems: list[Problem], not_run: Iterable[str] = ()) -> None:
        self.problems = sorted(set(problems))
        self.not_run = tuple(dict.fromkeys(not_run))
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(ServingError):
    """A rendered manifest failed validation against its schema."""


class OutputDirError(ServingError):
    """The output directory is not one a render may replace: it holds files, and none that a render writes."""


class StaleRenderError(ServingError):
    """rendered/ differs from what the spec renders to (render --check)."""
