#!/usr/bin/env python3
"""test_rules.py - rules at the edges: what an item's matches show, what an inspection may
attach, dates near the end of the calendar, order search with escapes, sign-in from another
site, and refusals that must leave nothing on disk.
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (main_with_server, Part, Runner, Server, StorageSnapshot, check, expect_error,  # noqa: E402
                     expect_status, multipart_encode, photo, with_jpeg_comment)

R = Runner("e2e")
S = None


def fresh(name="drewnoakes_Sanyo SR6.jpg"):
    return with_jpeg_comment(photo(name), "exhibit-rules " + uuid.uuid4().hex)


def inspect(case_id, parts, as_="warehouse"):
    body, ctype = multipart_encode(parts)
    return S.request("POST", "/v1/cases/%s/inspections" % case_id, as_, body=body,
                     headers={"Content-Type": ctype})


@R.test
def item_matches_list_earlier_evidence_only_similar_lists_both():
    data = fresh()
    c1, c2 = S.create_case(), S.create_case(buyer_id="b-bob")
    first = S.upload_raw(c1["case_id"], data, "image/jpeg", as_="buyer").json["items"][0]
    second = S.upload_raw(c2["case_id"], data, "image/jpeg", as_="buyer2").json["items"][0]
    second = S.get("/v1/evidence/%s" % second["evidence_id"], "mediator").json
    check(second["matches"] and second["matches"][0]["evidence_id"] == first["evidence_id"],
          "the later item lists the earlier one: %r" % second["matches"])
    r = S.get("/v1/evidence/%s" % first["evidence_id"], "mediator")
    expect_status(r, 200)
    check(r.json["matches"] == [] and "reused_exact" in r.json["flags"]
          and [m["evidence_id"] for m in r.json["matched_by"]] == [second["evidence_id"]],
          "the earlier item's matches stay earlier evidence; the later one is matched_by: %r"
          % r.json)
    r = S.get("/v1/evidence/%s" % first["evidence_id"], "buyer")
    expect_status(r, 200)
    check(r.json["matches"] == [] and r.json["matched_by"] == []
          and "reused_exact" not in r.json["flags"],
          "a buyer must not learn of another case: %r" % r.json)
    r = S.get("/v1/evidence/%s/similar" % first["evidence_id"], "mediator")
    expect_status(r, 200)
    ids = [m["evidence_id"] for m in r.json["matches"]]
    check(second["evidence_id"] in ids, "/similar lists the later copy: %r" % ids)


@R.test
def inspection_cannot_claim_buyer_photos():
    c = S.create_case()
    buyer_item = S.upload_raw(c["case_id"], fresh(), "image/jpeg", as_="buyer").json["items"][0]
    snap = StorageSnapshot(S)
    expect_error(inspect(c["case_id"], [Part("grade", "damaged"),
                                        Part("evidence_id", buyer_item["evidence_id"])]),
                 400, "invalid_field", field="evidence_id")
    snap.unchanged("refused inspection")


@R.test
def refused_inspection_stores_no_file():
    c = S.create_case()
    snap = StorageSnapshot(S)
    expect_error(inspect(c["case_id"], [Part("grade", "opened"), Part("evidence_id", "ev_nope"),
                                        Part("file", fresh(), "a.jpg", "image/jpeg")]),
                 400, "invalid_field", field="evidence_id")
    snap.unchanged("inspection naming an unknown photo")
    # A good file beside an undecodable one: neither is stored, no derivative either.
    bad = photo("drewnoakes_Sanyo SR6.jpg")[:20000]
    body, ctype = multipart_encode([Part("file", fresh(), "a.jpg", "image/jpeg"),
                                    Part("file", bad, "b.jpg", "image/jpeg")])
    r = S.request("POST", "/v1/cases/%s/evidence" % c["case_id"], "buyer", body=body,
                  headers={"Content-Type": ctype})
    expect_error(r, 422, "image_undecodable")
    snap.unchanged("upload with one undecodable file")


@R.test
def inspection_links_a_photo_already_on_the_case():
    c = S.create_case()
    data = fresh("drewnoakes_Kodak DC240.jpg")
    item = S.upload_raw(c["case_id"], data, "image/jpeg", as_="warehouse").json["items"][0]
    r = inspect(c["case_id"], [Part("grade", "damaged"), Part("file", data, "a.jpg", "image/jpeg")])
    expect_status(r, 201)
    check(r.json["inspection"]["evidence_ids"] == [item["evidence_id"]],
          "response %r" % r.json["inspection"])
    case = S.get("/v1/cases/%s" % c["case_id"], "mediator").json
    check(case["inspections"][0]["evidence_ids"] == [item["evidence_id"]],
          "case shows %r" % case["inspections"])


@R.test
def dates_near_the_calendar_edge_are_refused_not_crashing():
    for field, value in (("delivered_at", "9999-12-30T10:00:00Z"),
                         ("opened_at", "9999-12-31T10:00:00Z"),
                         ("delivered_at", "3000-01-01T00:00:00Z")):
        body = {"delivered_at": "2026-11-20T10:00:00Z", "opened_at": "2026-11-21T10:00:00Z"}
        body[field] = value
        if field == "opened_at":
            body["delivered_at"] = "9999-12-30T10:00:00Z"
        r = S.post_json("/v1/cases", dict(order_id="X", buyer_id="b", seller_id="s",
                                           reason="damaged", category="toys", **body), "platform")
        expect_error(r, 400, "invalid_field")
    c = S.create_case()
    body, ctype = multipart_encode([Part("captured_at", "9999-12-31T23:00:00-05:00"),
                                    Part("file", fresh(), "a.jpg", "image/jpeg")])
    r = S.request("POST", "/v1/cases/%s/evidence" % c["case_id"], "buyer", body=body,
                  headers={"Content-Type": ctype})
    expect_error(r, 400, "invalid_field", field="captured_at")
    check(S.healthy(), "server unhealthy")


@R.test
def order_search_decodes_escapes():
    order = "ORD 7/1+" + uuid.uuid4().hex[:6]
    c = S.create_case(order_id=order)
    for q in (order.replace(" ", "%20").replace("/", "%2F").replace("+", "%2B"),
              order.replace("+", "%2B").replace(" ", "+")):
        r = S.get("/v1/cases?order_id=" + q, "warehouse")
        expect_status(r, 200)
        check([x["case_id"] for x in r.json["cases"]] == [c["case_id"]], "%s -> %r" % (q, r.json))
    expect_error(S.get("/v1/cases?order_id=%00", "warehouse"), 400, "invalid_field")
    expect_error(S.get("/v1/cases?order_id=%zz", "warehouse"), 400, "invalid_field")


@R.test
def sign_in_from_another_site_is_refused():
    body = ("key=%s" % S.keys["mediator"]).encode()
    r = S.request("POST", "/ui/login", None, body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded",
                           "Origin": "http://evil.example"})
    expect_error(r, 403, "csrf_failed")
    check(r.header("Set-Cookie") is None, "a cookie was set")
    r = S.request("POST", "/ui/login", None, body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded",
                           "Origin": "http://127.0.0.1:%d" % S.port})
    expect_status(r, 303)
    check("exhibit_session=" in (r.header("Set-Cookie") or ""), "no session cookie")


if __name__ == "__main__":
    sys.exit(main_with_server(R, "rules", globals()))
