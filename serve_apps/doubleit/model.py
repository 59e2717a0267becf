"""DoubleIt with its TorchScript module; no Ray."""

from collections.abc import Sequence
from pathlib import Path

import torch


class DoubleItModel:
    """The scripted module, run on float64 so that doubling is exact."""

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        torch.set_num_threads(num_threads)
        self._module = torch.jit.load(str(path), map_location="cpu").eval()

    def predict(self, values: Sequence[float]) -> list[float]:
        """2 * x for every x, exact in float64 while the result stays finite."""
        with torch.inference_mode():
            doubled = self._module(torch.tensor(values, dtype=torch.float64))
        return [float(value) for value in doubled.tolist()]
