#!/usr/bin/env python3
"""test_reuse.py - reused images across cases, through the real server, and `exhibit hash`.

A real photo is evidence in one case; edited copies of it (re-encoded, resized, cropped,
mirrored, bordered, with a text band) made with the vips command at test time are uploaded to
other cases and must come back as `near` matches with the `reused_near` flag, listed from both
sides by /similar; different real photos and a near-flat image must match nothing. `exhibit
hash` must print PDQ hashes within 10 bits of Meta's reference for the PDQ test images.
"""

import json
import sqlite3
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main_with_server, BIN, PHOTOS, TESTDATA, Runner, Server, check, expect_status,  # noqa: E402
                     photo, run_cli, wait_until)

R = Runner("e2e")
S = None
TMP = tempfile.mkdtemp(prefix="exhibit-e2e-reuse-")
SOURCE = "recurser_Landscape_1.jpg"  # 1800x1200 real photo, orientation 1

VARIANTS = {
    "jpeg q40": ["copy", "{src}", "{dst}[Q=40]"],
    "resize 50%": ["resize", "{src}", "{dst}", "0.5"],
    "centre crop 10%": ["crop", "{src}", "{dst}", "90", "60", "1620", "1080"],
    "mirror": ["flip", "{src}", "{dst}", "horizontal"],
    "rotate 90": ["rot", "{src}", "{dst}", "d90"],
    "white border 8%": ["embed", "{src}", "{dst}", "144", "96", "2088", "1392",
                        "--extend", "white"],
    # Off any grid: 41% of the area from near a corner, and a 12-degree tilt.
    "crop 41% off-centre": ["crop", "{src}", "{dst}", "1010", "420", "770", "690"],
    "tilt 12 degrees": ["rotate", "{src}", "{dst}", "12"],
}


def vips(args):
    subprocess.run(["vips"] + args, check=True, capture_output=True, timeout=120)


def make_variant(name, argv):
    src = os.path.join(PHOTOS, SOURCE)
    dst = os.path.join(TMP, name.replace(" ", "_").replace("%", "") + ".jpg")
    vips([a.format(src=src, dst=dst) for a in argv])
    with open(dst, "rb") as f:
        return f.read()


def upload(data, buyer="buyer"):
    """Uploads as a buyer; returns the item as a mediator sees it (buyers never see reuse)."""
    c = S.create_case(buyer_id="b-alice" if buyer == "buyer" else "b-bob")
    r = S.upload_raw(c["case_id"], data, "image/jpeg", as_=buyer)
    expect_status(r, 201)
    mine = r.json["items"][0]
    check(mine["matches"] == [] and not set(mine["flags"]) & {"reused_exact", "reused_near"},
          "a buyer's upload response tells of other cases: %r" % mine)
    r = S.get("/v1/evidence/" + mine["evidence_id"], "mediator")
    expect_status(r, 200)
    return c, r.json


@R.test
def edited_copies_match_the_original_in_other_cases():
    _, orig = upload(photo(SOURCE))
    check(orig["hashes"]["pdq_quality"] >= 50, "source photo quality %r" % orig["hashes"])
    problems = []
    for name, argv in VARIANTS.items():
        _, item = upload(make_variant(name, argv), "buyer2")
        near = [m for m in item["matches"] if m["evidence_id"] == orig["evidence_id"]]
        if not near or near[0]["kind"] != "near" or "reused_near" not in item["flags"]:
            problems.append("%s: matches %r flags %r" % (name, item["matches"], item["flags"]))
        elif not 0 < near[0]["distance"] <= 256:
            problems.append("%s: distance %r" % (name, near[0]["distance"]))
        else:
            # Where the two overlap, in fractions of each picture, for the mediator's outline.
            rg = near[0].get("region") or {}
            boxes = [rg.get("this"), rg.get("other")]
            if near[0].get("tier") not in ("features", "pdq") or not all(
                    isinstance(b, list) and len(b) == 4 and all(0 <= v <= 1 for v in b)
                    and b[0] < b[2] and b[1] < b[3] for b in boxes):
                problems.append("%s: tier %r region %r" % (name, near[0].get("tier"), rg))
    check(not problems, "edited copies not matched:\n" + "\n".join(problems))
    r = S.get("/v1/evidence/%s/similar" % orig["evidence_id"], "mediator")
    expect_status(r, 200)
    check(len([m for m in r.json["matches"] if m["kind"] == "near"]) >= len(VARIANTS) - len(problems),
          "/similar from the original lists the copies: %r" % r.json)
    dists = [m["distance"] for m in r.json["matches"]]
    check(dists == sorted(dists), "closest first: %r" % dists)


@R.test
def the_index_is_rebuilt_at_start():
    _, orig = upload(photo("drewnoakes_Panasonic DMC-LC40.jpg"))
    S.stop()
    S.start()
    src = os.path.join(PHOTOS, "drewnoakes_Panasonic DMC-LC40.jpg")
    dst = os.path.join(TMP, "panasonic_small.jpg")
    vips(["resize", src, dst + "[Q=60]", "0.4"])
    with open(dst, "rb") as f:
        _, item = upload(f.read(), "buyer2")
    check([m["evidence_id"] for m in item["matches"]] == [orig["evidence_id"]],
          "after a restart the copy still matches: %r" % item["matches"])


def stale_signatures(data_dir):
    """Makes every stored signature look like one of an older version (as after an upgrade)."""
    db = sqlite3.connect(os.path.join(data_dir, "exhibit.db"))
    with db:
        db.execute("UPDATE blobs SET rsig = NULL")
    n = db.execute("SELECT count(*) FROM blobs WHERE meta IS NOT NULL").fetchone()[0]
    db.close()
    return n


@R.test
def reindex_recomputes_old_signatures():
    _, orig = upload(photo("drewnoakes_Nikon D5000.jpg"))
    S.stop()
    n = stale_signatures(S.data_dir)
    r = run_cli(["reindex", "--data", S.data_dir], "reindex")
    check(r.rc == 0 and ("reindex: %d signatures recomputed, 0 failed" % n) in r.stdout,
          "reindex: rc %r stdout %r stderr %r" % (r.rc, r.stdout, r.stderr[-500:]))
    again = run_cli(["reindex", "--data", S.data_dir], "reindex2")
    check(again.rc == 0 and "reindex: 0 signatures recomputed" in again.stdout,
          "a second run has nothing to do: %r" % again.stdout)
    S.start()
    src = os.path.join(PHOTOS, "drewnoakes_Nikon D5000.jpg")
    dst = os.path.join(TMP, "nikon_crop.jpg")
    vips(["crop", src, dst + "[Q=70]", "300", "100", "500", "420"])
    with open(dst, "rb") as f:
        _, item = upload(f.read(), "buyer2")
    check(orig["evidence_id"] in [m["evidence_id"] for m in item["matches"]],
          "after reindex a crop matches: %r" % item["matches"])


@R.test
def the_server_reindexes_in_the_background():
    _, orig = upload(photo("drewnoakes_Samsung SM-J327T1.jpg"))
    S.stop()
    stale_signatures(S.data_dir)
    S.start()
    src = os.path.join(PHOTOS, "drewnoakes_Samsung SM-J327T1.jpg")
    dst = os.path.join(TMP, "samsung_small.jpg")
    vips(["resize", src, dst + "[Q=60]", "0.5"])
    with open(dst, "rb") as f:
        data = f.read()
    # The server serves at once and rewrites the old signatures behind the scenes.
    found = wait_until(lambda: orig["evidence_id"] in [
        m["evidence_id"] for m in upload(data, "buyer2")[1]["matches"]], timeout=120, interval=1.0)
    check(found, "the copy never matched after a background reindex")


@R.test
def different_photos_do_not_match():
    names = ["drewnoakes_Kodak DC240.jpg", "drewnoakes_Ricoh RDC5300.jpg",
             "drewnoakes_Olympus PEN E-P3.jpg", "drewnoakes_Sony DSC-HX5V (2).jpg",
             "drewnoakes_Casio EX-S1.jpg",
             "drewnoakes_Canon EOS REBEL T3i.jpg", "drewnoakes_Minolta DiMAGE X.jpg"]
    for n in names:
        _, item = upload(photo(n))
        check(item["matches"] == [] and "reused_near" not in item["flags"],
              "%s matched something: %r" % (n, item["matches"]))


@R.test
def near_flat_images_never_match():
    flat = os.path.join(TMP, "flat.jpg")
    vips(["black", os.path.join(TMP, "b.v"), "640", "480", "--bands", "3"])
    vips(["linear", os.path.join(TMP, "b.v"), flat + "[Q=90]", "1", "128"])
    with open(flat, "rb") as f:
        data = f.read()
    _, first = upload(data)
    check(first["hashes"]["pdq_quality"] < 50, "a flat image has low quality: %r" % first["hashes"])
    _, second = upload(data[:-2] + b"\xff\xd9" if data.endswith(b"\xff\xd9") else data, "buyer2")
    near = [m for m in second["matches"] if m["kind"] == "near"]
    check(near == [], "flat images matched: %r" % near)


@R.test
def hash_cli_agrees_with_the_pdq_reference():
    rows = {}
    with open(os.path.join(TESTDATA, "pdq", "expected.csv")) as f:
        next(f)
        for line in f:
            name, hexv, q = line.strip().split(",")
            if int(q) >= 80 and name not in ("exif-rotn/exif-rotn-3.jpg", "exif-rotn/exif-rotn-6.jpg",
                                             "exif-rotn/exif-rotn-8.jpg"):
                rows[name] = hexv
    files = [os.path.join(TESTDATA, "pdq", n) for n in sorted(rows)]
    out = subprocess.run([BIN, "hash"] + files, capture_output=True, text=True, timeout=600)
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    check(len(lines) == len(files), "one line per file: %d of %d" % (len(lines), len(files)))
    bad = []
    for rec in lines:
        name = os.path.relpath(rec["file"], os.path.join(TESTDATA, "pdq"))
        check(set(rec) >= {"file", "sha256", "pdq", "pdq_quality", "phash64"}, "fields %r" % rec)
        d = bin(int(rec["pdq"], 16) ^ int(rows[name], 16)).count("1")
        if d > 10:
            bad.append("%s: %d bits from the reference" % (name, d))
    check(not bad, "\n".join(bad))


if __name__ == "__main__":
    sys.exit(main_with_server(R, "reuse", globals()))
