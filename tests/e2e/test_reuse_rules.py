#!/usr/bin/env python3
"""test_reuse_rules.py - reused images: correct under concurrency, the same from both sides,
and invisible to buyers.

- Races: copies of one picture (the same bytes, and a q40 re-encode) uploaded at the same
  moment to different cases must find each other, every round; a refused upload is never a
  match.
- Symmetry: once a later item repeats an earlier one, both carry the reuse flag for staff; the
  earlier item names the later one in `matched_by` (its `matches` stay the earlier evidence it
  repeats, as API.md says).
- Buyers learn nothing: no other case id, no matches, no reuse flag in anything a buyer key can
  read (upload response, GET case, GET evidence, /similar refused).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main_with_server, PHOTOS, Part, Runner, check, expect_status,  # noqa: E402
                     photo, with_jpeg_comment)

R = Runner("e2e")
S = None
TMP = tempfile.mkdtemp(prefix="exhibit-e2e-reuse-rules-")
REUSE_FLAGS = ("reused_exact", "reused_near")

# Real photos of different scenes (none is a copy of another), one per race round.
RACE_PHOTOS = ["drewnoakes_Kodak DC240.jpg", "drewnoakes_Ricoh RDC5300.jpg",
               "drewnoakes_Olympus PEN E-P3.jpg", "drewnoakes_Sony DSC-HX5V (2).jpg",
               "drewnoakes_Casio EX-S1.jpg", "drewnoakes_Canon EOS REBEL T3i.jpg",
               "drewnoakes_Minolta DiMAGE X.jpg", "drewnoakes_Panasonic DMC-LC40.jpg",
               "drewnoakes_Nikon D1X.jpg", "drewnoakes_Canon EOS D60.jpg"]


def reencode(name, quality=40):
    src = os.path.join(PHOTOS, name)
    dst = os.path.join(TMP, uuid.uuid4().hex + ".jpg")
    subprocess.run(["vips", "copy", src, "%s[Q=%d]" % (dst, quality)], check=True,
                   capture_output=True, timeout=120)
    with open(dst, "rb") as f:
        return f.read()


def unique(data):
    return with_jpeg_comment(data, "exhibit-reuse-rules " + uuid.uuid4().hex)


def as_staff(evidence_id):
    r = S.get("/v1/evidence/" + evidence_id, "mediator")
    expect_status(r, 200, "GET evidence as mediator")
    return r.json


def linked(a, b):
    """The match recorded between two items, from either side, as mediators see it."""
    for x, y in ((a, b), (b, a)):
        item = as_staff(x)
        for field in ("matches", "matched_by"):
            for m in item.get(field) or []:
                if m["evidence_id"] == y:
                    return m
    return None


def parallel_uploads(jobs):
    """Uploads every (case_id, data, key) at the same moment; returns the items in order."""
    barrier = threading.Barrier(len(jobs))
    out = [None] * len(jobs)

    def worker(i, case_id, data, key):
        barrier.wait()
        try:
            out[i] = S.upload_raw(case_id, data, "image/jpeg", as_=key)
        except Exception as ex:  # reported below as a failed upload
            out[i] = ex

    threads = [threading.Thread(target=worker, args=(i,) + job) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    items = []
    for i, r in enumerate(out):
        check(not isinstance(r, Exception) and r is not None, "upload %d: %r" % (i, r))
        expect_status(r, 201, "parallel upload %d" % i)
        items.append(r.json["items"][0])
    return items


@R.test
def simultaneous_copies_in_different_cases_find_each_other():
    """Each round: the same bytes to two cases and a photo plus its q40 re-encode to two more,
    all four at once. Every pair of the four is the same picture and must be matched."""
    missed = []
    for rnd, name in enumerate(RACE_PHOTOS):
        orig = photo(name)
        exact = unique(orig)
        near = reencode(name)
        cases = [S.create_case(buyer_id="b-alice" if i % 2 == 0 else "b-bob")["case_id"]
                 for i in range(4)]
        jobs = [(cases[0], exact, "buyer"), (cases[1], exact, "buyer2"),
                (cases[2], orig, "buyer"), (cases[3], near, "buyer2")]
        items = parallel_uploads(jobs)
        ids = [it["evidence_id"] for it in items]
        for i in range(4):
            for j in range(i + 1, 4):
                m = linked(ids[i], ids[j])
                if m is None:
                    missed.append("round %d (%s): upload %d and %d not matched" % (rnd, name, i, j))
                elif (i, j) == (0, 1) and (m["kind"], m["distance"]) != ("exact", 0):
                    missed.append("round %d: same bytes matched as %r" % (rnd, m))
    check(not missed, "%d of %d pairs missed:\n%s" % (len(missed), 6 * len(RACE_PHOTOS),
                                                      "\n".join(missed)))


@R.test
def a_near_match_flags_both_items():
    name = "drewnoakes_Sanyo SR6.jpg"
    c1 = S.create_case(buyer_id="b-alice")["case_id"]
    c2 = S.create_case(buyer_id="b-bob")["case_id"]
    r = S.upload_raw(c1, photo(name), "image/jpeg", as_="warehouse")
    expect_status(r, 201)
    first = r.json["items"][0]
    r = S.upload_raw(c2, reencode(name), "image/jpeg", as_="warehouse")
    expect_status(r, 201)
    second = r.json["items"][0]
    check([m["evidence_id"] for m in second["matches"]] == [first["evidence_id"]]
          and "reused_near" in second["flags"], "the later item: %r" % second)
    for who in ("mediator", "admin", "platform", "warehouse"):
        r = S.get("/v1/evidence/" + first["evidence_id"], who)
        expect_status(r, 200)
        got = r.json
        check("reused_near" in got["flags"], "%s: the earlier item lacks reused_near: %r"
              % (who, got["flags"]))
        check(got["matches"] == [], "%s: the earlier item's matches are earlier evidence only: %r"
              % (who, got["matches"]))
        by = got.get("matched_by") or []
        check([(m["evidence_id"], m["case_id"], m["kind"]) for m in by]
              == [(second["evidence_id"], c2, "near")]
              and 0 < by[0]["distance"] <= 256, "%s: matched_by %r" % (who, by))
        r = S.get("/v1/cases/" + c1, who)
        expect_status(r, 200)
        ev = [e for e in r.json["evidence"] if e["evidence_id"] == first["evidence_id"]][0]
        check("reused_near" in ev["flags"] and ev.get("matched_by"),
              "%s: GET case shows the earlier item without its reuse: %r" % (who, ev))
    r = S.get("/v1/evidence/%s/similar" % first["evidence_id"], "mediator")
    expect_status(r, 200)
    check(second["evidence_id"] in [m["evidence_id"] for m in r.json["matches"]],
          "/similar from the earlier item: %r" % r.json)


@R.test
def an_exact_match_flags_both_items():
    data = unique(photo("drewnoakes_HTC Desire.jpg"))
    c1 = S.create_case(buyer_id="b-alice")["case_id"]
    c2 = S.create_case(buyer_id="b-bob")["case_id"]
    first = S.upload_raw(c1, data, "image/jpeg", as_="warehouse").json["items"][0]
    second = S.upload_raw(c2, data, "image/jpeg", as_="warehouse").json["items"][0]
    got = as_staff(first["evidence_id"])
    check("reused_exact" in got["flags"] and got["matches"] == []
          and [(m["evidence_id"], m["kind"], m["distance"]) for m in got["matched_by"]]
          == [(second["evidence_id"], "exact", 0)], "earlier item: %r" % got)
    got = as_staff(second["evidence_id"])
    check("reused_exact" in got["flags"] and got["matched_by"] == []
          and [m["evidence_id"] for m in got["matches"]] == [first["evidence_id"]],
          "later item: %r" % got)


@R.test
def a_refused_upload_is_never_a_match():
    """All-or-nothing: a photo of a refused request must not be found by a later copy."""
    name = "drewnoakes_Samsung GT-I9000 (Galaxy S).jpg"
    c1 = S.create_case(buyer_id="b-alice")["case_id"]
    c2 = S.create_case(buyer_id="b-bob")["case_id"]
    bad = photo("drewnoakes_Sanyo SR6.jpg")[:20000]
    r = S.upload_multipart(c1, [_part(photo(name)), _part(bad)], "warehouse")
    expect_status(r, 422, "one undecodable file refuses the request")
    r = S.upload_raw(c2, reencode(name), "image/jpeg", as_="warehouse")
    expect_status(r, 201)
    item = r.json["items"][0]
    check(item["matches"] == [] and not set(item["flags"]) & set(REUSE_FLAGS),
          "matched a refused upload: %r" % item["matches"])
    r = S.upload_raw(c1, photo(name), "image/jpeg", as_="warehouse")
    expect_status(r, 201)
    check([m["evidence_id"] for m in r.json["items"][0]["matches"]] == [item["evidence_id"]],
          "the original, sent again, finds the copy: %r" % r.json["items"][0]["matches"])


def leaks(body, other_case_ids, other_evidence_ids):
    """What in a buyer-readable JSON body tells of another case."""
    found = []
    text = json.dumps(body)
    for x in other_case_ids + other_evidence_ids:
        if x in text:
            found.append("names %s" % x)
    for flag in REUSE_FLAGS:
        if flag in text:
            found.append("carries %s" % flag)
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("matches", "matched_by") and v:
                    found.append("non-empty %s: %r" % (k, v))
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    return found


@R.test
def buyers_learn_nothing_of_other_cases():
    """Alice's photo is reused by Bob (the same bytes) and re-encoded by Bob; and Alice reuses
    one of Bob's. Neither buyer key sees any sign of the other case anywhere."""
    a_case = S.create_case(buyer_id="b-alice")["case_id"]
    b_case = S.create_case(buyer_id="b-bob")["case_id"]
    name, other = "drewnoakes_FujiFilm SP-2500.jpg", "drewnoakes_Casio QV-7000SX.jpg"
    exact = unique(photo(name))
    bobs = unique(photo(other))
    bodies = []  # (who, what, response)

    def keep(who, what, r, status=200):
        expect_status(r, status, what)
        bodies.append((who, what, r.json))
        return r.json

    a1 = keep("buyer", "alice upload", S.upload_raw(a_case, exact, "image/jpeg", "buyer"), 201)
    b1 = keep("buyer2", "bob upload same bytes",
              S.upload_raw(b_case, exact, "image/jpeg", "buyer2"), 201)
    b2 = keep("buyer2", "bob upload re-encode",
              S.upload_raw(b_case, reencode(name), "image/jpeg", "buyer2"), 201)
    b3 = keep("buyer2", "bob upload own photo",
              S.upload_raw(b_case, bobs, "image/jpeg", "buyer2"), 201)
    a2 = keep("buyer", "alice upload of bob's photo",
              S.upload_raw(a_case, bobs, "image/jpeg", "buyer"), 201)
    # Staff do see the reuse (so the redaction below is not just a missed match).
    for later, earlier in ((b1, a1), (b2, a1), (a2, b3)):
        m = linked(later["items"][0]["evidence_id"], earlier["items"][0]["evidence_id"])
        check(m is not None, "staff see no match between %s and %s"
              % (later["items"][0]["evidence_id"], earlier["items"][0]["evidence_id"]))
    # Uploading the same bytes again (200, already on the case) must not tell either.
    keep("buyer2", "bob re-upload", S.upload_raw(b_case, exact, "image/jpeg", "buyer2"), 200)
    keep("buyer", "alice multipart re-upload",
         S.upload_multipart(a_case, [_part(exact), _part(bobs)], "buyer"), 200)

    own = {"buyer": (a_case, [a1, a2]), "buyer2": (b_case, [b1, b2, b3])}
    for who, (case_id, ups) in own.items():
        keep(who, "GET own case", S.get("/v1/cases/" + case_id, who))
        for up in ups:
            eid = up["items"][0]["evidence_id"]
            keep(who, "GET evidence " + eid, S.get("/v1/evidence/" + eid, who))
            r = S.get("/v1/evidence/%s/similar" % eid, who)
            check(r.status in (403, 404), "%s: /similar is %d for a buyer" % (who, r.status))
            bodies.append((who, "/similar", r.json))
        r = S.get("/v1/cases?order_id=x", who)
        check(r.status in (403, 404), "%s: case search is %d for a buyer" % (who, r.status))
        keep(who, "GET session", S.get("/v1/session", who))
    problems = []
    for who, what, body in bodies:
        mine = own[who][0]
        others = [c for c in (a_case, b_case) if c != mine]
        other_ids = [x["items"][0]["evidence_id"]
                     for w, (_, ups) in own.items() if w != who for x in ups]
        for p in leaks(body, others, other_ids):
            problems.append("%s %s: %s" % (who, what, p))
    check(not problems, "buyer-readable responses tell of another case:\n" + "\n".join(problems))


def _part(data):
    return Part("file", data, "x.jpg", "image/jpeg")


if __name__ == "__main__":
    sys.exit(main_with_server(R, "reuse-rules", globals()))
