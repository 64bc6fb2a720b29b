"""Reads the pixels of the PNG files headless chromium writes (tests only: no imaging library)."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def read_png(path) -> np.ndarray:
    """The pixels of an 8-bit RGB or RGBA PNG (what chromium's --screenshot writes) as an
    array (height, width, channels)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and not interlace
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prior = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            line = row
        elif kind == 2:
            line = (row + prior) & 255
        elif kind == 1:
            line = (np.cumsum(row.reshape(width, bpp), axis=0) & 255).reshape(-1)
        else:  # 3 (average) and 4 (Paeth) depend on the pixel just written
            line = row.copy()
            for x in range(width * bpp):
                left = line[x - bpp] if x >= bpp else 0
                up = prior[x]
                if kind == 3:
                    line[x] = (line[x] + (left + up) // 2) & 255
                else:
                    corner = prior[x - bpp] if x >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                    line[x] = (line[x] + pred) & 255
        out[y] = prior = line
    return out.reshape(height, width, bpp).astype(np.uint8)
