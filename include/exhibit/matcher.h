/* matcher.h - finds earlier images that are the same picture as a new one (reuse detection).
 *
 * Holds every stored image in two in-memory indexes keyed by the blob's database rowid: its
 * whole-image PDQ in a multi-index hash (hindex.h) and its visual words in an inverted file
 * (wordindex.h). Built from the database at start (rows whose signature is of another version
 * are skipped and counted: `exhibit reindex` recomputes them), extended after each committed
 * upload. A query shortlists the images within REUSE_PDQ_RADIUS of any of the new image's 8
 * PDQ turns (closest first) and the MATCHER_SHORTLIST images sharing the most visual words
 * (highest tf-idf score first), loads each candidate's stored signature and keeps those
 * reuse_match accepts, closest first. Thread-safe (the indexes have their own locks; database
 * reads take db_lock briefly).
 */
#ifndef EXHIBIT_MATCHER_H
#define EXHIBIT_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/db.h"
#include "exhibit/err.h"
#include "exhibit/reuse.h"

#define MATCHER_SHORTLIST 32

typedef struct matcher matcher;

typedef struct matcher_hit {
    int64_t blob_rowid;
    int distance;
    const char *tier;  /* "pdq" or "features" (static) */
    int mirrored;      /* the new image is the candidate mirrored */
    double new_box[4]; /* where the two overlap, fractions of each image: x0 y0 x1 y1 */
    double old_box[4]; /* (features tier only; the whole image for the PDQ tier) */
} matcher_hit;

/* An empty index (for tools and tests; the server uses matcher_open). */
ex_rc matcher_new(matcher **out, ex_error *e) EX_MUST_CHECK;

/* Loads every stored signature; *loaded (when non-NULL) receives the number of images and
 * *stale (when non-NULL) the number of rows whose signature needs `exhibit reindex`. */
ex_rc matcher_open(db *d, matcher **out, size_t *loaded, size_t *stale, ex_error *e) EX_MUST_CHECK;
void matcher_free(matcher *m);

/* Adds a committed image. */
ex_rc matcher_add(matcher *m, int64_t blob_rowid, const reuse_sig *sig, ex_error *e) EX_MUST_CHECK;

/* The shortlist alone: ids of the images within REUSE_PDQ_RADIUS of a turn of sig (closest
 * first) and of the MATCHER_SHORTLIST best word scores, each once, excluding self (0: none).
 * ids needs room for MATCHER_MAX_CANDIDATES. */
#define MATCHER_MAX_CANDIDATES (64 + MATCHER_SHORTLIST)
ex_rc matcher_candidates(matcher *m, const reuse_sig *sig, int64_t self, uint64_t *ids, size_t *n,
                         ex_error *e) EX_MUST_CHECK;

/* Images that reuse_match accepts, excluding self_rowid (0: none), closest first, at most max. */
ex_rc matcher_find(matcher *m, db *d, const reuse_sig *sig, int64_t self_rowid, matcher_hit *out,
                   size_t max, size_t *n, ex_error *e) EX_MUST_CHECK;

/* Number of images and index memory, for logs and benchmarks. */
size_t matcher_images(const matcher *m);
size_t matcher_memory(const matcher *m);

#endif
