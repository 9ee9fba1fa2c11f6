/* reindex.c - recompute stale reuse signatures from the originals (see reindex.h). */
#include "exhibit/reindex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/analyze.h"
#include "exhibit/log.h"
#include "exhibit/matcher.h"
#include "exhibit/reuse.h"

/* Rows whose signature does not parse as the current version, in rowid order. */
static ex_rc stale_rows(app *a, int64_t **rows, size_t *n, ex_error *e)
{
    db_stmt *s = NULL;
    size_t cap = 256, k = 0;
    int64_t *v = malloc(cap * sizeof *v);
    if (!v) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    db_lock(a->db);
    ex_rc rc = db_prepare(a->db,
                          "SELECT rowid, rsig FROM blobs WHERE meta IS NOT NULL "
                          "ORDER BY rowid",
                          &s, e);
    int r = 0;
    while (!rc && (r = db_step(s, e)) == DB_ROW) {
        int len = 0;
        const void *blob = db_col_blob(s, 1, &len);
        reuse_sig *sig = NULL;
        if (blob && reuse_sig_parse(blob, (size_t)len, &sig, NULL) == EX_OK) {
            reuse_sig_free(sig);
            continue;
        }
        if (k == cap) {
            int64_t *g = realloc(v, (cap *= 2) * sizeof *v);
            if (!g) {
                rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
                break;
            }
            v = g;
        }
        v[k++] = db_col_int(s, 0);
    }
    if (!rc && r < 0) rc = EX_EDB;
    db_finalize(s);
    db_unlock(a->db);
    if (rc) {
        free(v);
        return rc;
    }
    *rows = v;
    *n = k;
    return EX_OK;
}

/* The stored signature of a row, when it is current (another run may have written it). */
static reuse_sig *current_sig(app *a, int64_t rowid, char sha[65])
{
    db_stmt *s = NULL;
    reuse_sig *sig = NULL;
    sha[0] = 0;
    db_lock(a->db);
    if (db_prepare(a->db, "SELECT sha256, rsig FROM blobs WHERE rowid = ?", &s, NULL) == EX_OK) {
        db_bind_int(s, 1, rowid);
        if (db_step(s, NULL) == DB_ROW) {
            const char *h = db_col_text(s, 0);
            if (h && strlen(h) == 64) memcpy(sha, h, 65);
            int len = 0;
            const void *blob = db_col_blob(s, 1, &len);
            if (blob && reuse_sig_parse(blob, (size_t)len, &sig, NULL) != EX_OK) sig = NULL;
        }
    }
    db_finalize(s);
    db_unlock(a->db);
    return sig;
}

static ex_rc store_sig(app *a, int64_t rowid, const reuse_sig *sig, ex_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    ex_rc rc = reuse_sig_serialize(sig, &buf, &len, e);
    if (rc) return rc;
    db_stmt *s = NULL;
    db_lock(a->db);
    if (!(rc = db_prepare(a->db, "UPDATE blobs SET rsig = ? WHERE rowid = ?", &s, e))) {
        db_bind_blob(s, 1, buf, (int)len);
        db_bind_int(s, 2, rowid);
        rc = db_exec_stmt(s, e);
    }
    db_finalize(s);
    db_unlock(a->db);
    free(buf);
    return rc;
}

ex_rc reindex_run(app *a, struct matcher *m, volatile int *stop,
                  void (*progress)(const reindex_stats *s, void *arg), void *arg,
                  reindex_stats *out, ex_error *e)
{
    int64_t *rows = NULL;
    size_t n = 0;
    reindex_stats st = {0};
    ex_rc rc = stale_rows(a, &rows, &n, e);
    if (rc) return rc;
    st.total = n;
    for (size_t i = 0; i < n && !rc && !(stop && *stop); i++) {
        char sha[65], path[1024];
        reuse_sig *sig = current_sig(a, rows[i], sha);
        if (!sig && sha[0]) {
            analysis an = {0};
            ex_error ae = {{0}, {0}};
            blobstore_path(&a->bs, sha, path, sizeof path);
            if (analyze_file(a, path, &an, &ae) == EX_OK) {
                rc = store_sig(a, rows[i], an.sig, e);
                if (!rc) sig = an.sig, an.sig = NULL;
            } else {
                log_event("warn", "reindex_failed", "sha256=%s code=%s", sha, ae.code);
            }
            analysis_release(&an);
        }
        if (sig) {
            ex_error me;
            if (m && matcher_add(m, rows[i], sig, &me))
                log_event("warn", "match_index_add", "sha256=%s code=%s", sha, me.code);
            st.done++;
        } else if (!rc) {
            st.failed++;
        }
        reuse_sig_free(sig);
        if (progress) progress(&st, arg);
    }
    free(rows);
    if (out) *out = st;
    return rc;
}
