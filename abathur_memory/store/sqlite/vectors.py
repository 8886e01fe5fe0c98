"""float32 vector <-> bytes: the only place in the project that packs vectors.

The layout is what sqlite-vec's ``vec0`` tables take for ``float[N]`` columns: N
little-endian IEEE-754 float32 values, no header.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from abathur_memory.errors import InvalidInput

FLOAT32 = np.dtype("<f4")

Vector = Sequence[float] | npt.NDArray[np.floating]


def encode(vector: Vector, dim: int | None = None) -> bytes:
    """Pack one vector; ``dim`` (when given) is enforced, and non-finite values are refused."""
    array = np.asarray(vector, dtype=FLOAT32)
    if array.ndim != 1:
        raise InvalidInput(f"a vector must be one-dimensional, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise InvalidInput(f"vector has {array.shape[0]} dimensions, expected {dim}")
    if not np.isfinite(array).all():
        raise InvalidInput("vector contains NaN or infinity")
    return array.tobytes()


def decode(blob: bytes, dim: int | None = None) -> npt.NDArray[np.float32]:
    """Unpack one vector (a read-only view on ``blob``)."""
    if len(blob) % FLOAT32.itemsize:
        raise InvalidInput(f"vector blob of {len(blob)} bytes is not a whole number of float32")
    array = np.frombuffer(blob, dtype=FLOAT32)
    if dim is not None and array.shape[0] != dim:
        raise InvalidInput(f"vector blob has {array.shape[0]} dimensions, expected {dim}")
    return array


def decode_many(blobs: Sequence[bytes], dim: int) -> npt.NDArray[np.float32]:
    """Unpack equal-length vectors into one (n, dim) matrix."""
    if not blobs:
        return np.empty((0, dim), dtype=FLOAT32)
    joined = b"".join(blobs)
    if len(joined) != len(blobs) * dim * FLOAT32.itemsize:
        raise InvalidInput(f"vector blobs do not all have {dim} dimensions")
    return np.frombuffer(joined, dtype=FLOAT32).reshape(len(blobs), dim)
