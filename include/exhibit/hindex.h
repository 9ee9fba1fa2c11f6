/* hindex.h - in-memory near-duplicate index for 256-bit PDQ hashes (multi-index hashing).
 *
 * Finds every stored hash within Hamming distance r <= 31 of a query without scanning them all
 * (Norouzi, Punjani, Fleet, "Fast search in Hamming space with multi-index hashing", 2012).
 *
 * Layout. Each hash is stored once in a flat array (32 bytes + 8-byte id per entry). The 256
 * bits are cut into 16 disjoint chunks of 16 bits (chunk k = bytes 2k and 2k+1); table k maps
 * each 16-bit value to the entries whose chunk k has that value. A table is a compact CSR array
 * (65537 offsets + one uint32 entry index per entry, ascending within a bucket) plus a small
 * "delta" of recent additions chained per bucket. When the delta reaches 1/8 of the compact part
 * (at least 4096 entries) it is merged in place (no second copy of the tables), so a loop of
 * hindex_add stays O(1) amortised and the memory stays ~104 bytes per entry + a fixed 12 MB
 * (10 million entries: ~1.0 GB). Start-up: hindex_reserve, hindex_add_many, hindex_compact.
 *
 * Why the search is exact. Let d_k be the number of differing bits in chunk k between a stored
 * hash h and the query q, so d(h, q) = d_0 + ... + d_15. Pick per-table probe radii
 * t_k in {-1, 0, 1} (-1 = skip the table, 0 = probe q's own bucket, 1 = that bucket and its 16
 * one-bit neighbours) with sum_k (t_k + 1) >= r + 1. If d(h, q) <= r and h were missed, then
 * d_k >= t_k + 1 in every table, so d(h, q) >= sum_k (t_k + 1) >= r + 1 > r: a contradiction.
 * Hence every h within r lands in a probed bucket, and each candidate is then checked with its
 * full 256-bit distance, so the result is exactly the brute-force answer. With 16 tables the sum
 * reaches at most 32, which is why r is capped at 31. For r = 31 every table is probed at
 * radius 1 (16 x 17 buckets); for r <= 15 at most r + 1 exact buckets suffice (r = 0: one). For
 * r < 31 the query chooses the t_k that minimise the number of candidates to check, using the
 * actual bucket sizes, which keeps skewed data (many copies of one photo) cheap.
 *
 * Cost. With N uniformly random hashes a radius-31 query checks about 272 * N / 65536 candidates
 * (41,000 for N = 10 million, ~1 ms on one core); each is one random 32-byte read. Entries still
 * in the delta cost a dependent read more each (up to ~+0.7 ms at 10 million just before a
 * merge). Real PDQ hashes are less uniform, so buckets are uneven and queries that fall into
 * popular buckets cost more: the cost follows the size of the 272 probed buckets.
 *
 * Threads: any number of concurrent queries; adds take an internal write lock (writer-preferring,
 * so a stream of queries cannot starve an upload). A merge runs inside the add that triggers it
 * and holds the write lock for O(N): 0.25-0.45 s at 10 million entries, queries wait.
 */
#ifndef EXHIBIT_HINDEX_H
#define EXHIBIT_HINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

#define HINDEX_HASH_BYTES 32
#define HINDEX_MAX_RADIUS 31
/* Entries are addressed by uint32 indexes; one value is reserved as a sentinel. */
#define HINDEX_MAX_ENTRIES ((size_t)UINT32_MAX - 1)

typedef struct hindex hindex;

typedef struct hindex_hit {
    uint64_t id;  /* the caller's key given to hindex_add */
    int distance; /* Hamming distance 0..256 of the closest stored hash with this id */
} hindex_hit;

/* An empty index, or NULL when out of memory. Free with hindex_free. */
hindex *hindex_new(void);

/* Frees the index and everything it holds; NULL is a no-op. No query or add may be running. */
void hindex_free(hindex *ix);

/* Makes room for `entries` entries in total, so loading a known number of rows neither grows
 * the flat array nor leaves growth slack. Optional. EX_ETOOBIG over HINDEX_MAX_ENTRIES,
 * EX_ENOMEM when the memory is not available (the index is unchanged either way). */
ex_rc hindex_reserve(hindex *ix, size_t entries, ex_error *e) EX_MUST_CHECK;

/* Adds one (hash, id) pair; the index copies the hash. The same id may be added with several
 * hashes (dihedral variants, regions of one photo) and the same hash with several ids.
 * EX_EINVAL for NULL arguments, EX_ETOOBIG when the index holds HINDEX_MAX_ENTRIES, EX_ENOMEM
 * when memory ran out; on any error the index is unchanged. */
ex_rc hindex_add(hindex *ix, const uint8_t hash[HINDEX_HASH_BYTES], uint64_t id,
                 ex_error *e) EX_MUST_CHECK;

/* Adds `count` pairs (hashes[i], ids[i]) under one lock: the fast path for loading at
 * start-up (reserve, then batches of ~1M, or everything in one call). Merges like hindex_add,
 * so small batches stay cheap too. All or nothing: on EX_ENOMEM / EX_ETOOBIG / EX_EINVAL (NULL
 * arrays with count > 0) none of them is added. */
ex_rc hindex_add_many(hindex *ix, const uint8_t (*hashes)[HINDEX_HASH_BYTES], const uint64_t *ids,
                      size_t count, ex_error *e) EX_MUST_CHECK;

/* Merges pending additions into the compact tables now (queries are then fastest). Optional:
 * adds merge by themselves. EX_ENOMEM leaves the index as it was (still correct). */
ex_rc hindex_compact(hindex *ix, ex_error *e) EX_MUST_CHECK;

/* Every id that has a stored hash within `radius` (0..HINDEX_MAX_RADIUS) of q, each id once
 * with its smallest distance, ordered by distance then id. At most `max` hits are written to
 * out (the closest ones); *n is set to the number written. out may be NULL when max is 0.
 * EX_EINVAL for a radius outside 0..31 or NULL arguments, EX_ENOMEM when scratch memory for
 * the hits could not be allocated, EX_EBUSY when the system refused another reader lock;
 * out and *n are untouched on error. */
ex_rc hindex_query(const hindex *ix, const uint8_t q[HINDEX_HASH_BYTES], int radius,
                   hindex_hit *out, size_t max, size_t *n, ex_error *e) EX_MUST_CHECK;

/* Same contract and answer as hindex_query, found by scanning every stored hash (O(N)). The
 * reference the benchmark and tests compare the index with; also accepts radius 0..256. */
ex_rc hindex_scan(const hindex *ix, const uint8_t q[HINDEX_HASH_BYTES], int radius, hindex_hit *out,
                  size_t max, size_t *n, ex_error *e) EX_MUST_CHECK;

/* Number of stored (hash, id) entries. */
size_t hindex_size(const hindex *ix);

/* Bytes the index has allocated (flat array, tables, delta, fixed parts), including capacity
 * reserved but not yet used. */
size_t hindex_memory(const hindex *ix);

#endif
