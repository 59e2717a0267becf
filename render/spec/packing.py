"""Whether GPU replicas fit the GPU nodes: fractions share one GPU, whole GPUs must sit on one node, CPUs count too."""

from __future__ import annotations

from dataclasses import dataclass, field

# Ray stores resource amounts with four decimal places; 4 x 0.25 must fill a GPU exactly.
_EPS = 1e-4


@dataclass
class GpuNode:
    """One worker node at max scale-out, with what is still free on it."""

    gpus: int
    cpus: float
    group: str
    free_gpu: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.free_gpu = [1.0] * self.gpus

    def place(self, demand: GpuDemand) -> bool:
        """Reserve the demand on this node if it fits; return whether it did."""
        if demand.cpus > self.cpus + _EPS:
            return False
        if demand.gpus <= 1:
            candidates = [i for i, free in enumerate(self.free_gpu) if free + _EPS >= demand.gpus]
            if not candidates:
                return False
            # Best fit: the fullest GPU that still takes it keeps whole GPUs free for whole-GPU replicas.
            best = min(candidates, key=lambda i: self.free_gpu[i])
            self.free_gpu[best] -= demand.gpus
        else:
            whole = [i for i, free in enumerate(self.free_gpu) if free + _EPS >= 1.0]
            if len(whole) < demand.gpus:
                return False
            for i in whole[: int(demand.gpus)]:
                self.free_gpu[i] = 0.0
        self.cpus -= demand.cpus
        return True


@dataclass(frozen=True)
class GpuDemand:
    """One replica's GPU and CPU needs, and the (app, deployment) indices it belongs to."""

    gpus: float
    cpus: float
    owner: tuple[int, int]


def unplaced_replicas(demands: list[GpuDemand], nodes: list[GpuNode]) -> list[GpuDemand]:
    """Pack demands onto nodes, largest first (first-fit decreasing); return those that found no room."""
    unplaced = []
    for demand in sorted(demands, key=lambda d: (-d.gpus, -d.cpus, d.owner)):
        if not any(node.place(demand) for node in nodes):
            unplaced.append(demand)
    return unplaced
