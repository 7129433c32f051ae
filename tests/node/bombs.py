"""Small PNG files that declare huge images ("decompression bombs"), written row by row so
that making them costs the test no more memory than the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png(path: Path, width: int, height: int, *, bit_depth: int = 1,
              colour_type: int = 0, rows: int | None = None) -> Path:
    """A blank PNG of ``width`` x ``height``: 1-bit greyscale by default (10000x10000 is
    ~12 KB); ``rows`` writes only that many rows of pixel data (a truncated file)."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    row = b"\0" + bytes((width * channels * bit_depth + 7) // 8)
    packer = zlib.compressobj(9)
    data = bytearray()
    for _ in range(height if rows is None else rows):
        data += packer.compress(row)
    data += packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", bytes(data))
                     + _chunk(b"IEND", b""))
    return path
