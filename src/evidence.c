/* evidence.c - evidence items as JSON (see evidence.h). */
#include "exhibit/evidence.h"

#include <stdio.h>
#include <string.h>

#include "exhibit/analyze.h"

int evidence_may_see_location(const key_info *viewer)
{
    return viewer->role == ROLE_MEDIATOR || viewer->role == ROLE_ADMIN;
}

int evidence_may_see_reuse(const key_info *viewer)
{
    /* An allow-list of the platform's own staff: a party to a case (a buyer, and any party
     * role added later) must never learn that another case exists. */
    return viewer->role == ROLE_MEDIATOR || viewer->role == ROLE_ADMIN ||
           viewer->role == ROLE_PLATFORM || viewer->role == ROLE_WAREHOUSE;
}

ex_rc evidence_lookup(app *a, const char *evidence_id, const key_info *viewer, evidence_ref *out,
                      ex_error *e)
{
    db_stmt *s = NULL;
    ex_rc rc;
    db_lock(a->db);
    rc = db_prepare(a->db,
                    "SELECT e.id, e.case_ref, e.evidence_id, e.sha256, b.media_type, b.bytes, "
                    "c.buyer_id, b.thumb_sha256, b.preview_sha256 FROM evidence e "
                    "JOIN cases c ON c.id = e.case_ref "
                    "JOIN blobs b ON b.sha256 = e.sha256 WHERE e.evidence_id = ?",
                    &s, e);
    if (!rc) {
        db_bind_text(s, 1, evidence_id);
        int r = db_step(s, e);
        if (r < 0) {
            rc = EX_EDB;
        } else if (r == DB_DONE || (viewer->role == ROLE_BUYER &&
                                    strcmp(db_col_text(s, 6), viewer->subject) != 0)) {
            rc = ex_fail(e, EX_ENOTFOUND, "evidence_not_found",
                         "no evidence '%.64s' is visible to this key", evidence_id);
        } else {
            out->rowid = db_col_int(s, 0);
            out->case_rowid = db_col_int(s, 1);
            snprintf(out->evidence_id, sizeof out->evidence_id, "%s", db_col_text(s, 2));
            snprintf(out->sha256, sizeof out->sha256, "%s", db_col_text(s, 3));
            snprintf(out->media_type, sizeof out->media_type, "%s", db_col_text(s, 4));
            out->bytes = db_col_int(s, 5);
            snprintf(out->thumb_sha256, sizeof out->thumb_sha256, "%s", db_col_text(s, 7));
            snprintf(out->preview_sha256, sizeof out->preview_sha256, "%s", db_col_text(s, 8));
        }
    }
    db_finalize(s);
    db_unlock(a->db);
    return rc;
}

/* Which side of the stored match rows (one per pair, from the later item) to list. */
enum { MATCH_EARLIER = 1, MATCH_LATER = 2, MATCH_BOTH = 3 };

/* Matches closest first; the caller holds db_lock. `detailed` (/similar) adds the other item's
 * source, upload time and thumbnail. */
static ex_rc matches_list(app *a, int64_t rowid, int sides, int limit, int detailed, json_t **out,
                          ex_error *e)
{
    db_stmt *s = NULL;
    /* An item's `matches` are the earlier evidence it repeats (API.md), its `matched_by` the
     * later evidence that repeats it; /similar lists both. */
    ex_rc rc = db_prepare(a->db,
                          "SELECT o.evidence_id, oc.case_id, m.kind, m.distance, o.source, "
                          "o.created_at, m.tier, m.region, 0 FROM matches m "
                          "JOIN evidence o ON o.id = m.other_ref "
                          "JOIN cases oc ON oc.id = o.case_ref WHERE m.evidence_ref = ?1 AND ?3 "
                          "UNION ALL "
                          "SELECT o.evidence_id, oc.case_id, m.kind, m.distance, o.source, "
                          "o.created_at, m.tier, m.region, 1 FROM matches m "
                          "JOIN evidence o ON o.id = m.evidence_ref "
                          "JOIN cases oc ON oc.id = o.case_ref WHERE m.other_ref = ?1 AND ?4 "
                          "ORDER BY 4, 6, 1 LIMIT ?2",
                          &s, e);
    if (rc) return rc;
    db_bind_int(s, 1, rowid);
    db_bind_int(s, 2, limit);
    db_bind_int(s, 3, (sides & MATCH_EARLIER) != 0);
    db_bind_int(s, 4, (sides & MATCH_LATER) != 0);
    json_t *arr = json_array();
    int r;
    while ((r = db_step(s, e)) == DB_ROW) {
        json_t *m = json_pack("{s:s, s:s, s:s, s:I}", "evidence_id", db_col_text(s, 0), "case_id",
                              db_col_text(s, 1), "kind", db_col_text(s, 2), "distance",
                              (json_int_t)db_col_int(s, 3));
        /* Where the two pictures overlap, each in fractions of its own width and height (the
         * row keeps them from the later item's side). */
        const char *tier = db_col_text(s, 6), *region = db_col_text(s, 7);
        json_t *rg = region ? json_loads(region, 0, NULL) : NULL;
        if (tier) json_object_set_new(m, "tier", json_string(tier));
        if (rg) {
            int later = db_col_int(s, 8) == 0; /* this item is the later one */
            json_object_set_new(m, "region",
                                json_pack("{s:O, s:O, s:O}", "this",
                                          json_object_get(rg, later ? "new" : "old"), "other",
                                          json_object_get(rg, later ? "old" : "new"), "mirrored",
                                          json_object_get(rg, "mirrored")));
            json_decref(rg);
        }
        if (detailed) {
            char url[128];
            snprintf(url, sizeof url, "/v1/evidence/%s/thumb", db_col_text(s, 0));
            json_object_set_new(m, "source", json_string(db_col_text(s, 4)));
            json_object_set_new(m, "created_at", json_string(db_col_text(s, 5)));
            json_object_set_new(m, "thumb", json_string(url));
        }
        json_array_append_new(arr, m);
    }
    db_finalize(s);
    if (r < 0) {
        json_decref(arr);
        return EX_EDB;
    }
    *out = arr;
    return EX_OK;
}

/* Sets `matches`, `matched_by` and the reuse flags, which then hold for both items of a pair.
 * Viewers who may not see reuse get both lists empty and no reuse flag: the keys stay so the
 * item has one shape for every client. */
static ex_rc matches_json(app *a, int64_t rowid, const key_info *viewer, json_t *item, ex_error *e)
{
    static const char *const fields[] = {"matches", "matched_by"};
    static const int sides[] = {MATCH_EARLIER, MATCH_LATER};
    int exact = 0, near = 0;
    int visible = evidence_may_see_reuse(viewer);
    for (int f = 0; f < 2; f++) {
        json_t *arr = NULL;
        if (!visible) {
            if (!(arr = json_array()))
                return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        } else {
            ex_rc rc = matches_list(a, rowid, sides[f], 1000, 0, &arr, e);
            if (rc) return rc;
        }
        for (size_t i = 0; i < json_array_size(arr); i++) {
            const char *kind = json_string_value(json_object_get(json_array_get(arr, i), "kind"));
            exact |= kind && strcmp(kind, "exact") == 0;
            near |= kind && strcmp(kind, "near") == 0;
        }
        json_object_set_new(item, fields[f], arr);
    }
    json_t *flags = json_object_get(item, "flags");
    if (exact) json_array_append_new(flags, json_string("reused_exact"));
    if (near) json_array_append_new(flags, json_string("reused_near"));
    return EX_OK;
}

/* Builds the item; the caller holds db_lock. */
static ex_rc item_locked(app *a, int64_t rowid, const key_info *viewer, int full, json_t **out,
                         ex_error *e)
{
    db_stmt *s = NULL;
    ex_rc rc =
        db_prepare(a->db,
                   "SELECT e.evidence_id, c.case_id, e.source, e.sha256, b.bytes, "
                   "b.media_type, e.note, e.captured_at, e.flags, e.created_at, "
                   "b.width, b.height, b.meta FROM evidence e JOIN cases c ON c.id = e.case_ref "
                   "JOIN blobs b ON b.sha256 = e.sha256 WHERE e.id = ?",
                   &s, e);
    if (rc) return rc;
    db_bind_int(s, 1, rowid);
    int r = db_step(s, e);
    if (r != DB_ROW) {
        db_finalize(s);
        return r < 0 ? EX_EDB : ex_fail(e, EX_ENOTFOUND, "evidence_not_found", "evidence vanished");
    }
    const char *evid = db_col_text(s, 0);
    char url[128];
    json_t *item = json_object();
    json_object_set_new(item, "evidence_id", json_string(evid));
    json_object_set_new(item, "case_id", json_string(db_col_text(s, 1)));
    json_object_set_new(item, "source", json_string(db_col_text(s, 2)));
    json_object_set_new(item, "sha256", json_string(db_col_text(s, 3)));
    json_object_set_new(item, "bytes", json_integer(db_col_int(s, 4)));
    json_object_set_new(item, "media_type", json_string(db_col_text(s, 5)));
    json_object_set_new(item, "note",
                        db_col_is_null(s, 6) ? json_null() : json_string(db_col_text(s, 6)));
    json_object_set_new(item, "captured_at",
                        db_col_is_null(s, 7) ? json_null() : json_string(db_col_text(s, 7)));
    json_t *flags = json_loads(db_col_text(s, 8), 0, NULL);
    json_object_set_new(item, "flags", json_is_array(flags) ? flags : json_array());
    if (flags && !json_is_array(flags)) json_decref(flags);
    json_object_set_new(item, "created_at", json_string(db_col_text(s, 9)));
    json_t *urls = json_object();
    const char *names[] = {"thumb", "preview", "original"};
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "/v1/evidence/%s/%s", evid, names[i]);
        json_object_set_new(urls, names[i], json_string(url));
    }
    json_object_set_new(item, "urls", urls);
    if (!db_col_is_null(s, 10)) {
        json_object_set_new(item, "width", json_integer(db_col_int(s, 10)));
        json_object_set_new(item, "height", json_integer(db_col_int(s, 11)));
    }
    json_t *meta = db_col_is_null(s, 12) ? NULL : json_loads(db_col_text(s, 12), 0, NULL);
    db_finalize(s);
    if (meta) {
        if (!evidence_may_see_location(viewer)) analyze_redact_location(meta);
        json_object_set(item, "exif", json_object_get(meta, "exif"));
        if (json_object_get(meta, "hashes"))
            json_object_set(item, "hashes", json_object_get(meta, "hashes"));
        if (full) {
            static const char *const keys[] = {"exif_all", "xmp", "has_iptc", "has_icc", "editor"};
            for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
                json_object_set(item, keys[i], json_object_get(meta, keys[i]));
            json_t *present = json_object_get(json_object_get(meta, "xmp"), "present");
            json_object_set_new(item, "has_xmp", json_boolean(json_is_true(present)));
        }
        json_decref(meta);
    }
    rc = matches_json(a, rowid, viewer, item, e);
    if (rc) {
        json_decref(item);
        return rc;
    }
    *out = item;
    return EX_OK;
}

ex_rc evidence_item_json(app *a, int64_t rowid, const key_info *viewer, int full, json_t **out,
                         ex_error *e)
{
    db_lock(a->db);
    ex_rc rc = item_locked(a, rowid, viewer, full, out, e);
    db_unlock(a->db);
    return rc;
}

ex_rc evidence_list_json(app *a, int64_t case_rowid, const key_info *viewer, json_t **out,
                         ex_error *e)
{
    db_stmt *s = NULL;
    json_t *arr = json_array();
    ex_rc rc;
    db_lock(a->db);
    rc = db_prepare(a->db, "SELECT id FROM evidence WHERE case_ref = ? ORDER BY id", &s, e);
    if (!rc) {
        db_bind_int(s, 1, case_rowid);
        int r = 0;
        while (!rc && (r = db_step(s, e)) == DB_ROW) {
            json_t *item = NULL;
            rc = item_locked(a, db_col_int(s, 0), viewer, 0, &item, e);
            if (!rc) json_array_append_new(arr, item);
        }
        if (!rc && r < 0) rc = EX_EDB;
    }
    db_finalize(s);
    db_unlock(a->db);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return EX_OK;
}

ex_rc evidence_similar_json(app *a, const evidence_ref *ev, int limit, json_t **out, ex_error *e)
{
    json_t *arr = NULL;
    db_lock(a->db);
    ex_rc rc = matches_list(a, ev->rowid, MATCH_BOTH, limit, 1, &arr, e);
    db_unlock(a->db);
    if (rc) return rc;
    *out = json_pack("{s:s, s:o}", "evidence_id", ev->evidence_id, "matches", arr);
    return *out ? EX_OK : ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
}
