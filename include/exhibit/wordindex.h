/* wordindex.h - the shortlist of the local-feature tier: an inverted file over visual words.
 *
 * Each image is the set of its features' visual words (features.h). For every word the index
 * keeps the images that have it (4 bytes a posting, ~300 postings an image); a query adds, for
 * each of its words, the word's idf^2 (idf = log(images / images with the word)) to every image
 * listed, and returns the images with the highest score normalised by the square roots of both
 * word counts (the cosine of binary tf-idf vectors). A crop that keeps a third of a photo still
 * shares a third of its words, which no unrelated photo does. Words found in more than 5% of a
 * large index say nothing and are skipped (at most a fixed share of the query's words).
 *
 * Threads: concurrent queries; adds and removals take a write lock. Ids are the caller's
 * (the database rowid of the blob); an id added twice is indexed twice, so callers add once.
 */
#ifndef EXHIBIT_WORDINDEX_H
#define EXHIBIT_WORDINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

typedef struct widx widx;

typedef struct widx_hit {
    uint64_t id;
    float score; /* 0..1, higher = more words in common */
} widx_hit;

widx *widx_new(size_t words);
void widx_free(widx *ix);

/* Adds image id with its words (any order, repeats allowed). Errors: EX_ENOMEM. */
EX_MUST_CHECK ex_rc widx_add(widx *ix, uint64_t id, const uint32_t *words, size_t n, ex_error *e);

/* Removes every image with this id from later answers (its postings stay until the process
 * restarts; removals are rare: an upload that failed after it was indexed). */
void widx_remove(widx *ix, uint64_t id);

/* The max best-scoring images (excluding id `self`; 0 = none) sharing at least min_common
 * words with the query, best first. Returns how many it wrote; -1 on allocation failure. */
int widx_query(widx *ix, const uint32_t *words, size_t n, uint64_t self, size_t min_common,
               widx_hit *out, size_t max);

size_t widx_images(widx *ix);
size_t widx_memory(widx *ix); /* bytes held, for benchmarks and logs */

#endif
