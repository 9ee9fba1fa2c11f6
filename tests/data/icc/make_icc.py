#!/usr/bin/env python3
"""make_icc.py - writes the two ICC v2 profiles the image tests embed in photos.

  wide_rgb.icc  a matrix/TRC RGB display profile with ProPhoto (ROMM) primaries and gamma 1.8:
                far enough from sRGB that reading its numbers as sRGB is visibly wrong.
  gray.icc      a grey display profile (gamma 2.2): attached to an RGB photo it does not fit.

Made here so the tests need no package that happens to ship profiles. Run from this folder:
python3 make_icc.py (the outputs are committed; the bytes are deterministic).
"""
import struct

D50 = (0.9642, 1.0, 0.8249)


def s15(v):
    return struct.pack(">i", int(round(v * 65536)))


def xyz(x, y, z):
    return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)


def curv(gamma):
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def desc(text):
    a = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + struct.pack(">II", 0, 0) +
            struct.pack(">HB", 0, 0) + b"\0" * 67)


def text(t):
    return b"text" + b"\0" * 4 + t.encode("ascii") + b"\0"


def profile(space, tags):
    n = len(tags)
    offset = 128 + 4 + 12 * n
    table, data = b"", b""
    for sig, body in tags:
        while len(body) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntr" +
              space + b"XYZ " + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 4 +
              b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0) + s15(D50[0]) +
              s15(D50[1]) + s15(D50[2]) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + struct.pack(">I", n) + table + data


wide = profile(b"RGB ", [
    (b"desc", desc("exhibit test: ProPhoto primaries, gamma 1.8")),
    (b"cprt", text("No copyright: test data")),
    (b"wtpt", xyz(*D50)),
    (b"rXYZ", xyz(0.7977, 0.2880, 0.0)),
    (b"gXYZ", xyz(0.1352, 0.7119, 0.0)),
    (b"bXYZ", xyz(0.0313, 0.0001, 0.8249)),
    (b"rTRC", curv(1.8)),
    (b"gTRC", curv(1.8)),
    (b"bTRC", curv(1.8)),
])
gray = profile(b"GRAY", [
    (b"desc", desc("exhibit test: grey, gamma 2.2")),
    (b"cprt", text("No copyright: test data")),
    (b"wtpt", xyz(*D50)),
    (b"kTRC", curv(2.2)),
])
with open("wide_rgb.icc", "wb") as f:
    f.write(wide)
with open("gray.icc", "wb") as f:
    f.write(gray)
