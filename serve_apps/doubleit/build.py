"""Script and save the DoubleIt TorchScript module."""

import functools
import hashlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SERIALIZATION_ID = ".data/serialization_id"


def build(target: Path) -> None:
    """Write the scripted module to `target`."""
    import torch

    buffer = io.BytesIO()
    # Saved through a buffer: a file name would become the archive's root folder and change the bytes.
    torch.jit.save(_scripted(), buffer)
    target.write_bytes(_without_debug_info(buffer.getvalue()))


@functools.cache
def _scripted() -> "torch.jit.ScriptModule":
    """Scripted once per process: scripting the class again renames it (`___torch_mangle_1`), changing the bytes."""
    import torch

    class DoubleIt(torch.nn.Module):
        def forward(self, values: torch.Tensor) -> torch.Tensor:
            return values * 2

    return torch.jit.script(DoubleIt())


def _without_debug_info(archive: bytes) -> bytes:
    """The TorchScript archive made reproducible: no *.debug_pkl entries, a serialization id from the content.

    The debug entries hold source ranges with the absolute path of this file, and torch draws a fresh
    serialization id per save, so the bytes (and the sha256 the dev spec commits) would depend on where and when
    the model was built. Loading needs neither.
    """
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        entries = [(e.filename, source.read(e)) for e in source.infolist() if not e.filename.endswith(".debug_pkl")]
    digest = hashlib.sha256(b"".join(data for name, data in entries if not name.endswith(SERIALIZATION_ID)))
    stripped = io.BytesIO()
    with zipfile.ZipFile(stripped, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries:
            content = str(int(digest.hexdigest(), 16))[:40].encode() if name.endswith(SERIALIZATION_ID) else data
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return stripped.getvalue()
