/* matcher.c - reuse detection over all stored images (see matcher.h). */
#include "exhibit/matcher.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/hindex.h"
#include "exhibit/log.h"
#include "exhibit/wordindex.h"

/* PDQ candidates verified per query: the closest. Bounds the work a flood of near-identical
 * stored images (a seller's catalogue) can cause. */
#define MAX_PDQ_CANDIDATES (MATCHER_MAX_CANDIDATES - MATCHER_SHORTLIST)
#define MIN_COMMON_WORDS 5 /* fewer shared words cannot make FT_MIN_INLIERS agreeing pairs */

struct matcher {
    hindex *pdq;
    widx *words;
    atomic_size_t images;
};

static ex_rc add_sig(matcher *m, int64_t rowid, const reuse_sig *sig, ex_error *e)
{
    uint8_t keys[REUSE_MAX_KEYS][32];
    uint64_t ids[REUSE_MAX_KEYS];
    uint32_t *words = malloc(2 * FT_MAX_FEATS * sizeof *words);
    if (!words) return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot grow the match index");
    size_t nk = reuse_pdq_keys(sig, 0, keys, REUSE_MAX_KEYS);
    size_t nw = reuse_words(sig, 0, words, 2 * FT_MAX_FEATS);
    for (size_t i = 0; i < nk; i++)
        ids[i] = (uint64_t)rowid;
    ex_rc rc = nk ? hindex_add_many(m->pdq, (const uint8_t(*)[32])keys, ids, nk, e) : EX_OK;
    if (!rc && nw) rc = widx_add(m->words, (uint64_t)rowid, words, nw, e);
    if (!rc) atomic_fetch_add(&m->images, 1);
    free(words);
    return rc;
}

ex_rc matcher_new(matcher **out, ex_error *e)
{
    matcher *m = calloc(1, sizeof *m);
    if (!m || !(m->pdq = hindex_new()) || !(m->words = widx_new(FT_WORDS))) {
        matcher_free(m);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot allocate the match index");
    }
    *out = m;
    return EX_OK;
}

ex_rc matcher_open(db *d, matcher **out, size_t *loaded, size_t *stale, ex_error *e)
{
    matcher *m = NULL;
    ex_rc rc = matcher_new(&m, e);
    if (rc) return rc;
    db_stmt *s = NULL;
    size_t old = 0;
    db_lock(d);
    rc =
        db_prepare(d, "SELECT rowid, rsig FROM blobs WHERE meta IS NOT NULL ORDER BY rowid", &s, e);
    if (!rc) {
        int r;
        while (!rc && (r = db_step(s, e)) == DB_ROW) {
            int len = 0;
            const void *blob = db_col_blob(s, 1, &len);
            reuse_sig *sig = NULL;
            /* An old or unreadable row must not stop the service from starting. */
            if (!blob || reuse_sig_parse(blob, (size_t)len, &sig, NULL) != EX_OK) {
                old++;
                continue;
            }
            rc = add_sig(m, db_col_int(s, 0), sig, e);
            reuse_sig_free(sig);
        }
        if (!rc && r < 0) rc = EX_EDB;
    }
    db_finalize(s);
    db_unlock(d);
    if (!rc) rc = hindex_compact(m->pdq, e);
    if (rc) {
        matcher_free(m);
        return rc;
    }
    if (old) log_event("warn", "match_index", "signatures_to_reindex=%zu", old);
    if (loaded) *loaded = atomic_load(&m->images);
    if (stale) *stale = old;
    *out = m;
    return EX_OK;
}

void matcher_free(matcher *m)
{
    if (!m) return;
    hindex_free(m->pdq);
    widx_free(m->words);
    free(m);
}

ex_rc matcher_add(matcher *m, int64_t blob_rowid, const reuse_sig *sig, ex_error *e)
{
    return add_sig(m, blob_rowid, sig, e);
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

/* Loads a stored signature; NULL when missing, old or unreadable. */
static reuse_sig *load_sig(db *d, int64_t rowid)
{
    db_stmt *s = NULL;
    reuse_sig *sig = NULL;
    db_lock(d);
    if (db_prepare(d, "SELECT rsig FROM blobs WHERE rowid = ?", &s, NULL) == EX_OK) {
        db_bind_int(s, 1, rowid);
        if (db_step(s, NULL) == DB_ROW) {
            int len = 0;
            const void *blob = db_col_blob(s, 0, &len);
            if (blob && reuse_sig_parse(blob, (size_t)len, &sig, NULL) != EX_OK) sig = NULL;
        }
    }
    db_finalize(s);
    db_unlock(d);
    return sig;
}

/* Adds id to the candidate list once. */
static void candidate(uint64_t *cand, size_t *n, size_t cap, uint64_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (cand[i] == id) return;
    if (*n < cap) cand[(*n)++] = id;
}

ex_rc matcher_candidates(matcher *m, const reuse_sig *sig, int64_t self_rowid, uint64_t *cand,
                         size_t *ncand_out, ex_error *e)
{
    uint8_t keys[REUSE_MAX_KEYS][32];
    size_t nkeys = reuse_pdq_keys(sig, 1, keys, REUSE_MAX_KEYS);
    hindex_hit *pdq = malloc(MAX_PDQ_CANDIDATES * sizeof *pdq);
    hindex_hit *tmp = malloc(MAX_PDQ_CANDIDATES * sizeof *tmp);
    uint32_t *words = malloc(2 * FT_MAX_FEATS * sizeof *words);
    widx_hit short_list[MATCHER_SHORTLIST];
    size_t npdq = 0, ncand = 0;
    ex_rc rc = EX_OK;
    if (!pdq || !tmp || !words) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    /* PDQ tier: each stored image once, at its smallest distance to any turn of the query. */
    for (size_t k = 0; k < nkeys && !rc; k++) {
        size_t got = 0;
        if ((rc =
                 hindex_query(m->pdq, keys[k], REUSE_PDQ_RADIUS, tmp, MAX_PDQ_CANDIDATES, &got, e)))
            break;
        for (size_t i = 0; i < got; i++) {
            if ((int64_t)tmp[i].id == self_rowid) continue;
            size_t j = 0;
            while (j < npdq && pdq[j].id != tmp[i].id)
                j++;
            if (j < npdq) {
                if (tmp[i].distance < pdq[j].distance) pdq[j].distance = tmp[i].distance;
            } else if (npdq < MAX_PDQ_CANDIDATES) {
                pdq[npdq++] = tmp[i];
            } else {
                /* Full: replace the farthest when this one is closer (keep the closest). */
                size_t far = 0;
                for (size_t x = 1; x < npdq; x++)
                    if (pdq[x].distance > pdq[far].distance) far = x;
                if (tmp[i].distance < pdq[far].distance) pdq[far] = tmp[i];
            }
        }
    }
    if (rc) goto done;
    qsort(pdq, npdq, sizeof *pdq, by_distance);
    for (size_t i = 0; i < npdq; i++)
        candidate(cand, &ncand, MATCHER_MAX_CANDIDATES, pdq[i].id);
    /* Feature tier: the images sharing the most (idf-weighted) visual words. */
    size_t nw = reuse_words(sig, 1, words, 2 * FT_MAX_FEATS);
    int got = nw ? widx_query(m->words, words, nw, (uint64_t)(self_rowid > 0 ? self_rowid : 0),
                              MIN_COMMON_WORDS, short_list, MATCHER_SHORTLIST)
                 : 0;
    if (got < 0) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    for (int i = 0; i < got; i++)
        candidate(cand, &ncand, MATCHER_MAX_CANDIDATES, short_list[i].id);
    *ncand_out = ncand;
done:
    free(pdq);
    free(tmp);
    free(words);
    return rc;
}

ex_rc matcher_find(matcher *m, db *d, const reuse_sig *sig, int64_t self_rowid, matcher_hit *out,
                   size_t max, size_t *n, ex_error *e)
{
    uint64_t cand[MATCHER_MAX_CANDIDATES];
    size_t ncand = 0, found = 0;
    ex_rc rc = matcher_candidates(m, sig, self_rowid, cand, &ncand, e);
    if (rc) return rc;
    for (size_t i = 0; i < ncand && found < max; i++) {
        reuse_sig *other = load_sig(d, (int64_t)cand[i]);
        reuse_result r;
        if (other) {
            reuse_match(sig, other, &r);
            if (r.match) {
                matcher_hit *h = &out[found++];
                h->blob_rowid = (int64_t)cand[i];
                h->distance = r.distance;
                h->tier = r.tier;
                h->mirrored = r.ft.mirrored;
                if (r.ft.match) {
                    memcpy(h->new_box, r.ft.q_box, sizeof h->new_box);
                    memcpy(h->old_box, r.ft.c_box, sizeof h->old_box);
                } else {
                    static const double whole[4] = {0, 0, 1, 1};
                    memcpy(h->new_box, whole, sizeof whole);
                    memcpy(h->old_box, whole, sizeof whole);
                }
            }
        }
        reuse_sig_free(other);
    }
    qsort(out, found, sizeof *out, hit_order);
    *n = found;
    return EX_OK;
}

size_t matcher_images(const matcher *m)
{
    return atomic_load(&((matcher *)m)->images);
}

size_t matcher_memory(const matcher *m)
{
    return hindex_memory(m->pdq) + widx_memory(m->words);
}
