#!/usr/bin/env python3
"""test_api.py - black-box tests of the exhibit HTTP API and CLI.

The contract is /work/shared/API.md plus the e2e brief (status codes, error codes, CLI output).
One server runs for most tests (fresh temp data dir, keys made with the CLI); a few tests start
their own (start-up cleaning, configured limits). Expected values come from the contract, from
tests/data/photos/expected.tsv (exiftool's answers) or from hashlib, never from the server.
Optional behaviour that depends on image decoding (width, exif, derivatives) is only checked
when the server returns it; then it must be right.

Run: python3 tests/e2e/test_api.py   (EXHIBIT_BIN overrides build/asan/exhibit)
"""

import base64
import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, DEFAULT_MAX_BODY, EXPECTED, Failure, Part, Response,  # noqa: E402
                     Runner, Server, StorageSnapshot, audit_verify, case_body, check,
                     create_key, expect_error, expect_status, file_part, http_request,
                     jpeg_info, multipart_encode, parse_rfc3339, photo, request_head, rfc3339,
                     run_cli, sha256, utcnow, wait_until, with_jpeg_comment, check_each)

R = Runner("e2e")
S = None  # the shared server, started in main()
ST = {}  # objects shared between tests (ids of earlier uploads)
DAY = datetime.timedelta(days=1)
SEC = datetime.timedelta(seconds=1)

PAYER = {"damaged": "seller", "not_as_described": "seller", "wrong_item": "seller",
         "missing_parts": "seller", "changed_mind": "buyer"}
REQUIRED = ("order_id", "buyer_id", "seller_id", "reason", "category", "delivered_at")
ERROR_404 = ("case_not_found", "evidence_not_found", "not_found")


def fresh_jpeg(name):
    """A real photo made byte-unique, for tests that must not collide with other uploads."""
    return with_jpeg_comment(photo(name), "exhibit-e2e " + uuid.uuid4().hex)


def evidence_path(case_id):
    return "/v1/cases/%s/evidence" % case_id


def single_item(resp, status=201):
    expect_status(resp, status, "upload")
    body = resp.json
    check(isinstance(body, dict) and isinstance(body.get("items"), list),
          "%s: expected {\"items\": [...]}, got %s" % (resp.req, resp.text()))
    check(len(body["items"]) == 1, "%s: expected 1 item, got %d" % (resp.req, len(body["items"])))
    return body["items"][0]


def check_item(it, case_id, source, data, media_type):
    """The fields the contract fixes for an evidence item, checked against the uploaded bytes."""
    pre = "evidence item %s: " % it.get("evidence_id")
    check(isinstance(it.get("evidence_id"), str) and it["evidence_id"], pre + "no evidence_id")
    check(it.get("case_id") == case_id, pre + "case_id %r, want %r" % (it.get("case_id"), case_id))
    check(it.get("source") == source, pre + "source %r, want %r" % (it.get("source"), source))
    check(it.get("sha256") == sha256(data), pre + "sha256 %r, want %s" % (it.get("sha256"),
                                                                        sha256(data)))
    check(it.get("bytes") == len(data), pre + "bytes %r, want %d" % (it.get("bytes"), len(data)))
    check(it.get("media_type") == media_type,
          pre + "media_type %r, want %r" % (it.get("media_type"), media_type))
    created = parse_rfc3339(it.get("created_at"))
    check(abs((created - utcnow()).total_seconds()) < 600, pre + "created_at %s is not now"
          % it.get("created_at"))
    check(isinstance(it.get("flags"), list) and all(isinstance(f, str) for f in it["flags"]),
          pre + "flags must be a list of strings: %r" % (it.get("flags"),))
    check(isinstance(it.get("matches"), list), pre + "matches must be a list")
    urls = it.get("urls")
    check(isinstance(urls, dict), pre + "urls missing")
    for kind in ("thumb", "preview", "original"):
        want = "/v1/evidence/%s/%s" % (it["evidence_id"], kind)
        check(isinstance(urls.get(kind), str) and urls[kind].endswith(want),
              pre + "urls.%s = %r, want %r" % (kind, urls.get(kind), want))
    ref = EXPECTED.get(next((n for n, row in EXPECTED.items() if row["sha256"] == sha256(data)),
                            ""))
    if ref and "width" in it and ref["width"]:
        dims = (int(ref["width"]), int(ref["height"]))
        ok = [dims] + ([dims[::-1]] if ref["orientation"] in ("5", "6", "7", "8") else [])
        check((it.get("width"), it.get("height")) in ok, pre + "width x height %rx%r, libvips "
              "reference says %dx%d" % (it.get("width"), it.get("height"), dims[0], dims[1]))
    if ref and isinstance(it.get("exif"), dict) and ref["make"] and "make" in it["exif"]:
        check(it["exif"]["make"] == ref["make"].strip(),
              pre + "exif.make %r, exiftool says %r" % (it["exif"]["make"], ref["make"]))


def get_case(case_id, as_="mediator"):
    r = S.get("/v1/cases/" + case_id, as_)
    expect_status(r, 200, "get case")
    return r.json


def walk_json(obj, path="$"):
    """Yields (path, key_or_None, value) for every node."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + "." + k, k, v
            yield from walk_json(v, path + "." + k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield "%s[%d]" % (path, i), None, v
            yield from walk_json(v, "%s[%d]" % (path, i))


def find_dict_lists(obj):
    """Lists of dicts that carry evidence_id, anywhere in obj (for shapes the contract leaves
    open, such as /similar)."""
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj) \
            and any("evidence_id" in x for x in obj):
        return [obj]
    found = []
    if isinstance(obj, dict):
        for v in obj.values():
            found += find_dict_lists(v)
    return found


# --------------------------------------------------------------------------------------------
# CLI and start-up

@R.test
def cli_key_create_prints_key_and_creates_db():
    d = tempfile.mkdtemp(prefix="exhibit-e2e-cli-")
    try:
        k1 = create_key(d, "admin")
        check(os.path.exists(os.path.join(d, "exhibit.db")), "key create did not create exhibit.db")
        k2 = create_key(d, "buyer", "b-1")
        k3 = create_key(d, "mediator")
        check(len({k1, k2, k3}) == 3, "keys are not unique: %r" % [k1, k2, k3])
        for k in (k1, k2, k3):
            check(len(k) >= 20 and not re.search(r"\s", k), "weak or odd key %r" % k)
        blob = b""
        for suffix in ("", "-wal"):
            p = os.path.join(d, "exhibit.db" + suffix)
            if os.path.exists(p):
                blob += open(p, "rb").read()
        for k in (k1, k2, k3):
            check(k.encode() not in blob, "the key itself is stored in the database (only its hash "
                  "may be)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@R.test
def cli_key_create_refuses_bad_role_and_buyer_without_subject():
    d = tempfile.mkdtemp(prefix="exhibit-e2e-cli-")
    try:
        for args in (["--role", "root"], ["--role", "buyer"], ["--role", ""]):
            r = run_cli(["key", "create", "--data", d] + args)
            check(r.rc != 0, "expected a non-zero exit: " + r.describe())
            check(not r.stdout.strip(), "printed something that looks like a key: " + r.describe())
            check(r.stderr.strip(), "no error message on stderr: " + r.describe())
    finally:
        shutil.rmtree(d, ignore_errors=True)


@R.test
def serve_cleans_tmp_at_start_and_stops_on_sigterm():
    srv = Server("tmpclean", keys={"admin": ("admin", None)})
    try:
        srv.make_keys()
        os.makedirs(os.path.join(srv.data_dir, "tmp"), exist_ok=True)
        with open(os.path.join(srv.data_dir, "tmp", "upload-stale.part"), "wb") as f:
            f.write(b"\xff\xd8 half an upload from a crashed run")
        srv.start()
        check(wait_until(lambda: not srv.tmp_files(), 5), "DIR/tmp not cleaned at start: %s"
              % srv.tmp_files())
        r = srv.get("/healthz")
        expect_status(r, 200)
        srv.stop()
    finally:
        srv.cleanup()


@R.test
def healthz_ok_without_key():
    r = S.get("/healthz")
    expect_status(r, 200)
    check(r.json.get("status") == "ok", "healthz body %s" % r.text())


# --------------------------------------------------------------------------------------------
# Cases

@R.test
def case_create_returns_full_case():
    body = case_body(description="screen cracked on arrival, box dented")
    r = S.post_json("/v1/cases", body, "platform")
    expect_status(r, 201)
    check(r.header("content-type", "").startswith("application/json"), "Content-Type %r"
          % r.header("content-type"))
    c = r.json
    check(isinstance(c.get("case_id"), str) and c["case_id"], "no case_id: %s" % r.text())
    for k in ("order_id", "buyer_id", "seller_id", "reason", "category", "description"):
        check(c.get(k) == body[k], "%s: got %r, sent %r" % (k, c.get(k), body[k]))
    for k in ("delivered_at", "opened_at"):
        check(parse_rfc3339(c.get(k)) == parse_rfc3339(body[k]), "%s: got %r, sent %r"
              % (k, c.get(k), body[k]))
    check(c.get("status") == "open", "status %r, want open" % c.get("status"))
    want_end = parse_rfc3339(body["delivered_at"]) + 7 * DAY
    check(parse_rfc3339(c.get("return_window_ends_at")) == want_end,
          "return_window_ends_at %r, want %s" % (c.get("return_window_ends_at"), rfc3339(want_end)))
    check(c.get("return_shipping_paid_by") == "seller", "payer %r for damaged"
          % c.get("return_shipping_paid_by"))
    check(c.get("evidence") == [] and c.get("inspections") == [],
          "new case must have evidence [] and inspections [], got %r / %r"
          % (c.get("evidence"), c.get("inspections")))
    for as_ in ("mediator", "admin", "buyer"):
        g = get_case(c["case_id"], as_)
        for k in ("case_id", "order_id", "buyer_id", "seller_id", "reason", "category",
                  "description", "status", "return_window_ends_at", "return_shipping_paid_by"):
            check(g.get(k) == c.get(k), "GET as %s: %s is %r, POST said %r"
                  % (as_, k, g.get(k), c.get(k)))


@R.test
def case_create_allowed_for_admin():
    r = S.post_json("/v1/cases", case_body(), "admin")
    expect_status(r, 201)


@R.test
def case_create_forbidden_for_other_roles():
    for as_ in ("buyer", "buyer2", "warehouse", "mediator"):
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(), as_)
        expect_error(r, 403, "forbidden")
        snap.unchanged(r.req)


@R.test
def case_window_exactly_7_days_accepted():
    delivered = utcnow() - 10 * DAY
    body = case_body(delivered_at=rfc3339(delivered), opened_at=rfc3339(delivered + 7 * DAY))
    r = S.post_json("/v1/cases", body, "platform")
    expect_status(r, 201, "opened exactly 7 days after delivery")
    check(parse_rfc3339(r.json["return_window_ends_at"]) == delivered + 7 * DAY,
          "return_window_ends_at %r" % r.json["return_window_ends_at"])


@R.test
def case_window_7_days_plus_1s_refused():
    delivered = utcnow() - 10 * DAY
    body = case_body(delivered_at=rfc3339(delivered), opened_at=rfc3339(delivered + 7 * DAY + SEC))
    snap = StorageSnapshot(S)
    r = S.post_json("/v1/cases", body, "platform")
    expect_error(r, 422, "return_window_closed", what="opened 7 days + 1 s after delivery")
    snap.unchanged(r.req)


@R.test
def case_non_returnable_categories_refused():
    for cat in ("fresh_produce", "custom_made"):
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(category=cat), "platform")
        expect_error(r, 422, "not_returnable", what="category " + cat)
        snap.unchanged(r.req)


@R.test
def case_payer_per_reason():
    for reason, payer in PAYER.items():
        c = S.create_case(reason=reason)
        check(c.get("reason") == reason, "reason %r echoed as %r" % (reason, c.get("reason")))
        check(c.get("return_shipping_paid_by") == payer, "reason %s: payer %r, want %r"
              % (reason, c.get("return_shipping_paid_by"), payer))


@R.test
def case_opened_at_defaults_to_now():
    t0 = utcnow()
    c = S.create_case(opened_at=None)
    t1 = utcnow()
    opened = parse_rfc3339(c.get("opened_at"))
    check(t0 - 2 * SEC <= opened <= t1 + 2 * SEC, "opened_at %s, request made between %s and %s"
          % (c.get("opened_at"), rfc3339(t0), rfc3339(t1)))
    check(c.get("status") == "open", "status %r" % c.get("status"))


@R.test
def case_default_window_applies_to_defaulted_opened_at():
    # opened_at defaults to now, so delivery 7 days + 1 minute ago is already outside the window.
    snap = StorageSnapshot(S)
    body = case_body(opened_at=None, delivered_at=rfc3339(utcnow() - 7 * DAY - 60 * SEC))
    r = S.post_json("/v1/cases", body, "platform")
    expect_error(r, 422, "return_window_closed")
    snap.unchanged(r.req)


@R.test
def case_description_optional():
    c = S.create_case(description=None)
    check("case_id" in c, "no case_id")


@R.test
def case_unicode_and_escapes_round_trip():
    desc = 'Bildschirm zerbrochen — 屏幕碎了 🚚 "quoted" back\\slash\nnew line\ttab'
    c = S.create_case(description=desc, seller_id="s-ünï-屏")
    g = get_case(c["case_id"])
    check(g.get("description") == desc, "description round trip: %r" % g.get("description"))
    check(g.get("seller_id") == "s-ünï-屏", "seller_id round trip: %r" % g.get("seller_id"))


@R.test
def case_bad_json_400_invalid_json():
    # 20000 levels of nesting stay under any sane JSON body limit (the server has 64 KiB).
    bodies = [(b"", "invalid_json"), (b"{", "invalid_json"), (b"not json", "invalid_json"),
              (b'{"order_id": "x",}', "invalid_json"), (b"\xff\xfe{}", "invalid_json"),
              (b'{"order_id": "PDD-1"} trailing', "invalid_json"),
              (b"[" * 20000 + b"]" * 20000, "invalid_json"),
              (b'{"order_id": "\xc3\x28"}', "invalid_json"),
              (b"[]", ("invalid_json", "invalid_field")),
              (b'"a case"', ("invalid_json", "invalid_field")),
              (b"42", ("invalid_json", "invalid_field")),
              (b"null", ("invalid_json", "invalid_field"))]

    def one(case):
        raw, code = case
        snap = StorageSnapshot(S)
        r = S.request("POST", "/v1/cases", "platform", body=raw,
                      headers={"Content-Type": "application/json"})
        expect_error(r, 400, code)
        snap.unchanged(r.req)
    check_each(bodies, one, lambda c: "body %r" % c[0][:30])


@R.test
def case_wrong_types_400_invalid_field():
    cases = [(field, bad) for field in ("order_id", "buyer_id", "seller_id", "reason", "category",
                                        "delivered_at", "opened_at", "description")
             for bad in (123, True, ["x"], {"a": 1}, 1.5)]

    def one(case):
        field, bad = case
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(**{field: bad}), "platform")
        expect_error(r, 400, "invalid_field", field=field)
        snap.unchanged(r.req)
    check_each(cases, one, lambda c: "%s=%r" % c)


@R.test
def case_unknown_reason_400():
    def one(bad):
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(reason=bad), "platform")
        expect_error(r, 400, "invalid_field", field="reason")
        snap.unchanged(r.req)
    check_each(("broken", "DAMAGED", "damaged ", ""), one, lambda c: "reason=%r" % c)


@R.test
def case_missing_fields_400_missing_field():
    def one(field):
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(**{field: None}), "platform")
        expect_error(r, 400, "missing_field", field=field, what="without " + field)
        snap.unchanged(r.req)
        body = case_body()
        body[field] = None  # JSON null for a required field
        r = S.post_json("/v1/cases", body, "platform")
        expect_error(r, 400, ("missing_field", "invalid_field"), field=field,
                     what="%s: null" % field)
        snap.unchanged(r.req)
    check_each(REQUIRED, one, str)
    snap = StorageSnapshot(S)
    r = S.post_json("/v1/cases", {}, "platform")
    expect_error(r, 400, "missing_field", what="empty object")
    snap.unchanged(r.req)


@R.test
def case_empty_strings_400():
    def one(field):
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(**{field: ""}), "platform")
        expect_error(r, 400, ("invalid_field", "missing_field"), field=field)
        snap.unchanged(r.req)
    check_each(("order_id", "buyer_id", "seller_id", "category"), one, lambda f: f + '=""')


@R.test
def case_bad_timestamps_400_invalid_field():
    # (RFC 3339 5.6 lets applications accept a space instead of "T", so that is not listed.)
    bad = ["2026-11-20", "2026-11-20T10:00:00", "2026-13-01T10:00:00Z", "2026-02-30T10:00:00Z",
           "2026-11-20T25:00:00Z", "2026-11-20T10:61:00Z", "yesterday", "",
           "20261120T100000Z", "2026-11-20T10:00:00Zjunk", "99999-11-20T10:00:00Z",
           "-2026-11-20T10:00:00Z", "2026-11-20T10:00Z", "2026-1-20T10:00:00Z"]
    cases = [(field, ts) for field in ("delivered_at", "opened_at") for ts in bad]

    def one(case):
        field, ts = case
        snap = StorageSnapshot(S)
        r = S.post_json("/v1/cases", case_body(**{field: ts}), "platform")
        if "\0" in ts:  # a JSON parser may refuse \u0000 outright (jansson does by default)
            expect_error(r, 400, ("invalid_field", "invalid_json"))
        else:
            expect_error(r, 400, "invalid_field", field=field)
        snap.unchanged(r.req)
    cases += [(field, "2026-11-20T10:00:00Z\u0000") for field in ("delivered_at", "opened_at")]
    check_each(cases, one, lambda c: "%s=%r" % c)


@R.test
def case_unknown_id_404():
    real = S.create_case()["case_id"]

    def one(cid):
        r = S.get("/v1/cases/" + cid, "mediator")
        expect_error(r, (400, 404), ("case_not_found", "not_found", "invalid_field"))
    # A NUL must not cut the id short: "<real id>%00junk" is not the real case.
    check_each(("case_doesnotexist", "0", "x" * 3000, "..%2F..%2Fexhibit.db", "%00",
                real + "%00junk", real[:-1]), one, lambda c: "id %r" % c[:50])
    r = S.get("/v1/cases/case_doesnotexist", "mediator")
    expect_error(r, 404, "case_not_found")


# --------------------------------------------------------------------------------------------
# Auth

@R.test
def auth_missing_or_bad_key_401():
    c = S.create_case()
    cid = c["case_id"]
    it = single_item(S.upload_raw(cid, fresh_jpeg("drewnoakes_Kodak DC240.jpg"), "image/jpeg"))
    eid = it["evidence_id"]
    k = S.keys["mediator"]
    bad_headers = [None, "Bearer nope", "Bearer " + k[:-1], "Bearer " + k + "x", "Bearer",
                   "Bearer ", k, "Basic " + base64.b64encode(k.encode()).decode(),
                   "Bearer " + S.keys["buyer"] + "\x01"]
    for auth in bad_headers:
        hdr = {} if auth is None else {"Authorization": auth}
        calls = [("POST", "/v1/cases", case_body(), None),
                 ("GET", "/v1/cases/" + cid, None, None),
                 ("POST", evidence_path(cid), None, fresh_jpeg("drewnoakes_Kodak DC240.jpg")),
                 ("GET", "/v1/evidence/" + eid, None, None),
                 ("GET", "/v1/evidence/%s/original" % eid, None, None)]
        for method, path, js, raw in calls:
            snap = StorageSnapshot(S)
            h = dict(hdr)
            if raw is not None:
                h["Content-Type"] = "image/jpeg"
            try:
                r = http_request(S.port, method, path, body=raw, json_body=js, headers=h,
                                 label="Authorization %r" % (auth[:20] if auth else None))
            except ValueError:
                continue  # http.client refuses to send a header with a control character
            expect_error(r, 401, "unauthorized")
            snap.unchanged(r.req)


@R.test
def auth_buyer_sees_only_own_cases():
    alice = S.create_case(buyer_id="b-alice")["case_id"]
    bob = S.create_case(buyer_id="b-bob")["case_id"]
    it = single_item(S.upload_raw(alice, fresh_jpeg("drewnoakes_Kodak DC240.jpg"), "image/jpeg",
                                  "buyer"))
    eid = it["evidence_id"]
    expect_status(S.get("/v1/cases/" + alice, "buyer"), 200)
    expect_status(S.get("/v1/evidence/" + eid, "buyer"), 200)
    expect_error(S.get("/v1/cases/" + alice, "buyer2"), 404, "case_not_found")
    expect_error(S.get("/v1/cases/" + bob, "buyer"), 404, "case_not_found")
    expect_error(S.get("/v1/evidence/" + eid, "buyer2"), 404, "evidence_not_found")
    for kind in ("thumb", "preview", "original"):
        r = S.get("/v1/evidence/%s/%s" % (eid, kind), "buyer2")
        check(r.status in (403, 404), "%s: another buyer must not get it: %s" % (kind,
                                                                               r.describe()))
        expect_error(r, r.status, ("evidence_not_found", "forbidden"))
    snap = StorageSnapshot(S)
    r = S.upload_raw(alice, fresh_jpeg("drewnoakes_Kodak DC240.jpg"), "image/jpeg", "buyer2")
    expect_error(r, 404, "case_not_found")
    snap.unchanged(r.req)


@R.test
def auth_mediator_and_admin_read_everything():
    cid = S.create_case(buyer_id="b-carol")["case_id"]
    it = single_item(S.upload_raw(cid, fresh_jpeg("drewnoakes_Kodak DC240.jpg"), "image/jpeg",
                                  "warehouse"))
    for as_ in ("mediator", "admin"):
        expect_status(S.get("/v1/cases/" + cid, as_), 200)
        expect_status(S.get("/v1/evidence/" + it["evidence_id"], as_), 200)
    # platform and warehouse reads are not fixed by the contract; they must still be sane,
    # and what they get is printed for the record.
    seen = []
    for as_ in ("platform", "warehouse"):
        for what, path in (("case", "/v1/cases/" + cid),
                           ("evidence", "/v1/evidence/" + it["evidence_id"]),
                           ("thumb", "/v1/evidence/%s/thumb" % it["evidence_id"])):
            r = S.get(path, as_)
            seen.append("GET %s as %s -> %d" % (what, as_, r.status))
            check(r.status in (200, 403, 404), r.describe())
            if r.status != 200:
                expect_error(r, r.status, ("forbidden", "case_not_found", "evidence_not_found"))
    print("# not fixed by the contract: " + "; ".join(seen))


@R.test
def auth_platform_cannot_upload():
    cid = S.create_case()["case_id"]
    snap = StorageSnapshot(S)
    r = S.upload_raw(cid, fresh_jpeg("drewnoakes_Sanyo SR6.jpg"), "image/jpeg", "platform")
    expect_error(r, 403, "forbidden")
    snap.unchanged(r.req)
    r = S.upload_multipart(cid, [file_part("x.jpg", fresh_jpeg("drewnoakes_Sanyo SR6.jpg"))],
                           "platform")
    expect_error(r, 403, "forbidden")
    snap.unchanged(r.req)


@R.test
def upload_source_comes_from_role():
    cid = S.create_case(buyer_id="b-alice")["case_id"]
    for as_, source in (("buyer", "buyer"), ("warehouse", "warehouse"),
                        ("mediator", "mediator"), ("admin", "admin")):
        data = fresh_jpeg("drewnoakes_Ricoh RDC5300.jpg")
        it = single_item(S.upload_raw(cid, data, "image/jpeg", as_))
        check_item(it, cid, source, data, "image/jpeg")
    data = fresh_jpeg("drewnoakes_Ricoh RDC5300.jpg")
    r = S.upload_multipart(cid, [Part("source", "mediator"), file_part("a b.jpg", data),
                                 Part("note", "source field in the body must be ignored")],
                           "buyer")
    if r.status == 201:
        check(r.json["items"][0].get("source") == "buyer",
              "source taken from the body: %r" % r.json["items"][0].get("source"))
    else:
        expect_error(r, 400, ("malformed_multipart", "invalid_field"))


@R.test
def original_only_for_mediator_and_admin():
    name = "drewnoakes_Nikon D5000.jpg"
    cid = S.create_case(buyer_id="b-alice")["case_id"]
    data = fresh_jpeg(name)
    it = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"))
    path = "/v1/evidence/%s/original" % it["evidence_id"]
    for as_ in ("buyer", "warehouse", "platform"):
        expect_error(S.get(path, as_), 403, "forbidden", what="original as " + as_)
    r = S.get(path, "buyer2")
    expect_error(r, (403, 404), ("forbidden", "evidence_not_found"), what="original as buyer2")
    for as_ in ("mediator", "admin"):
        r = S.get(path, as_)
        expect_status(r, 200, "original as " + as_)
        check(r.body == data, "original bytes differ from the upload (%d vs %d bytes)"
              % (len(r.body), len(data)))


# --------------------------------------------------------------------------------------------
# Uploads

@R.test
def upload_raw_jpeg_real_photo():
    name = "drewnoakes_Canon EOS REBEL T3i.jpg"
    data = photo(name)
    check(sha256(data) == EXPECTED[name]["sha256"], "test data differs from expected.tsv")
    cid = S.create_case()["case_id"]
    blobs0 = S.blob_files()
    r = S.upload_raw(cid, data, "image/jpeg", "buyer")
    it = single_item(r, 201)
    check_item(it, cid, "buyer", data, "image/jpeg")
    check(it["sha256"] == EXPECTED[name]["sha256"], "sha256 differs from expected.tsv")
    check(it["matches"] == [], "first upload anywhere has matches %r" % it["matches"])
    check("reused_exact" not in it["flags"], "reused_exact on a first upload")
    p = S.blob_path(it["sha256"])
    check(os.path.exists(p), "blob not at DIR/blobs/ab/cd/<sha256>: %s" % p)
    check(open(p, "rb").read() == data, "blob bytes differ from the upload")
    # Other new blob files may be derivatives (content-addressed too); the original must be new.
    check(os.path.relpath(p, os.path.join(S.data_dir, "blobs")) in S.blob_files() - blobs0,
          "the original's blob was not new")
    check(not S.tmp_files(), "DIR/tmp not empty after the upload: %s" % S.tmp_files())
    ev = get_case(cid)["evidence"]
    check(len(ev) == 1 and ev[0]["evidence_id"] == it["evidence_id"]
          and ev[0]["sha256"] == it["sha256"], "GET case evidence: %r" % ev)
    ST["t3i"] = (cid, it)


@R.test
def upload_each_accepted_type():
    cid = S.create_case()["case_id"]
    for name, mt in (("drewnoakes_sampleWithExifData.png", "image/png"),
                     ("drewnoakes_Photo (2).webp", "image/webp"),
                     ("drewnoakes_Issue 263 dotnet.heic", "image/heic"),
                     ("drewnoakes_Issue 649.avif", "image/avif")):
        data = photo(name)
        it = single_item(S.upload_raw(cid, data, mt, "buyer"))
        check_item(it, cid, "buyer", data, mt)
        check(open(S.blob_path(it["sha256"]), "rb").read() == data, name + ": blob differs")
    check(not S.tmp_files(), "DIR/tmp not empty: %s" % S.tmp_files())


@R.test
def upload_multipart_three_real_photos():
    names = ["drewnoakes_Casio QV-7000SX.jpg", "drewnoakes_Sony DSC-HX5V (2).jpg",
             "drewnoakes_FujiFilm SP-2500.jpg"]
    cid = S.create_case()["case_id"]
    parts = [Part("note", "three angles of the parcel; names have spaces")]
    parts += [file_part(n) for n in names]
    parts.append(Part("captured_at", rfc3339(utcnow() - 3600 * SEC)))
    r = S.upload_multipart(cid, parts, "warehouse")
    expect_status(r, 201)
    items = r.json.get("items")
    check(isinstance(items, list) and len(items) == 3, "expected 3 items: %s" % r.text())
    for n, it in zip(names, items):
        check_item(it, cid, "warehouse", photo(n), "image/jpeg")
        check(it["sha256"] == EXPECTED[n]["sha256"], n + ": sha256 differs from expected.tsv")
        check(os.path.exists(S.blob_path(it["sha256"])), n + ": no blob")
    ev = get_case(cid)["evidence"]
    check([e["sha256"] for e in ev] == [EXPECTED[n]["sha256"] for n in names],
          "GET case evidence order (newest last) %r" % [e.get("sha256") for e in ev])
    check(not S.tmp_files(), "DIR/tmp not empty: %s" % S.tmp_files())


@R.test
def upload_same_bytes_twice_same_case_200():
    name = "drewnoakes_Olympus PEN E-P3.jpg"
    data = photo(name)
    cid = S.create_case()["case_id"]
    first = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"), 201)
    blobs = S.blob_files()
    again = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"), 200)
    check(again["evidence_id"] == first["evidence_id"], "second upload got a new evidence_id")
    again2 = single_item(S.upload_multipart(cid, [file_part(name)], "warehouse"), 200)
    check(again2["evidence_id"] == first["evidence_id"], "multipart re-upload: new evidence_id")
    check(S.blob_files() == blobs, "re-upload changed blob files")
    ev = get_case(cid)["evidence"]
    check(len(ev) == 1, "case has %d evidence items after the same bytes 3 times" % len(ev))


@R.test
def upload_multipart_new_and_existing():
    a, b = "drewnoakes_Canon EOS D60.jpg", "drewnoakes_Issue 116.jpg"
    cid = S.create_case()["case_id"]
    first = single_item(S.upload_raw(cid, photo(a), "image/jpeg"), 201)
    r = S.upload_multipart(cid, [file_part(a), file_part(b)], "buyer")
    expect_status(r, 201, "one new file and one already on the case")
    items = r.json["items"]
    check(len(items) == 2, "expected 2 items, got %d" % len(items))
    check(items[0]["evidence_id"] == first["evidence_id"], "existing file got a new id")
    check_item(items[1], cid, "buyer", photo(b), "image/jpeg")
    r = S.upload_multipart(cid, [file_part(b), file_part(a)], "buyer")
    expect_status(r, 200, "every file already on the case")
    ids = [i["evidence_id"] for i in r.json["items"]]
    check(ids == [items[1]["evidence_id"], first["evidence_id"]], "existing items %r" % ids)
    check(len(get_case(cid)["evidence"]) == 2, "duplicates were stored as new items")
    # The same new file twice in one request is still one item.
    c = fresh_jpeg("drewnoakes_Sanyo SR6.jpg")
    r = S.upload_multipart(cid, [file_part("x.jpg", c), file_part("y.jpg", c)], "buyer")
    expect_status(r, 201)
    check(len({i["evidence_id"] for i in r.json["items"]}) == 1, "two ids for the same bytes")
    check(len(get_case(cid)["evidence"]) == 3, "the same bytes twice in one request stored twice")


@R.test
def upload_same_bytes_other_case_exact_match():
    name = "drewnoakes_Nikon D1X.jpg"
    data = photo(name)
    c1 = S.create_case(buyer_id="b-alice")["case_id"]
    c2 = S.create_case(buyer_id="b-bob")["case_id"]
    first = single_item(S.upload_raw(c1, data, "image/jpeg", "buyer"), 201)
    check(first["matches"] == [] and "reused_exact" not in first["flags"],
          "first upload already matched: %r %r" % (first["matches"], first["flags"]))
    blobs = S.blob_files()
    second = single_item(S.upload_raw(c2, data, "image/jpeg", "buyer2"), 201)
    check_item(second, c2, "buyer", data, "image/jpeg")
    check(second["evidence_id"] != first["evidence_id"], "same evidence_id across cases")
    # Buyers never learn that another case exists; staff see the reuse.
    check(second["matches"] == [] and "reused_exact" not in second["flags"]
          and c1 not in json.dumps(second), "the buyer's response tells of case %s: %r"
          % (c1, second))
    want = {"evidence_id": first["evidence_id"], "case_id": c1, "kind": "exact", "distance": 0}
    check(S.blob_files() == blobs, "the same bytes were stored as a second blob file")
    r = S.get("/v1/evidence/" + second["evidence_id"], "mediator")
    expect_status(r, 200)
    got = [{k: m.get(k) for k in want} for m in r.json.get("matches", [])]
    check(want in got and "reused_exact" in r.json.get("flags", []),
          "GET evidence lost the match/flag: %s" % r.text())
    ST["exact_pair"] = (first, second, c1, c2)


@R.test
def upload_concurrent_same_bytes_one_item():
    cid = S.create_case()["case_id"]
    data = fresh_jpeg("drewnoakes_Minolta DiMAGE X.jpg")
    barrier = threading.Barrier(6)
    results = [None] * 6

    def worker(i):
        barrier.wait()
        try:
            results[i] = S.upload_raw(cid, data, "image/jpeg", "buyer")
        except Exception as ex:  # reported below
            results[i] = ex
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        check(not isinstance(r, Exception), "request failed: %r" % r)
        expect_status(r, (200, 201))
    statuses = sorted(r.status for r in results)
    ids = {r.json["items"][0]["evidence_id"] for r in results}
    check(len(ids) == 1, "6 concurrent uploads of the same bytes gave ids %s" % ids)
    check(statuses.count(201) == 1, "expected exactly one 201 and five 200, got %s" % statuses)
    check(len(get_case(cid)["evidence"]) == 1, "concurrent duplicates stored more than once")


@R.test
def upload_non_image_415_stores_nothing():
    cid = S.create_case()["case_id"]
    tiff = photo("drewnoakes_Epson PerfectionV800.tiff")
    cases = [
        ("text labelled jpeg", b"this is not an image\n" * 50, "image/jpeg", 415),
        ("PPM labelled jpeg", b"P6\n2 2\n255\n" + bytes(12), "image/jpeg", 415),
        ("real GIF", photo("exiftool_GIF.gif"), "image/gif", 415),
        ("real TIFF", tiff, "image/tiff", 415),
        ("real TIFF labelled jpeg", tiff, "image/jpeg", 415),
        ("fuzzed TIFF labelled heic",
         photo("drewnoakes_crash-101cc3460e0fd2904d442080e96617d2fe01b29f.fuzzed"),
         "image/heic", 415),
        ("PDF labelled png", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n", "image/png", 415),
        ("SVG labelled webp", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/webp", 415),
        ("real JPEG as text/plain", fresh_jpeg("drewnoakes_Sanyo SR6.jpg"), "text/plain", 415),
        ("real JPEG as octet-stream", fresh_jpeg("drewnoakes_Sanyo SR6.jpg"),
         "application/octet-stream", 415),
    ]
    def one(case):
        what, data, ctype, status = case
        snap = StorageSnapshot(S)
        r = S.upload_raw(cid, data, ctype, "buyer")
        if ctype.startswith("image/"):
            expect_error(r, status, "unsupported_media_type")
        else:
            expect_error(r, (400, 415), ("unsupported_media_type", "invalid_content_type"))
        snap.unchanged(r.req)
        check(not os.path.exists(S.blob_path(sha256(data))), "blob stored")

    def empty(_):
        snap = StorageSnapshot(S)
        r = S.upload_raw(cid, b"", "image/jpeg", "buyer")
        expect_error(r, (400, 415, 422), ("no_file", "unsupported_media_type", "invalid_field",
                                          "image_undecodable"))
        snap.unchanged(r.req)
    check_each(cases, one, lambda c: c[0])
    check_each(["empty raw body"], empty, str)


@R.test
def upload_multipart_all_or_nothing():
    a, b = "drewnoakes_Casio EX-S1.jpg", "drewnoakes_HP PhotoSmart 735.jpg"
    cid = S.create_case()["case_id"]
    bad_sets = [
        [file_part(a), file_part(b), Part("file", b"notes, not a photo\n", "notes.txt",
                                          "text/plain")],
        [file_part(a), Part("file", b"plain text\n" * 30, "fake.jpg", "image/jpeg"), file_part(b)],
    ]
    for parts in bad_sets:
        snap = StorageSnapshot(S)
        r = S.upload_multipart(cid, parts, "buyer")
        expect_error(r, (415, 400), ("unsupported_media_type", "invalid_content_type"))
        snap.unchanged(r.req)
        for n in (a, b):
            check(not os.path.exists(S.blob_path(EXPECTED[n]["sha256"])),
                  "%s stored although the request was refused" % n)
    r = S.upload_multipart(cid, [file_part(a), file_part(b)], "buyer")
    expect_status(r, 201, "the good files alone afterwards (nothing of them was kept)")
    check(len(r.json["items"]) == 2, "expected 2 items")


@R.test
def upload_undecodable_real_files_never_5xx():
    """Damaged real files: with image decoding they are 422 image_undecodable and stored
    nothing; without it they may be accepted. Either way the server stays up."""
    cid = S.create_case()["case_id"]
    for name, mt in (("drewnoakes_beach.jpg", "image/jpeg"),
                     ("drewnoakes_IllegalArgumentException.HeifReader.processBoxes.heif",
                      "image/heic"),
                     ("drewnoakes_User Comment Encoding.jpg", "image/jpeg")):
        data = photo(name)
        snap = StorageSnapshot(S)
        r = S.upload_raw(cid, data, mt, "buyer")
        if r.status == 201:
            check_item(single_item(r), cid, "buyer", data, mt)
        else:
            expect_error(r, (415, 422), ("image_undecodable", "unsupported_media_type"),
                         what=name)
            snap.unchanged(r.req)
        check(S.healthy(), "unhealthy after " + name)


def _oversize_head(cid, length, ctype="image/jpeg", extra=None):
    h = {"Authorization": "Bearer " + S.keys["buyer"], "Content-Type": ctype,
         "Content-Length": str(length)}
    h.update(extra or {})
    return request_head("POST", evidence_path(cid), h, S.port)


def _raw_expect(conn, req, status, code, timeout=15):
    got = conn.read_response(timeout)
    check(got is not None, "%s: connection closed without a response" % req)
    r = Response(req, *got)
    expect_error(r, status, code)


@R.test
def upload_oversized_413_from_content_length_before_body():
    cid = S.create_case()["case_id"]
    body_ct = multipart_encode([Part("note", "x")])[1]
    def one(v):
        ctype, extra = v
        snap = StorageSnapshot(S)
        conn = S.raw()
        try:
            conn.send(_oversize_head(cid, DEFAULT_MAX_BODY + 1, ctype, extra))
            _raw_expect(conn, "POST %s with Content-Length %d, no body sent"
                        % (evidence_path(cid), DEFAULT_MAX_BODY + 1), 413, "body_too_large",
                        timeout=10)
        finally:
            conn.close()
        snap.unchanged("oversized upload")
    check_each((("image/jpeg", None), (body_ct, None), ("image/jpeg", {"Expect": "100-continue"})),
               one, lambda v: "%s%s" % (v[0][:19], ", Expect: 100-continue" if v[1] else ""))
    for length in ("99999999999999999999999", "-1", "1e9"):
        conn = S.raw()
        try:
            conn.send(_oversize_head(cid, length))
            got = conn.read_response(15)
            check(got is None or got[0] in (400, 411, 413),
                  "Content-Length %s: status %r" % (length, got and got[0]))
        finally:
            conn.close()
    check(S.healthy(), "unhealthy after absurd Content-Length values")


@R.test
def upload_multipart_cut_off_mid_file():
    name = "drewnoakes_Panasonic DMC-LC40.jpg"
    cid = S.create_case()["case_id"]
    body, ctype = multipart_encode([file_part(name), Part("note", "cut off")])
    for how, frac in (("close", 0.5), ("reset", 0.3), ("close", 0.95)):
        snap = StorageSnapshot(S)
        conn = S.raw()
        h = {"Authorization": "Bearer " + S.keys["buyer"], "Content-Type": ctype,
             "Content-Length": str(len(body))}
        conn.send(request_head("POST", evidence_path(cid), h, S.port))
        conn.send(body[:int(len(body) * frac)])
        time.sleep(0.3)
        if how == "close":
            conn.close()
        else:
            conn.abort()
        snap.unchanged("multipart cut at %d%% then %s" % (frac * 100, how), wait=10)
        check(not os.path.exists(S.blob_path(EXPECTED[name]["sha256"])), "partial blob stored")
        check(S.healthy(), "unhealthy after a cut-off upload")
    r = S.upload_multipart(cid, [file_part(name)], "buyer")
    expect_status(r, 201, "full upload after the cut-off ones (nothing was kept before)")


@R.test
def upload_multipart_truncated_400():
    name = "drewnoakes_Sony Cybershot (3).jpg"
    cid = S.create_case()["case_id"]
    body, ctype = multipart_encode([file_part(name)], closing=False)
    variants = [("no closing boundary", body),
                ("ends inside the file data", body[:len(body) // 2])]
    for what, b in variants:
        snap = StorageSnapshot(S)
        r = S.request("POST", evidence_path(cid), "buyer", body=b,
                      headers={"Content-Type": ctype})
        expect_error(r, 400, "multipart_truncated", what=what)
        snap.unchanged("%s (%s)" % (r.req, what))
    check(not os.path.exists(S.blob_path(EXPECTED[name]["sha256"])), "truncated upload stored")


@R.test
def upload_multipart_malformed_400():
    cid = S.create_case()["case_id"]
    jpg = fresh_jpeg("drewnoakes_Sanyo SR6.jpg")
    bnd = "e2e-bnd-" + uuid.uuid4().hex
    ct = "multipart/form-data; boundary=" + bnd
    B = bnd.encode()
    variants = [
        ("part without Content-Disposition", ct,
         b"--" + B + b"\r\nContent-Type: image/jpeg\r\n\r\n" + jpg + b"\r\n--" + B + b"--\r\n",
         ("malformed_multipart", "no_file")),
        ("part headers never end", ct,
         b"--" + B + b'\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
         + b"X-Junk: " + b"a" * 20000, ("malformed_multipart", "multipart_truncated",
                                             "multipart_headers_too_large")),
        ("garbage instead of parts", ct, b"\x00\x01garbage" * 100,
         ("malformed_multipart", "multipart_truncated")),
        ("no boundary parameter", "multipart/form-data",
         b"--" + B + b'\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
         + jpg + b"\r\n--" + B + b"--\r\n", ("malformed_multipart", "invalid_content_type")),
        ("empty boundary parameter", "multipart/form-data; boundary=",
         b"--\r\n\r\n", ("malformed_multipart", "invalid_content_type")),
    ]
    def one(v):
        what, ctype, b, codes = v
        snap = StorageSnapshot(S)
        r = S.request("POST", evidence_path(cid), "buyer", body=b, headers={"Content-Type": ctype})
        expect_error(r, 400, codes)
        snap.unchanged(r.req)
    check_each(variants, one, lambda v: v[0])


@R.test
def upload_multipart_without_file_400_no_file():
    cid = S.create_case()["case_id"]
    tiny = photo("exiftool_Writer.jpg")  # 251 bytes: under any text-field limit

    def one(v):
        snap = StorageSnapshot(S)
        r = S.upload_multipart(cid, v[1], "buyer")
        expect_error(r, 400, "no_file")
        snap.unchanged(r.req)
    check_each((("only text fields", [Part("note", "hello"),
                                      Part("captured_at", rfc3339(utcnow()))]),
                ("image in a part named photo", [Part("photo", tiny, "a.jpg", "image/jpeg")])),
               one, lambda v: v[0])


@R.test
def upload_raw_client_disconnect_mid_body():
    name = "drewnoakes_Android Depth Map.jpg"
    data = photo(name)
    cid = S.create_case()["case_id"]
    snap = StorageSnapshot(S)
    h = {"Authorization": "Bearer " + S.keys["buyer"], "Content-Type": "image/jpeg",
         "Content-Length": str(len(data))}
    conns = []
    for i in range(8):
        conn = S.raw()
        conn.send(request_head("POST", evidence_path(cid), h, S.port))
        conn.send(data[:len(data) * (i + 1) // 10])
        conns.append(conn)
    time.sleep(0.3)
    for i, conn in enumerate(conns):
        conn.abort() if i % 2 else conn.close()
    snap.unchanged("8 raw uploads abandoned mid-body", wait=10)
    check(S.healthy(), "unhealthy after client disconnects")
    it = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"), 201)
    check_item(it, cid, "buyer", data, "image/jpeg")


@R.test
def upload_unknown_case_404_stores_nothing():
    data = fresh_jpeg("drewnoakes_Sanyo SR6.jpg")
    for as_ in ("mediator", "warehouse", "buyer"):
        snap = StorageSnapshot(S)
        r = S.upload_raw("case_doesnotexist", data, "image/jpeg", as_)
        expect_error(r, 404, "case_not_found", what="as " + as_)
        snap.unchanged(r.req)
        r = S.upload_multipart("case_doesnotexist", [file_part("a.jpg", data)], as_)
        expect_error(r, 404, "case_not_found", what="multipart as " + as_)
        snap.unchanged(r.req)


# --------------------------------------------------------------------------------------------
# Reading evidence

@R.test
def evidence_get_matches_upload():
    name = "drewnoakes_Sony Cybershot (3).jpg"
    data = photo(name)
    cid = S.create_case(buyer_id="b-alice")["case_id"]
    it = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"))
    for as_ in ("mediator", "admin", "buyer"):
        r = S.get("/v1/evidence/" + it["evidence_id"], as_)
        expect_status(r, 200, "GET evidence as " + as_)
        g = r.json
        check_item(g, cid, "buyer", data, "image/jpeg")
        for k in ("evidence_id", "created_at", "urls"):
            check(g.get(k) == it.get(k), "%s: GET %r vs upload %r" % (k, g.get(k), it.get(k)))
    for eid in ("ev_doesnotexist", "x" * 2000, "..%2F..%2Fexhibit.db"):
        r = S.get("/v1/evidence/" + eid, "mediator")
        expect_error(r, 404, ("evidence_not_found", "not_found"), what="id %r" % eid[:30])
    expect_error(S.get("/v1/evidence/ev_doesnotexist", "mediator"), 404, "evidence_not_found")
    expect_error(S.get("/v1/evidence/ev_doesnotexist/original", "mediator"), 404,
                 "evidence_not_found")


@R.test
def evidence_original_bytes_etag_304():
    name = "drewnoakes_Issue 116.jpg"
    data = photo(name)
    cid = S.create_case()["case_id"]
    r = S.upload_raw(cid, data, "image/jpeg", "warehouse")
    it = single_item(r, (200, 201))
    path = "/v1/evidence/%s/original" % it["evidence_id"]
    etag = '"%s"' % EXPECTED[name]["sha256"]
    r = S.get(path, "mediator")
    expect_status(r, 200)
    check(r.body == data, "original differs from the uploaded file (%d vs %d bytes)"
          % (len(r.body), len(data)))
    check(r.header("etag") == etag, "ETag %r, want %r" % (r.header("etag"), etag))
    r = S.get(path, "mediator", headers={"If-None-Match": etag})
    expect_status(r, 304, "If-None-Match with the current ETag")
    check(r.body == b"", "304 with a body")
    r = S.get(path, "admin", headers={"If-None-Match": '"%s", %s' % ("0" * 64, etag)})
    expect_status(r, 304, "If-None-Match with a list containing the ETag")
    r = S.get(path, "mediator", headers={"If-None-Match": '"%s"' % ("0" * 64)})
    expect_status(r, 200, "If-None-Match with another ETag")
    check(r.body == data, "original differs on the second GET")


def _fetch_derivative(path, as_):
    deadline = time.monotonic() + 20
    while True:
        r = S.get(path, as_)
        if r.status not in (202, 503) or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


@R.test
def derivatives_are_rotated_jpegs_without_metadata():
    name = "recurser_Portrait_6.jpg"  # stored 1800x1200, EXIF orientation 6: shown 1200x1800
    data = photo(name)
    cid = S.create_case()["case_id"]
    it = single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"), (200, 201))
    served = 0
    for kind, long_side in (("thumb", 256), ("preview", 1600)):
        r = _fetch_derivative("/v1/evidence/%s/%s" % (it["evidence_id"], kind), "buyer")
        expect_status(r, 200, kind)
        served += 1
        info = jpeg_info(r.body)
        check(info is not None, "%s is not a JPEG (%r...)" % (kind, r.body[:8]))
        w, h, markers = info
        check(h == long_side and abs(w - 1200 * long_side / 1800) <= 1,
              "%s is %dx%d; want auto-rotated portrait %dx%d" % (kind, w, h,
                                                                 round(1200 * long_side / 1800),
                                                                 long_side))
        bad = [m for m in markers if m in ("APP1-Exif", "APP1-XMP", "APP2-ICC", "APP13-IPTC")]
        check(not bad, "%s keeps metadata segments %s" % (kind, bad))


@R.test
def gps_hidden_from_everyone_but_mediator_and_admin():
    name = "drewnoakes_Apple iPhone 4.jpg"  # GPS 41.853000, 12.488833
    data = photo(name)
    lat, lon = float(EXPECTED[name]["gps_lat"]), float(EXPECTED[name]["gps_lon"])
    cid = S.create_case(buyer_id="b-alice")["case_id"]
    up = S.upload_raw(cid, data, "image/jpeg", "buyer")
    it = single_item(up, (200, 201))

    def assert_no_location(obj, where):
        for path, key, val in walk_json(obj):
            if key is not None and not isinstance(val, bool):  # "has GPS" is not a location
                check(not re.search(r"gps|latitude|longitude", key, re.I),
                      "%s exposes %s = %r" % (where, path, val))
            if isinstance(val, str):
                check(not (val.upper().startswith("GPS") and val != "gps_present"),
                      "%s exposes %s = %r" % (where, path, val))
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                check(abs(val - lat) > 1e-3 and abs(val - lon) > 1e-3,
                      "%s exposes a coordinate at %s = %r" % (where, path, val))
        text = str(obj)
        check("41.85" not in text and "12.48" not in text, "%s contains the location" % where)

    assert_no_location(up.json, "upload response to the buyer")
    for as_ in ("buyer", "warehouse"):
        for path in ("/v1/cases/" + cid, "/v1/evidence/" + it["evidence_id"]):
            r = S.get(path, as_)
            if r.status == 200:
                assert_no_location(r.json, "GET %s as %s" % (path, as_))
    r = S.get("/v1/evidence/" + it["evidence_id"], "mediator")
    expect_status(r, 200)
    exif = r.json.get("exif")
    if isinstance(exif, dict):
        gps = exif.get("gps")
        check(isinstance(gps, dict) and abs(gps.get("lat", 0) - lat) < 1e-3
              and abs(gps.get("lon", 0) - lon) < 1e-3,
              "mediator exif.gps %r, exiftool says %s,%s" % (gps, lat, lon))
        check("gps_present" in r.json.get("flags", []), "flags lack gps_present")
        check("taken_before_delivery" in r.json.get("flags", []),
              "photo taken 2011, delivered days ago: flags lack taken_before_delivery")


@R.test
def similar_lists_exact_match_first():
    if "exact_pair" not in ST:
        raise Failure("needs upload_same_bytes_other_case_exact_match to have passed")
    first, second, c1, c2 = ST["exact_pair"]
    r = S.get("/v1/evidence/%s/similar?limit=20" % second["evidence_id"], "mediator")
    expect_status(r, 200)
    lists = find_dict_lists(r.json)
    check(lists, "no list of matches in %s" % r.text())
    m = lists[0][0]
    check(m.get("evidence_id") == first["evidence_id"] and m.get("kind") == "exact"
          and m.get("distance") == 0, "closest match should be the exact copy: %r" % m)


# --------------------------------------------------------------------------------------------
# Inspections and decisions (API.md)

@R.test
def text_fields_must_be_utf8_text():
    cid = S.create_case()["case_id"]
    snap = StorageSnapshot(S)
    for field, value, path, role in (
            ("notes", b"crushed \xff\xfe corner", "inspections", "warehouse"),
            ("note", b"bad \xc0\xaf overlong", "evidence", "buyer"),
            ("notes", b"bell \x07 inside", "inspections", "warehouse")):
        parts = [Part(field, value), file_part("drewnoakes_HTC Desire.webp")]
        if path == "inspections":
            parts.insert(0, Part("grade", "damaged"))
        body, ctype = multipart_encode(parts)
        r = S.request("POST", "/v1/cases/%s/%s" % (cid, path), role, body=body,
                      headers={"Content-Type": ctype})
        expect_error(r, 400, "invalid_field", field, "%s with %r" % (field, value))
    snap.unchanged("refused text fields")


@R.test
def inspection_created_and_listed():
    name = "drewnoakes_HTC Desire.webp"
    cid = S.create_case()["case_id"]
    parts = [Part("grade", "damaged"), Part("notes", "corner crushed, screen cracked"),
             file_part(name)]
    body, ctype = multipart_encode(parts)
    r = S.request("POST", "/v1/cases/%s/inspections" % cid, "warehouse", body=body,
                  headers={"Content-Type": ctype})
    expect_status(r, 201, "create inspection")
    c = get_case(cid)
    check(len(c.get("inspections", [])) == 1, "inspections %r" % c.get("inspections"))
    check("damaged" in str(c["inspections"][0]) and "corner crushed" in str(c["inspections"][0]),
          "inspection lacks grade/notes: %r" % c["inspections"][0])
    ev = [e for e in c.get("evidence", []) if e.get("sha256") == EXPECTED[name]["sha256"]]
    check(len(ev) == 1 and ev[0].get("source") == "warehouse",
          "inspection photo not stored as warehouse evidence: %r" % ev)


@R.test
def inspection_rules():
    cid = S.create_case()["case_id"]
    jpg = fresh_jpeg("drewnoakes_Sanyo SR6.jpg")

    def post(parts, as_="warehouse", case=cid):
        body, ctype = multipart_encode(parts)
        return S.request("POST", "/v1/cases/%s/inspections" % case, as_, body=body,
                         headers={"Content-Type": ctype})
    snap = StorageSnapshot(S)
    expect_error(post([Part("grade", "broken"), file_part("a.jpg", jpg)]), 400, "invalid_field",
                 field="grade")
    expect_error(post([Part("notes", "no grade"), file_part("a.jpg", jpg)]), 400,
                 "missing_field", field="grade")
    for as_ in ("buyer", "platform"):
        expect_error(post([Part("grade", "as_new"), file_part("a.jpg", jpg)], as_), 403,
                     "forbidden", what="inspection as " + as_)
    expect_error(post([Part("grade", "as_new"), file_part("a.jpg", jpg)], case="case_nope"),
                 404, "case_not_found")
    snap.unchanged("refused inspections")


@R.test
def decision_sets_status_decided():
    cid = S.create_case()["case_id"]
    rationale = "photos show transit damage " + uuid.uuid4().hex[:8]
    r = S.post_json("/v1/cases/%s/decision" % cid,
                    {"outcome": "refund_partial", "amount": 12.5, "rationale": rationale},
                    "mediator")
    expect_status(r, 201)
    c = get_case(cid)
    check(c.get("status") == "decided", "status %r after a decision" % c.get("status"))
    check(rationale in str(c) and "refund_partial" in str(c), "decision not shown in the case")


@R.test
def decision_rules():
    cid = S.create_case()["case_id"]
    path = "/v1/cases/%s/decision" % cid
    ok = {"outcome": "reject", "rationale": "no damage visible"}
    for as_ in ("buyer", "warehouse", "platform"):
        expect_error(S.post_json(path, ok, as_), 403, "forbidden", what="decision as " + as_)
    expect_error(S.post_json(path, {"outcome": "refund_everything", "rationale": "x"},
                             "mediator"), 400, "invalid_field", field="outcome")
    expect_error(S.post_json(path, {"rationale": "x"}, "mediator"), 400, "missing_field",
                 field="outcome")
    expect_error(S.post_json(path, {"outcome": 5, "rationale": "x"}, "mediator"), 400,
                 "invalid_field", field="outcome")
    expect_error(S.post_json("/v1/cases/case_nope/decision", ok, "mediator"), 404,
                 "case_not_found")
    check(get_case(cid).get("status") == "open", "refused decisions changed the status")


# --------------------------------------------------------------------------------------------
# Routing, metrics, logs

@R.test
def method_not_allowed_405():
    cid = S.create_case()["case_id"]
    eid = ST["t3i"][1]["evidence_id"] if "t3i" in ST else "ev_x"
    for method, path in (("DELETE", "/v1/cases/" + cid), ("PUT", "/v1/cases"),
                         ("PATCH", "/v1/evidence/" + eid), ("POST", "/healthz"),
                         ("DELETE", "/v1/evidence/%s/original" % eid),
                         ("PUT", "/v1/cases/%s/evidence" % cid)):
        r = S.request(method, path, "admin", body=b"")
        expect_error(r, 405, "method_not_allowed")


@R.test
def unknown_route_404_not_found():
    for path in ("/v1/nope", "/v2/cases", "/v1/cases/x/y/z", "/v1/evidence"):
        expect_error(S.get(path, "admin"), 404, "not_found", what=path)


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$", line)
        check(m, "bad metrics line %r" % line)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric_sum(ms, name, **labels):
    return sum(v for (n, ls), v in ms.items()
               if n == name and all((k, val) in ls for k, val in labels.items()))


def get_metrics():
    r = S.get("/metrics", "admin")
    expect_status(r, 200, "metrics")
    check(r.header("content-type", "").startswith("text/plain"), "metrics Content-Type %r"
          % r.header("content-type"))
    return parse_metrics(r.body.decode()), r.body.decode()


@R.test
def metrics_counters_move():
    cid = S.create_case()["case_id"]
    data = fresh_jpeg("drewnoakes_Canon EOS 7D.jpg")
    m0, _ = get_metrics()
    single_item(S.upload_raw(cid, data, "image/jpeg", "buyer"), 201)
    expect_error(S.upload_raw(cid, b"not an image" * 10, "image/jpeg", "buyer"), 415,
                 "unsupported_media_type")
    m1, text = get_metrics()
    for name in ("exhibit_http_requests_total", "exhibit_http_request_duration_seconds_bucket",
                 "exhibit_http_request_duration_seconds_sum",
                 "exhibit_http_request_duration_seconds_count", "exhibit_upload_bytes_total",
                 "exhibit_uploads_stored_total", "exhibit_uploads_refused_total"):
        check(any(n == name for n, _ in m1), "metric %s missing" % name)
    d = lambda n, **kw: metric_sum(m1, n, **kw) - metric_sum(m0, n, **kw)  # noqa: E731
    check(d("exhibit_uploads_stored_total") == 1, "uploads_stored_total moved by %s, want 1"
          % d("exhibit_uploads_stored_total"))
    check(d("exhibit_uploads_refused_total") == 1, "uploads_refused_total moved by %s, want 1"
          % d("exhibit_uploads_refused_total"))
    check(d("exhibit_upload_bytes_total") >= len(data), "upload_bytes_total moved by %s, want "
          ">= %d" % (d("exhibit_upload_bytes_total"), len(data)))
    check(d("exhibit_http_requests_total", status="201") >= 1,
          "requests_total{status=201} moved by %s" % d("exhibit_http_requests_total",
                                                        status="201"))
    check(d("exhibit_http_requests_total", status="415") >= 1, "requests_total{status=415} "
          "did not move")
    for (n, ls) in m1:
        for k, v in ls:
            check(cid not in v, "label %s=%r carries a case id (unbounded cardinality)" % (k, v))
    # histogram: cumulative buckets, +Inf bucket == count, per label set.
    series = {}
    for (n, ls), v in m1.items():
        if n == "exhibit_http_request_duration_seconds_bucket":
            key = frozenset((k, x) for k, x in ls if k != "le")
            le = dict(ls)["le"]
            series.setdefault(key, []).append((float("inf") if le == "+Inf" else float(le), v))
    check(series, "no histogram buckets")
    for key, buckets in series.items():
        buckets.sort()
        vals = [v for _, v in buckets]
        check(vals == sorted(vals), "buckets not cumulative for %s: %s" % (dict(key), buckets))
        check(buckets[-1][0] == float("inf"), "no +Inf bucket for %s" % dict(key))
        count = m1.get(("exhibit_http_request_duration_seconds_count", key))
        check(count == buckets[-1][1], "+Inf bucket %s != _count %s for %s"
              % (buckets[-1][1], count, dict(key)))
    check(d("exhibit_http_request_duration_seconds_count") >= 2, "histogram _count did not move")
    check(metric_sum(m1, "exhibit_http_request_duration_seconds_sum") > 0, "_sum is 0")


@R.test
def request_log_lines_without_secrets():
    text = S.log_text()
    kv_lines = [l for l in text.splitlines() if len(re.findall(r"\b\w+=\S", l)) >= 3]
    check(len(kv_lines) >= 20, "only %d key=value log lines on stderr" % len(kv_lines))
    check(any("201" in l and "/v1/cases" in l for l in kv_lines),
          "no request log line with status 201 and a /v1/cases path")
    for label, k in S.keys.items():
        check(k not in text, "the %s key appears in the server log" % label)
    blob = b""
    for suffix in ("", "-wal"):
        p = os.path.join(S.data_dir, "exhibit.db" + suffix)
        if os.path.exists(p):
            blob += open(p, "rb").read()
    for label, k in S.keys.items():
        check(k.encode() not in blob, "the %s key is stored in clear in the database" % label)


# --------------------------------------------------------------------------------------------
# A second server: configured limits

@R.test
def configured_window_categories_and_max_body():
    exact = "drewnoakes_Nikon D1X.jpg"
    limit = len(photo(exact))  # a raw upload of this real photo is exactly --max-body bytes
    srv = R.watch(Server("limits", args=["--max-body", str(limit), "--return-window-days", "3",
                                         "--non-returnable", "books,fresh_produce"]))
    try:
        srv.start()
        delivered = utcnow() - 5 * DAY
        r = srv.post_json("/v1/cases", case_body(delivered_at=rfc3339(delivered),
                                                 opened_at=rfc3339(delivered + 3 * DAY)),
                          "platform")
        expect_status(r, 201, "3-day window, opened after exactly 3 days")
        check(parse_rfc3339(r.json["return_window_ends_at"]) == delivered + 3 * DAY,
              "return_window_ends_at %r with --return-window-days 3"
              % r.json["return_window_ends_at"])
        cid = r.json["case_id"]
        r = srv.post_json("/v1/cases", case_body(delivered_at=rfc3339(delivered),
                                                 opened_at=rfc3339(delivered + 3 * DAY + SEC)),
                          "platform")
        expect_error(r, 422, "return_window_closed")
        for cat in ("books", "fresh_produce"):
            expect_error(srv.post_json("/v1/cases", case_body(category=cat), "platform"), 422,
                         "not_returnable", what=cat)
        expect_status(srv.post_json("/v1/cases", case_body(category="custom_made"), "platform"),
                      201, "custom_made is returnable when not listed")

        # A body of exactly --max-body bytes is accepted, one byte more is not.
        r = srv.upload_raw(cid, photo(exact), "image/jpeg", "buyer")
        expect_status(r, 201, "raw body of exactly --max-body bytes")
        conn = srv.raw()
        try:
            h = {"Authorization": "Bearer " + srv.keys["buyer"], "Content-Type": "image/jpeg",
                 "Content-Length": str(limit + 1)}
            conn.send(request_head("POST", evidence_path(cid), h, srv.port))
            got = conn.read_response(10)
            check(got is not None, "max-body + 1: closed without a response")
            expect_error(Response("max-body + 1", *got), 413, "body_too_large")
        finally:
            conn.close()

        # Chunked bodies have no Content-Length: over the limit they must still be refused.
        data = photo("drewnoakes_Canon EOS 7D.jpg")
        check(len(data) > limit, "test photo too small")
        snap = StorageSnapshot(srv)
        conn = srv.raw()
        try:
            h = {"Authorization": "Bearer " + srv.keys["buyer"], "Content-Type": "image/jpeg",
                 "Transfer-Encoding": "chunked"}
            conn.send(request_head("POST", evidence_path(cid), h, srv.port))
            for i in range(0, len(data), 16384):
                piece = data[i:i + 16384]
                if not conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n"):
                    break
            conn.send(b"0\r\n\r\n")
            got = conn.read_response(15)
            if got is not None:
                    expect_error(Response("chunked upload over --max-body", *got), (413, 411),
                             ("body_too_large", "length_required"))
        finally:
            conn.close()
        snap.unchanged("chunked upload over --max-body")
        check(srv.healthy(), "unhealthy after a chunked oversize upload")
        srv.stop()
    finally:
        srv.cleanup()


@R.test
def every_response_says_nosniff():
    for path, as_ in (("/healthz", None), ("/v1/cases/nope", "mediator"), ("/v1/cases", None),
                      ("/ui/login", None), ("/metrics", None)):
        r = S.get(path, as_)
        check(r.header("X-Content-Type-Options") == "nosniff",
              "%s: X-Content-Type-Options %r" % (r.req, r.header("X-Content-Type-Options")))


@R.test
def a_second_server_on_the_same_data_refuses_to_start():
    # A file in tmp/ stands for an upload in flight on the running server.
    marker = os.path.join(S.data_dir, "tmp", "in-flight-upload")
    with open(marker, "wb") as f:
        f.write(b"partial upload")
    proc = subprocess.run([BIN, "serve", "--data", S.data_dir, "--listen", "127.0.0.1:0"],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        check(proc.returncode == 1 and b"in use by another exhibit serve" in proc.stderr,
              "second server: exit %r, stderr %r" % (proc.returncode, proc.stderr[-300:]))
        check(os.path.exists(marker), "the second server emptied the first one's tmp/")
        expect_status(S.get("/healthz"), 200)
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


# --------------------------------------------------------------------------------------------
# Shutdown and audit (after everything else)

@R.test
def sigterm_graceful_exit_0():
    S.stop()
    check(not S.tmp_files(), "DIR/tmp not empty after shutdown: %s" % S.tmp_files())


def _audit_rows(db):
    conn = sqlite3.connect(db)
    try:
        cols = conn.execute("PRAGMA table_info(audit_log)").fetchall()
        rows = conn.execute("SELECT rowid, * FROM audit_log ORDER BY rowid").fetchall()
        return cols, rows
    finally:
        conn.close()


@R.test
def audit_verify_passes_after_activity():
    r = audit_verify(S.data_dir)
    check(r.rc == 0, "audit verify failed on an untouched data dir: " + r.describe())
    m = re.search(r"audit: (\d+) rows verified", r.stdout)
    check(m, "no 'audit: N rows verified' line: " + r.describe())
    cols, rows = _audit_rows(os.path.join(S.data_dir, "exhibit.db"))
    check(int(m.group(1)) == len(rows) and len(rows) >= 10,
          "verified %s rows; audit_log has %d" % (m.group(1), len(rows)))


def _tampered_copy(mutate):
    """Copies the stopped server's data dir, drops audit_log triggers (an attacker with file
    access can), applies mutate(conn, rows, cols) and returns (dir, expected row numbers)."""
    d = tempfile.mkdtemp(prefix="exhibit-e2e-tamper-")
    dst = os.path.join(d, "data")
    shutil.copytree(S.data_dir, dst)
    conn = sqlite3.connect(os.path.join(dst, "exhibit.db"))
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger' "
                                    "AND tbl_name='audit_log'").fetchall():
            conn.execute('DROP TRIGGER "%s"' % name.replace('"', '""'))
        cols = conn.execute("PRAGMA table_info(audit_log)").fetchall()
        rows = conn.execute("SELECT rowid, * FROM audit_log ORDER BY rowid").fetchall()
        rownums = mutate(conn, rows, cols)
        conn.commit()
    finally:
        conn.close()
    return d, dst, rownums


def _expect_verify_fails(dst, rownums, what):
    r = audit_verify(dst)
    check(r.rc == 1, "%s: audit verify should exit 1: %s" % (what, r.describe()))
    out = r.stdout + r.stderr
    m = re.search(r"audit: row (\d+)", out)
    check(m, "%s: output does not name the row ('audit: row N'): %s" % (what, r.describe()))
    check(int(m.group(1)) in rownums, "%s: names row %s, tampered row is %s"
          % (what, m.group(1), sorted(rownums)))


@R.test
def audit_verify_detects_altered_row():
    d, dst, _ = _tampered_copy(lambda c, rows, cols: set())
    try:
        r = audit_verify(dst)
        check(r.rc == 0, "control: the untampered copy does not verify: " + r.describe())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    cols = _audit_rows(os.path.join(S.data_dir, "exhibit.db"))[0]
    check(cols, "no audit_log table")
    tested = 0
    for cid, cname, ctype, _, _, pk in cols:
        if pk and ctype.upper() == "INTEGER":
            continue  # the rowid itself; renumbering is covered by the deletion test

        def mutate(conn, rows, cols_, cname=cname):
            row = rows[len(rows) // 2]
            rowid = row[0]
            val = row[1 + [c[1] for c in cols_].index(cname)]
            if isinstance(val, int):
                new = val + 1
            elif isinstance(val, float):
                new = val + 1.0
            elif isinstance(val, bytes):
                new = bytes([val[0] ^ 1]) + val[1:] if val else b"\x01"
            elif isinstance(val, str):
                new = (val[:-1] + ("0" if val[-1:] != "0" else "1")) if val else "x"
            else:
                new = "x"
            conn.execute('UPDATE audit_log SET "%s" = ? WHERE rowid = ?' % cname, (new, rowid))
            nums = {rowid}
            nums.update(v for v in row[1:] if isinstance(v, int))
            return nums
        d, dst, nums = _tampered_copy(mutate)
        try:
            _expect_verify_fails(dst, nums, "column %s altered in one row" % cname)
            tested += 1
        finally:
            shutil.rmtree(d, ignore_errors=True)
    check(tested >= 2, "only %d audit_log columns could be tampered with" % tested)


@R.test
def audit_verify_detects_deleted_row():
    def mutate(conn, rows, cols):
        row = rows[len(rows) // 2]
        conn.execute("DELETE FROM audit_log WHERE rowid = ?", (row[0],))
        nums = {row[0], row[0] + 1}
        nums.update(v for v in row[1:] if isinstance(v, int))
        nums.update(v + 1 for v in row[1:] if isinstance(v, int))
        return nums
    d, dst, nums = _tampered_copy(mutate)
    try:
        _expect_verify_fails(dst, nums, "one row deleted")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------


def main():
    global S
    print("# exhibit e2e API tests; binary %s" % BIN)
    S = R.watch(Server("api"))
    try:
        S.start()
    except Failure as ex:
        R.report_fail("server_start", ex)
        print("# %d tests not run" % len(R.tests))
        S.cleanup(keep=True)
        return R.finish()
    print("# server %s on port %d, data %s" % (S.name, S.port, S.data_dir))
    R.run()
    keep = R.failed > 0
    if keep:
        print("# data dir kept: %s; logs in tests/artifacts/" % S.data_dir)
    S.cleanup(keep=keep)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
