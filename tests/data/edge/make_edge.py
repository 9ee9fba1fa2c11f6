#!/usr/bin/env python3
"""Regenerates the edge-case files in this folder (see README.md). Run from this folder:
    python3 make_edge.py
Needs only the Python standard library, plus exiftool for huge_exif.jpg. Cut files are made
from tests/data/photos (drewnoakes/metadata-extractor-images: "free to use however you wish").
"""
import os
import struct
import subprocess
import zlib

PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "photos")


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(width, height, depth, colour, idat, iend=True):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    return out + (chunk(b"IEND", b"") if iend else b"")


def write(name, data):
    with open(name, "wb") as f:
        f.write(data)


def cut(src, name, nbytes):
    with open(os.path.join(PHOTOS, src), "rb") as f:
        write(name, f.read(nbytes))


# A header that lies: 20000x20000 RGB, then only 4 rows of valid deflate data and no IEND.
# Decoding it would fail as truncated; a header check must refuse it first as too large.
rows = zlib.compressobj(9)
part = rows.compress((b"\x00" + b"\x80" * (20000 * 3)) * 4) + rows.flush(zlib.Z_SYNC_FLUSH)
write("claims_20000x20000.png", png(20000, 20000, 8, 2, part, iend=False))

# A real decompression bomb: a complete, valid 24000x24000 1-bit PNG of zeros (576 MP,
# 72 MB of raw rows) that deflates to about 70 KB.
z = zlib.compressobj(9)
row = b"\x00" * (1 + 24000 // 8)
body = b"".join(z.compress(row * 1000) for _ in range(24)) + z.flush()
write("bomb_24000x24000.png", png(24000, 24000, 1, 0, body))

write("empty.jpg", b"")
write("tiny.ppm", b"P6\n2 2\n255\n" + bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]))
write("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
      b'<rect width="64" height="64" fill="red"/></svg>\n')
pdf_objs = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 64 64] >>",
]
pdf = b"%PDF-1.4\n"
offsets = []
for i, o in enumerate(pdf_objs, 1):
    offsets.append(len(pdf))
    pdf += b"%d 0 obj\n" % i + o + b"\nendobj\n"
xref = len(pdf)
pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(pdf_objs) + 1)
pdf += b"".join(b"%010d 00000 n \n" % off for off in offsets)
pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(pdf_objs) + 1, xref)
write("doc.pdf", pdf)
# An MP4-style ISO-BMFF header (brand isom): same box layout as HEIC, not an image.
write("video_isom.heic", struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
      + struct.pack(">I", 8) + b"free")
# JPEG magic bytes followed by noise: passes the sniff, must fail in the decoder.
write("magic_then_garbage.jpg", b"\xff\xd8\xff\xe0" + bytes((i * 73 + 11) & 0xFF for i in range(2000)))

cut("drewnoakes_Sanyo SR6.jpg", "truncated.jpg", 40000)
cut("drewnoakes_sampleWithExifData.png", "truncated.png", 8000)
cut("drewnoakes_Issue 473 (Java).webp", "truncated.webp", 15000)

# The largest EXIF block a JPEG can hold (one APP1 segment, < 64 KiB): a 60000-character
# UserComment, GPS and orientation 6, plus GPS in XMP, a city in IPTC and an ICC profile
# (the HP sRGB profile from the iPhone 4 photo), on a 320x240 photo that had only JFIF.
if os.path.exists("huge_exif.jpg"):
    os.remove("huge_exif.jpg")
icc = subprocess.run(["exiftool", "-b", "-ICC_Profile",
                      os.path.join(PHOTOS, "drewnoakes_Apple iPhone 4.jpg")],
                     check=True, capture_output=True).stdout
write("hp_srgb.icc.tmp", icc)
subprocess.run([
    "exiftool", "-q", "-o", "huge_exif.jpg",
    "-UserComment=" + "evidence " * 6666,
    "-EXIF:GPSLatitude=48.8584", "-EXIF:GPSLatitudeRef=N",
    "-EXIF:GPSLongitude=2.2945", "-EXIF:GPSLongitudeRef=E",
    "-EXIF:Orientation#=6",
    "-XMP:GPSLatitude=48.8584 N", "-XMP:GPSLongitude=2.2945 E",
    "-IPTC:City=Paris",
    "-ICC_Profile<=hp_srgb.icc.tmp",
    os.path.join(PHOTOS, "drewnoakes_Casio QV-7000SX.jpg"),
], check=True)
os.remove("hp_srgb.icc.tmp")
