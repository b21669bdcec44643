"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimension sizes, then the
data in C order, big-endian. Files may be gzip-compressed (detected by content, not by name).

The reader trusts nothing in the header: every size is checked against the bytes actually
present before any array is built, so a truncated or corrupt file gives a ``DataError`` that
names the file and the problem rather than a crash or a huge allocation.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from edgekit.data.errors import DataError
from edgekit.tempfiles import atomic_write_bytes

# IDX dtype code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise DataError(f"IDX file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"IDX file {str(path)!r} is a corrupt gzip stream: {exc}") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into a native-endian array; ``name`` is used in errors."""
    if len(raw) < 4:
        raise DataError(f"IDX file {name!r} is truncated: {len(raw)} bytes, no complete header")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00":
        raise DataError(f"IDX file {name!r} has bad magic number {raw[:4].hex()}; expected 0000<dtype><ndim>")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"IDX file {name!r} has dtype code 0x{code:02x}; expected one of {known}")
    if ndim == 0:
        raise DataError(f"IDX file {name!r} declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {name!r} is truncated: header needs {header} bytes, file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize  # object: no int64 overflow
    found = len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"IDX file {name!r} is {problem}: dims {list(dims)} of {dtype.name} need "
            f"{expected} data bytes, found {found}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a native-endian numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as IDX; gzip-compressed when ``path`` ends with ``.gz``."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"write_idx got dtype {array.dtype}; expected one of {sorted(str(d) for d in codes)}")
    if array.ndim < 1 or array.ndim > 255:
        raise DataError(f"write_idx got an array with {array.ndim} dimensions; expected 1 to 255")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    data = header + body
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # mtime=0: identical input, identical file
    atomic_write_bytes(Path(path), data)
