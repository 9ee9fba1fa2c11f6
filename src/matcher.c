/* matcher.c - reuse detection over all stored images (see matcher.h). */
#include "exhibit/matcher.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/hindex.h"
#include "exhibit/log.h"

#define MAX_KEYS 64
/* Candidates verified per query: the closest by index distance. Bounds the work a flood of
 * near-identical stored images (a seller's catalogue) can cause. */
#define MAX_CANDIDATES 256

struct matcher {
    hindex *ix;
    atomic_size_t images;
};

static ex_rc add_keys(matcher *m, int64_t rowid, const nd_sig *sig, ex_error *e)
{
    uint8_t keys[MAX_KEYS][32];
    uint64_t ids[MAX_KEYS];
    size_t n = nd_sig_index_keys(sig, 0, keys, MAX_KEYS);
    for (size_t i = 0; i < n; i++) ids[i] = (uint64_t)rowid;
    ex_rc rc = n ? hindex_add_many(m->ix, (const uint8_t(*)[32])keys, ids, n, e) : EX_OK;
    if (!rc) atomic_fetch_add(&m->images, 1);
    return rc;
}

ex_rc matcher_open(db *d, matcher **out, size_t *loaded, ex_error *e)
{
    matcher *m = calloc(1, sizeof *m);
    if (!m || !(m->ix = hindex_new())) {
        free(m);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot allocate the match index");
    }
    db_stmt *s = NULL;
    ex_rc rc;
    size_t bad = 0;
    db_lock(d);
    rc = db_prepare(d, "SELECT rowid, nd_sig FROM blobs WHERE nd_sig IS NOT NULL ORDER BY rowid",
                    &s, e);
    if (!rc) {
        int r;
        while (!rc && (r = db_step(s, e)) == DB_ROW) {
            int len = 0;
            const void *blob = db_col_blob(s, 1, &len);
            nd_sig *sig = NULL;
            if (nd_sig_parse(blob, (size_t)len, &sig, NULL) != EX_OK) {
                bad++; /* an unreadable row must not stop the service from starting */
                continue;
            }
            rc = add_keys(m, db_col_int(s, 0), sig, e);
            nd_sig_free(sig);
        }
        if (!rc && r < 0) rc = EX_EDB;
    }
    db_finalize(s);
    db_unlock(d);
    if (!rc) rc = hindex_compact(m->ix, e);
    if (rc) {
        matcher_free(m);
        return rc;
    }
    if (bad) log_event("warn", "match_index", "unreadable_signatures=%zu", bad);
    if (loaded) *loaded = atomic_load(&m->images);
    *out = m;
    return EX_OK;
}

void matcher_free(matcher *m)
{
    if (!m) return;
    hindex_free(m->ix);
    free(m);
}

ex_rc matcher_add(matcher *m, int64_t blob_rowid, const nd_sig *sig, ex_error *e)
{
    return add_keys(m, blob_rowid, sig, e);
}

static int by_distance(const void *a, const void *b)
{
    const hindex_hit *x = a, *y = b;
    if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int hit_order(const void *a, const void *b)
{
    const matcher_hit *x = a, *y = b;
    if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return x->blob_rowid < y->blob_rowid ? -1 : x->blob_rowid > y->blob_rowid;
}

/* Loads a stored signature; NULL when missing or unreadable. */
static nd_sig *load_sig(db *d, int64_t rowid)
{
    db_stmt *s = NULL;
    nd_sig *sig = NULL;
    db_lock(d);
    if (db_prepare(d, "SELECT nd_sig FROM blobs WHERE rowid = ?", &s, NULL) == EX_OK) {
        db_bind_int(s, 1, rowid);
        if (db_step(s, NULL) == DB_ROW) {
            int len = 0;
            const void *blob = db_col_blob(s, 0, &len);
            if (blob && nd_sig_parse(blob, (size_t)len, &sig, NULL) != EX_OK) sig = NULL;
        }
    }
    db_finalize(s);
    db_unlock(d);
    return sig;
}

ex_rc matcher_find(matcher *m, db *d, const nd_sig *sig, int64_t self_rowid, matcher_hit *out,
                   size_t max, size_t *n, ex_error *e)
{
    uint8_t keys[MAX_KEYS][32];
    size_t nkeys = nd_sig_index_keys(sig, 1, keys, MAX_KEYS);
    hindex_hit *cand = malloc(MAX_CANDIDATES * sizeof *cand);
    hindex_hit *tmp = malloc(MAX_CANDIDATES * sizeof *tmp);
    size_t ncand = 0, found = 0;
    ex_rc rc = EX_OK;
    if (!cand || !tmp) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    /* Union of every key's candidates, each image once at its smallest index distance. */
    for (size_t k = 0; k < nkeys && !rc; k++) {
        size_t got = 0;
        if ((rc = hindex_query(m->ix, keys[k], ND_INDEX_RADIUS, tmp, MAX_CANDIDATES, &got, e)))
            break;
        for (size_t i = 0; i < got; i++) {
            if ((int64_t)tmp[i].id == self_rowid) continue;
            size_t j = 0;
            while (j < ncand && cand[j].id != tmp[i].id) j++;
            if (j < ncand) {
                if (tmp[i].distance < cand[j].distance) cand[j].distance = tmp[i].distance;
            } else if (ncand < MAX_CANDIDATES) {
                cand[ncand++] = tmp[i];
            }
        }
    }
    if (rc) goto done;
    qsort(cand, ncand, sizeof *cand, by_distance);
    for (size_t i = 0; i < ncand && found < max; i++) {
        nd_sig *other = load_sig(d, (int64_t)cand[i].id);
        int distance = 0;
        const char *why = NULL;
        if (other && nd_match(sig, other, &distance, &why)) {
            out[found].blob_rowid = (int64_t)cand[i].id;
            out[found].distance = distance;
            found++;
        }
        nd_sig_free(other);
    }
    qsort(out, found, sizeof *out, hit_order);
    *n = found;
done:
    free(cand);
    free(tmp);
    return rc;
}

size_t matcher_images(const matcher *m)
{
    return atomic_load(&((matcher *)m)->images);
}

size_t matcher_memory(const matcher *m)
{
    return hindex_memory(m->ix);
}
