/* matcher.h - finds earlier images that are the same picture as a new one (reuse detection).
 *
 * Holds every stored image's index keys (neardup.h) in one in-memory multi-index hash
 * (hindex.h), keyed by the blob's database rowid: built from the database at start, extended
 * after each committed upload. A query takes the new image's keys to the index for candidates
 * within ND_INDEX_RADIUS, loads each candidate's stored signature and keeps those nd_match
 * accepts, closest first. Thread-safe (the index has its own lock; database reads take
 * db_lock briefly).
 */
#ifndef EXHIBIT_MATCHER_H
#define EXHIBIT_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/db.h"
#include "exhibit/err.h"
#include "exhibit/neardup.h"

typedef struct matcher matcher;

typedef struct matcher_hit {
    int64_t blob_rowid;
    int distance;
} matcher_hit;

/* Loads every stored signature; *loaded (when non-NULL) receives the number of images. */
ex_rc matcher_open(db *d, matcher **out, size_t *loaded, ex_error *e) EX_MUST_CHECK;
void matcher_free(matcher *m);

/* Adds a committed image. */
ex_rc matcher_add(matcher *m, int64_t blob_rowid, const nd_sig *sig, ex_error *e) EX_MUST_CHECK;

/* Images that nd_match accepts, excluding self_rowid (0: none), closest first, at most max. */
ex_rc matcher_find(matcher *m, db *d, const nd_sig *sig, int64_t self_rowid, matcher_hit *out,
                   size_t max, size_t *n, ex_error *e) EX_MUST_CHECK;

/* Number of images and index memory, for logs and benchmarks. */
size_t matcher_images(const matcher *m);
size_t matcher_memory(const matcher *m);

#endif
