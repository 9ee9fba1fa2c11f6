/* intake.c - streamed upload -> checked, stored, linked evidence (see intake.h). */
#include "exhibit/intake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/analyze.h"
#include "exhibit/audit.h"
#include "exhibit/evidence.h"
#include "exhibit/image.h"
#include "exhibit/log.h"
#include "exhibit/matcher.h"
#include "exhibit/util.h"

#define NOTE_MAX 2000

/* Two copies of one picture uploaded at the same moment must find each other. The index only
 * holds committed images (a candidate's signature is read back from the database, and a match
 * row must name a committed item), so "look for earlier copies", "commit" and "become
 * findable" run as one step under this lock: of any two uploads the later one to take it sees
 * the earlier one committed and indexed, and a rolled-back upload never reaches the index.
 * Decoding, hashing and blob fsyncs stay outside it; the transaction inside is serialised by
 * db_lock anyway, so the lock only adds the index query to what already runs one at a time.
 * One per process: there is one index per process. */
static pthread_mutex_t reuse_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct staged {
    blob_writer w;
    int open;     /* receiving bytes */
    int finished; /* hashed and fsynced */
    image_type type;
    int64_t rowid;        /* evidence row once linked */
    json_t *meta;         /* what the image is (analysis or the stored row), owned */
    reuse_sig *sig;       /* reuse signature: the analysis's, or parsed from the stored row */
    matcher_hit hits[32]; /* near matches among earlier images (other blobs) */
    size_t nhits;
    int sig_stored; /* this request's transaction stored the blob's signature */
    analysis an;    /* set when this request decoded the image */
    int analyzed;
} staged;

struct intake {
    app *a;
    key_info who;
    case_ref c;
    staged *files;
    size_t n, cap;
    uint64_t bytes;
    char *note;
    char captured_at[UTIL_TIME_LEN];
    int inspection; /* this upload is a warehouse inspection */
    int have_grade;
    char grade[32];
    char *notes;
    int64_t inspection_rowid;
    char inspection_id[40];
    char (*link_ids)[40]; /* earlier uploads of this case to attach to the inspection */
    size_t nlink;
};

static const char *const grades[] = {"as_new",     "opened",        "used",        "damaged",
                                     "wrong_item", "missing_parts", "not_received"};

void intake_set_inspection(intake *u)
{
    u->inspection = 1;
}

intake *intake_new(app *a, const key_info *who, const case_ref *c)
{
    intake *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->a = a;
    u->who = *who;
    u->c = *c;
    return u;
}

void intake_free(intake *u)
{
    if (!u) return;
    for (size_t i = 0; i < u->n; i++) {
        blob_writer_abort(&u->files[i].w);
        json_decref(u->files[i].meta);
        if (u->files[i].sig != u->files[i].an.sig) reuse_sig_free(u->files[i].sig);
        analysis_release(&u->files[i].an);
    }
    free(u->files);
    free(u->note);
    free(u->notes);
    free(u->link_ids);
    free(u);
}

size_t intake_file_count(const intake *u)
{
    return u->n;
}

uint64_t intake_bytes(const intake *u)
{
    return u->bytes;
}

ex_rc intake_file_begin(intake *u, const char *declared_type, ex_error *e)
{
    (void)declared_type;
    if (u->n && u->files[u->n - 1].open)
        return ex_fail(e, EX_EINTERNAL, "internal_error", "file part not ended");
    if (u->n >= u->a->cfg.max_files)
        return ex_fail(e, EX_ETOOBIG, "too_many_files", "at most %u files per upload",
                       u->a->cfg.max_files);
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 4;
        staged *f = realloc(u->files, cap * sizeof *f);
        if (!f) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        u->files = f;
        u->cap = cap;
    }
    staged *f = &u->files[u->n];
    memset(f, 0, sizeof *f);
    ex_rc rc = blob_writer_open(&u->a->bs, &f->w, e);
    if (rc) return rc;
    f->open = 1;
    u->n++;
    return EX_OK;
}

ex_rc intake_file_data(intake *u, const void *data, size_t len, ex_error *e)
{
    if (!u->n || !u->files[u->n - 1].open)
        return ex_fail(e, EX_EINTERNAL, "internal_error", "data outside a file part");
    u->bytes += len;
    return blob_writer_write(&u->files[u->n - 1].w, data, len, e);
}

ex_rc intake_file_end(intake *u, ex_error *e)
{
    if (!u->n || !u->files[u->n - 1].open)
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no file part to end");
    staged *f = &u->files[u->n - 1];
    f->open = 0;
    ex_rc rc = blob_writer_finish(&f->w, e);
    if (!rc) f->finished = 1;
    return rc;
}

static ex_rc set_text(char **dst, const char *name, const char *value, ex_error *e)
{
    if (strlen(value) > NOTE_MAX)
        return ex_fail(e, EX_EINVAL, "invalid_field", "field '%s' is longer than %d bytes", name,
                       NOTE_MAX);
    char *dup = strdup(value);
    if (!dup) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    /* Browsers send textarea line breaks as CRLF; store plain newlines. */
    char *w = dup;
    for (const char *r = dup; *r; r++)
        if (!(r[0] == '\r' && r[1] == '\n')) *w++ = *r;
    *w = '\0';
    free(*dst);
    *dst = dup;
    return EX_OK;
}

ex_rc intake_set_field(intake *u, const char *name, const char *value, ex_error *e)
{
    /* The fields read here end up in JSON, logs and pages: refuse bytes that are not text.
     * Unknown fields are ignored, as unknown JSON fields are. */
    static const char *const known[] = {"note", "notes", "grade", "evidence_id", "captured_at"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(name, known[i]) == 0 && !util_text_ok(value))
            return ex_fail(e, EX_EINVAL, "invalid_field",
                           "field '%s' must be UTF-8 text without control characters", name);
    if (u->inspection && strcmp(name, "grade") == 0) {
        u->have_grade = 1;
        snprintf(u->grade, sizeof u->grade, "%s", value);
        for (size_t i = 0; i < sizeof grades / sizeof *grades; i++)
            if (strcmp(value, grades[i]) == 0) return EX_OK;
        return ex_fail(e, EX_EINVAL, "invalid_field",
                       "field 'grade' must be one of as_new, opened, used, damaged, wrong_item, "
                       "missing_parts, not_received");
    }
    if (u->inspection && strcmp(name, "notes") == 0) return set_text(&u->notes, name, value, e);
    if (u->inspection && strcmp(name, "evidence_id") == 0) {
        if (strlen(value) >= sizeof *u->link_ids || u->nlink >= u->a->cfg.max_files)
            return ex_fail(e, EX_EINVAL, "invalid_field",
                           "field 'evidence_id': at most %u ids of this case's photos",
                           u->a->cfg.max_files);
        char(*ids)[40] = realloc(u->link_ids, (u->nlink + 1) * sizeof *ids);
        if (!ids) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        u->link_ids = ids;
        snprintf(u->link_ids[u->nlink++], sizeof *u->link_ids, "%s", value);
        return EX_OK;
    }
    if (strcmp(name, "note") == 0) {
        return set_text(&u->note, name, value, e);
    } else if (strcmp(name, "captured_at") == 0) {
        time_t t;
        if (util_time_parse(value, &t))
            return ex_fail(e, EX_EINVAL, "invalid_field",
                           "field 'captured_at' must be an RFC 3339 time like "
                           "2026-11-21T09:14:03Z");
        util_time_format(t, u->captured_at);
    }
    /* Unknown text fields are ignored, as unknown JSON fields are. */
    return EX_OK;
}

/* The stored analysis (and signature) of these bytes, if an earlier upload made one. */
static json_t *stored_meta(intake *u, const char *sha, reuse_sig **sig)
{
    db_stmt *s = NULL;
    json_t *meta = NULL;
    db_lock(u->a->db);
    if (db_prepare(u->a->db, "SELECT meta, rsig FROM blobs WHERE sha256 = ? AND meta IS NOT NULL",
                   &s, NULL) == EX_OK) {
        db_bind_text(s, 1, sha);
        if (db_step(s, NULL) == DB_ROW) {
            meta = json_loads(db_col_text(s, 0), 0, NULL);
            int len = 0;
            const void *blob = db_col_blob(s, 1, &len);
            if (meta && blob && reuse_sig_parse(blob, (size_t)len, sig, NULL) != EX_OK) *sig = NULL;
        }
    }
    db_finalize(s);
    db_unlock(u->a->db);
    return meta;
}

/* The blob's rowid (0 when not stored yet). */
static int64_t blob_rowid(intake *u, const char *sha)
{
    db_stmt *s = NULL;
    int64_t id = 0;
    db_lock(u->a->db);
    if (db_prepare(u->a->db, "SELECT rowid FROM blobs WHERE sha256 = ?", &s, NULL) == EX_OK) {
        db_bind_text(s, 1, sha);
        if (db_step(s, NULL) == DB_ROW) id = db_col_int(s, 0);
    }
    db_finalize(s);
    db_unlock(u->a->db);
    return id;
}

/* Earlier images that are the same picture (not the same bytes: those are exact matches). */
static ex_rc find_matches(intake *u, staged *f, ex_error *e)
{
    f->nhits = 0;
    if (!u->a->matcher || !f->sig) return EX_OK;
    return matcher_find(u->a->matcher, u->a->db, f->sig, blob_rowid(u, f->w.hex), f->hits,
                        sizeof f->hits / sizeof *f->hits, &f->nhits, e);
}

/* Decodes and describes one file (or reuses what is known about the same bytes). Matching
 * waits for reuse_lock (intake_commit). */
static ex_rc inspect_file(intake *u, staged *f, size_t i, ex_error *e)
{
    if ((f->meta = stored_meta(u, f->w.hex, &f->sig))) return EX_OK;
    ex_rc rc = analyze_file(u->a, f->w.tmp_path, &f->an, e);
    if (rc) {
        /* Say which file of a multi-file upload was refused. */
        if (e && u->n > 1) {
            char msg[sizeof e->message];
            snprintf(msg, sizeof msg, "file %zu of %zu: %.200s", i + 1, u->n, e->message);
            memcpy(e->message, msg, sizeof msg);
        }
        return rc;
    }
    f->analyzed = 1;
    f->meta = json_incref(f->an.meta);
    f->sig = f->an.sig;
    return EX_OK;
}

/* Links one stored file to the case inside the caller's transaction. */
static ex_rc link_file(intake *u, staged *f, const char *now, const char *who, int *created,
                       ex_error *e)
{
    db *d = u->a->db;
    db_stmt *s = NULL;
    ex_rc rc;
    if (f->analyzed) {
        char *meta = json_dumps(f->meta, JSON_COMPACT | JSON_REAL_PRECISION(10));
        uint8_t *sig = NULL;
        size_t sig_len = 0;
        if (!meta || reuse_sig_serialize(f->an.sig, &sig, &sig_len, NULL) != EX_OK) {
            free(meta);
            return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        }
        const json_t *h = json_object_get(f->meta, "hashes");
        rc = db_prepare(d,
                        "INSERT INTO blobs(sha256, bytes, media_type, created_at, width, height, "
                        "thumb_sha256, preview_sha256, meta, pdq, pdq_quality, phash64, rsig) "
                        "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13) "
                        "ON CONFLICT(sha256) DO UPDATE SET width = ?5, height = ?6, "
                        "thumb_sha256 = ?7, preview_sha256 = ?8, meta = ?9, pdq = ?10, "
                        "pdq_quality = ?11, phash64 = ?12, rsig = ?13 WHERE meta IS NULL",
                        &s, e);
        if (!rc) {
            db_bind_text(s, 10, json_string_value(json_object_get(h, "pdq")));
            db_bind_int(s, 11, json_integer_value(json_object_get(h, "pdq_quality")));
            db_bind_text(s, 12, json_string_value(json_object_get(h, "phash64")));
            db_bind_blob(s, 13, sig, (int)sig_len);
        }
        free(sig);
        if (!rc) {
            db_bind_text(s, 1, f->w.hex);
            db_bind_int(s, 2, (int64_t)f->w.size);
            db_bind_text(s, 3, image_media_type(f->type));
            db_bind_text(s, 4, now);
            db_bind_int(s, 5, f->an.width);
            db_bind_int(s, 6, f->an.height);
            db_bind_text(s, 7, f->an.thumb_sha);
            db_bind_text(s, 8, f->an.preview_sha);
            db_bind_text(s, 9, meta);
            rc = db_exec_stmt(s, e);
            /* A concurrent upload of the same bytes may have stored (and indexed) it first. */
            f->sig_stored = !rc && db_changes(d) > 0;
            db_finalize(s);
        }
        free(meta);
        if (rc) return rc;
    }

    if ((rc = db_prepare(d, "SELECT id FROM evidence WHERE case_ref = ? AND sha256 = ?", &s, e)))
        return rc;
    db_bind_int(s, 1, u->c.rowid);
    db_bind_text(s, 2, f->w.hex);
    int r = db_step(s, e);
    if (r == DB_ROW) f->rowid = db_col_int(s, 0);
    db_finalize(s);
    if (r < 0) return EX_EDB;
    if (r == DB_ROW) {
        /* The same bytes twice on one case are one item; an inspection still claims it when
         * it is free (a buyer's photo stays the buyer's). */
        if (!u->inspection_rowid) return EX_OK;
        if ((rc = db_prepare(d,
                             "UPDATE evidence SET inspection_ref = ? WHERE id = ? AND "
                             "inspection_ref IS NULL AND source IN ('warehouse', 'admin')",
                             &s, e)))
            return rc;
        db_bind_int(s, 1, u->inspection_rowid);
        db_bind_int(s, 2, f->rowid);
        rc = db_exec_stmt(s, e);
        db_finalize(s);
        return rc;
    }

    char evid[40];
    if (util_random_id("ev_", 12, evid, sizeof evid))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no randomness available");
    if ((rc = db_prepare(d,
                         "INSERT INTO evidence(evidence_id, case_ref, sha256, source, key_ref, "
                         "note, captured_at, flags, created_at, inspection_ref) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?)",
                         &s, e)))
        return rc;
    db_bind_text(s, 1, evid);
    db_bind_int(s, 2, u->c.rowid);
    db_bind_text(s, 3, f->w.hex);
    db_bind_text(s, 4, key_role_name(u->who.role));
    db_bind_int(s, 5, u->who.id);
    db_bind_text(s, 6, u->note);
    db_bind_text(s, 7, u->captured_at[0] ? u->captured_at : NULL);
    json_t *flags = analyze_case_flags(f->meta, u->c.delivered_at);
    char *flags_text = flags ? json_dumps(flags, JSON_COMPACT) : NULL;
    json_decref(flags);
    db_bind_text(s, 8, flags_text ? flags_text : "[]");
    free(flags_text);
    db_bind_text(s, 9, now);
    if (u->inspection_rowid)
        db_bind_int(s, 10, u->inspection_rowid);
    else
        db_bind_text(s, 10, NULL);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) return rc;
    f->rowid = db_last_rowid(d);

    /* The same bytes already linked to another case: one blob, two links, a red flag. */
    if ((rc = db_prepare(d,
                         "INSERT OR IGNORE INTO matches(evidence_ref, other_ref, kind, distance) "
                         "SELECT ?, id, 'exact', 0 FROM evidence "
                         "WHERE sha256 = ? AND case_ref != ? AND id != ?",
                         &s, e)))
        return rc;
    db_bind_int(s, 1, f->rowid);
    db_bind_text(s, 2, f->w.hex);
    db_bind_int(s, 3, u->c.rowid);
    db_bind_int(s, 4, f->rowid);
    rc = db_exec_stmt(s, e);
    int exact = db_changes(d);
    db_finalize(s);
    if (rc) return rc;

    /* The same picture in other bytes (re-encoded, cropped, framed...): every earlier item of
     * another case that holds a matching image. */
    int near = 0;
    for (size_t i = 0; i < f->nhits; i++) {
        if ((rc = db_prepare(d,
                             "INSERT OR IGNORE INTO matches(evidence_ref, other_ref, kind, "
                             "distance, tier, region) SELECT ?, e.id, 'near', ?, ?, ? "
                             "FROM evidence e JOIN blobs b ON b.sha256 = e.sha256 "
                             "WHERE b.rowid = ? AND e.case_ref != ? AND e.id != ?",
                             &s, e)))
            return rc;
        const matcher_hit *h = &f->hits[i];
        char region[256];
        snprintf(region, sizeof region,
                 "{\"new\":[%.4f,%.4f,%.4f,%.4f],\"old\":[%.4f,%.4f,%.4f,%.4f],"
                 "\"mirrored\":%s}",
                 h->new_box[0], h->new_box[1], h->new_box[2], h->new_box[3], h->old_box[0],
                 h->old_box[1], h->old_box[2], h->old_box[3], h->mirrored ? "true" : "false");
        db_bind_int(s, 1, f->rowid);
        db_bind_int(s, 2, h->distance);
        db_bind_text(s, 3, h->tier);
        db_bind_text(s, 4, region);
        db_bind_int(s, 5, h->blob_rowid);
        db_bind_int(s, 6, u->c.rowid);
        db_bind_int(s, 7, f->rowid);
        rc = db_exec_stmt(s, e);
        near += db_changes(d);
        db_finalize(s);
        if (rc) return rc;
    }

    char detail[512];
    snprintf(detail, sizeof detail,
             "{\"case_id\":\"%s\",\"sha256\":\"%s\",\"bytes\":%llu,\"source\":\"%s\","
             "\"exact_matches\":%d,\"near_matches\":%d}",
             u->c.case_id, f->w.hex, (unsigned long long)f->w.size, key_role_name(u->who.role),
             exact, near);
    if ((rc = audit_append(d, who, "evidence.added", evid, detail, e))) return rc;
    *created = 1;
    return EX_OK;
}

/* Photos an inspection may attach: this case's, not yet in an inspection, taken by the
 * warehouse (or an admin), never the buyer's own evidence. */
#define LINKABLE                                                                                   \
    "evidence_id = ? AND case_ref = ? AND inspection_ref IS NULL "                                 \
    "AND source IN ('warehouse', 'admin')"

/* Refuses an inspection naming photos it may not attach, before anything is stored (the
 * transaction checks again). */
static ex_rc check_links(intake *u, ex_error *e)
{
    ex_rc rc = EX_OK;
    db_lock(u->a->db);
    for (size_t i = 0; !rc && i < u->nlink; i++) {
        db_stmt *s = NULL;
        if ((rc = db_prepare(u->a->db, "SELECT 1 FROM evidence WHERE " LINKABLE, &s, e))) break;
        db_bind_text(s, 1, u->link_ids[i]);
        db_bind_int(s, 2, u->c.rowid);
        int r = db_step(s, e);
        db_finalize(s);
        if (r < 0)
            rc = EX_EDB;
        else if (r == DB_DONE)
            rc = ex_fail(e, EX_EINVAL, "invalid_field",
                         "field 'evidence_id': '%.40s' is not a warehouse photo of this case that "
                         "is free to attach",
                         u->link_ids[i]);
    }
    db_unlock(u->a->db);
    return rc;
}

/* Records the inspection inside the caller's transaction. */
static ex_rc insert_inspection(intake *u, const char *now, const char *who, ex_error *e)
{
    db_stmt *s = NULL;
    ex_rc rc;
    if (util_random_id("insp_", 12, u->inspection_id, sizeof u->inspection_id))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no randomness available");
    if ((rc = db_prepare(u->a->db,
                         "INSERT INTO inspections(inspection_id, case_ref, grade, notes, key_ref, "
                         "created_at) VALUES (?,?,?,?,?,?)",
                         &s, e)))
        return rc;
    db_bind_text(s, 1, u->inspection_id);
    db_bind_int(s, 2, u->c.rowid);
    db_bind_text(s, 3, u->grade);
    db_bind_text(s, 4, u->notes ? u->notes : "");
    db_bind_int(s, 5, u->who.id);
    db_bind_text(s, 6, now);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) return rc;
    u->inspection_rowid = db_last_rowid(u->a->db);
    /* Photos uploaded one by one before the form was submitted join the inspection. */
    for (size_t i = 0; i < u->nlink; i++) {
        if ((rc = db_prepare(u->a->db, "UPDATE evidence SET inspection_ref = ? WHERE " LINKABLE, &s,
                             e)))
            return rc;
        db_bind_int(s, 1, u->inspection_rowid);
        db_bind_text(s, 2, u->link_ids[i]);
        db_bind_int(s, 3, u->c.rowid);
        rc = db_exec_stmt(s, e);
        int changed = db_changes(u->a->db);
        db_finalize(s);
        if (rc) return rc;
        if (!changed)
            return ex_fail(e, EX_EINVAL, "invalid_field",
                           "field 'evidence_id': '%.40s' is not a warehouse photo of this case "
                           "that is free to attach",
                           u->link_ids[i]);
    }
    json_t *detail = json_pack("{s:s, s:s, s:s, s:i}", "case_id", u->c.case_id, "grade", u->grade,
                               "notes", u->notes ? u->notes : "", "files", (int)u->n);
    char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(detail);
    rc = text ? audit_append(u->a->db, who, "inspection.recorded", u->inspection_id, text, e)
              : ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    free(text);
    return rc;
}

ex_rc intake_commit(intake *u, json_t **items, int *created, json_t **inspection, ex_error *e)
{
    ex_rc rc = EX_OK;
    char now[UTIL_TIME_LEN], who[64];
    if (u->inspection && !u->have_grade)
        return ex_fail(e, EX_EINVAL, "missing_field",
                       "field 'grade' is required: as_new, opened, used, damaged, wrong_item, "
                       "missing_parts or not_received");
    if (u->n == 0 && !u->inspection)
        return ex_fail(e, EX_EINVAL, "no_file",
                       "the upload has no file: send multipart parts named 'file' or a raw "
                       "image body");
    for (size_t i = 0; i < u->n; i++) {
        staged *f = &u->files[i];
        if (!f->finished)
            return ex_fail(e, EX_EINTERNAL, "internal_error", "file %zu incomplete", i + 1);
        f->type = image_sniff(f->w.head, f->w.head_len);
        if (f->type == IMAGE_UNKNOWN)
            return ex_fail(e, EX_EMEDIA, "unsupported_media_type",
                           "file %zu of %zu is not a JPEG, PNG, WebP, HEIC or AVIF image", i + 1,
                           u->n);
    }
    if ((rc = check_links(u, e))) return rc;
    for (size_t i = 0; i < u->n; i++)
        if ((rc = inspect_file(u, &u->files[i], i, e))) return rc;
    /* Everything the client could get wrong has been checked: only now does anything reach
     * the blob store. */
    for (size_t i = 0; i < u->n; i++) {
        staged *f = &u->files[i];
        if ((rc = blob_writer_commit(&u->a->bs, &f->w, e))) return rc;
        if (f->analyzed && (rc = analysis_store(u->a, &f->an, e))) return rc;
    }

    util_time_now(now);
    cases_actor(&u->who, who, sizeof who);
    int any_new = 0;
    int reuse = u->a->matcher != NULL && u->n > 0;
    if (reuse) pthread_mutex_lock(&reuse_lock);
    for (size_t i = 0; reuse && !rc && i < u->n; i++)
        rc = find_matches(u, &u->files[i], e);
    if (rc) {
        if (reuse) pthread_mutex_unlock(&reuse_lock);
        return rc;
    }
    db_lock(u->a->db);
    if (!(rc = db_begin(u->a->db, e))) {
        if (u->inspection) {
            rc = insert_inspection(u, now, who, e);
            any_new = 1;
        }
        for (size_t i = 0; !rc && i < u->n; i++)
            rc = link_file(u, &u->files[i], now, who, &any_new, e);
        if (rc)
            db_rollback(u->a->db);
        else
            rc = db_commit(u->a->db, e);
    }
    db_unlock(u->a->db);
    /* Committed: later uploads can match these from now on (still under reuse_lock, so none
     * can search in between). A failure here only delays that until the next start, which
     * rebuilds the index from the database. */
    for (size_t i = 0; reuse && !rc && i < u->n; i++) {
        staged *f = &u->files[i];
        ex_error ie;
        if (f->sig_stored && matcher_add(u->a->matcher, blob_rowid(u, f->w.hex), f->sig, &ie))
            log_event("warn", "match_index_add", "sha256=%s code=%s", f->w.hex, ie.code);
    }
    if (reuse) pthread_mutex_unlock(&reuse_lock);
    if (rc) return rc;

    json_t *arr = json_array();
    if (!arr) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    for (size_t i = 0; i < u->n; i++) {
        /* A file sent twice in one request is one item: list it once. */
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            dup |= u->files[j].rowid == u->files[i].rowid;
        if (dup) continue;
        json_t *item = NULL;
        if ((rc = evidence_item_json(u->a, u->files[i].rowid, &u->who, 0, &item, e))) {
            json_decref(arr);
            return rc;
        }
        json_array_append_new(arr, item);
    }
    if (u->inspection && inspection) {
        /* What the inspection really holds (a file that was already the buyer's stays so). */
        json_t *ids = json_array();
        db_stmt *s = NULL;
        db_lock(u->a->db);
        if (db_prepare(u->a->db,
                       "SELECT evidence_id FROM evidence WHERE inspection_ref = ? ORDER BY id", &s,
                       NULL) == EX_OK) {
            db_bind_int(s, 1, u->inspection_rowid);
            while (db_step(s, NULL) == DB_ROW)
                json_array_append_new(ids, json_string(db_col_text(s, 0)));
        }
        db_finalize(s);
        db_unlock(u->a->db);
        *inspection = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "inspection_id", u->inspection_id,
                                "case_id", u->c.case_id, "grade", u->grade, "notes",
                                u->notes ? u->notes : "", "created_at", now, "evidence_ids", ids);
    }
    *items = arr;
    *created = any_new;
    return EX_OK;
}
