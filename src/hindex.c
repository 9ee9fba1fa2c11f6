/* hindex.c - multi-index hashing over 256-bit PDQ hashes; see include/exhibit/hindex.h for the
 * layout and the proof that a query finds exactly what a full scan finds.
 *
 * Limits: at most HINDEX_MAX_ENTRIES entries (uint32 entry indexes keep the tables at 4 bytes
 * per entry per table); radius <= 31 for indexed queries. No removal: the service only adds.
 */
#include "exhibit/hindex.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HX_TABLES 16
#define HX_BUCKETS 65536
#define HX_WORDS 4
/* Below this many pending entries a merge is not worth the O(N) pass. */
#define HX_DELTA_MIN 4096
/* Candidate-cost weights for choosing probe radii: visiting a bucket and following a delta
 * chain link each cost about one extra cache miss on top of reading the candidate's hash. */
#define HX_COST_PROBE 2
#define HX_COST_CHAIN 2
#define HX_LOCAL_CANDS 256

#if defined(__SANITIZE_ADDRESS__)
#define HX_MALLOC_ARRAYS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HX_MALLOC_ARRAYS 1
#endif
#endif

/* Hardware popcount is not in the x86-64 baseline Debian compiles for; without it each 64-bit
 * popcount is a call into libgcc. The scan loops are compiled twice and hindex_new picks the
 * POPCNT copy when the CPU has it. (Not target_clones: its ifunc resolver runs before the
 * sanitizer runtimes start and crashes TSan builds.) */
#if defined(__x86_64__) && defined(__GNUC__)
#define HX_POPCNT_COPY 1
#endif
#define HX_INLINE static inline __attribute__((always_inline))

/* Head and length of one bucket's delta chain, side by side so an add touches one cache line
 * per table rather than two. */
typedef struct hx_slot {
    uint32_t head; /* newest delta entry + 1, 0 = none */
    uint32_t len;
} hx_slot;

struct hindex {
    pthread_rwlock_t lock;
    const struct hx_scanner *scan; /* scan loops for this CPU */
    uint64_t *hash;                /* HX_WORDS words per entry */
    uint64_t *id;
    size_t n;        /* entries stored */
    size_t cap;      /* entries both hash and id have room for */
    size_t hash_cap; /* their own capacities: one can grow before the other fails */
    size_t id_cap;
    /* Entries [0, m) are in the CSR tables, [m, n) only in the delta chains. */
    size_t m;
    uint32_t *post[HX_TABLES]; /* CSR entry indexes, bucket b at [off[b], off[b+1]) */
    size_t post_cap[HX_TABLES];
    uint32_t *off;  /* HX_TABLES x (HX_BUCKETS + 1) */
    hx_slot *delta; /* HX_TABLES x HX_BUCKETS delta chain heads */
    uint32_t *next; /* (n - m) x HX_TABLES: older delta entry + 1 in the same bucket, 0 = none */
    size_t next_cap;
    size_t merge_at; /* pending entries that trigger a merge */
};

typedef struct hx_cand {
    uint32_t idx;
    int dist;
} hx_cand;

/* Candidates that passed the distance check, collected under the read lock. */
typedef struct hx_cands {
    hx_cand *v;
    size_t n, cap;
    hx_cand local[HX_LOCAL_CANDS];
} hx_cands;

/* ---- big arrays ---------------------------------------------------------------------------- */

/* The flat array and the tables are read at random by every query. Anonymous mappings are
 * page-aligned (a 32-byte hash never straddles two cache lines, unlike malloc's 16-byte
 * alignment), can ask for transparent huge pages (Debian's default is "madvise"; 4 KiB pages
 * make nearly every candidate a TLB miss), and mremap grows them without copying, so peak
 * memory is not doubled while growing. Sanitizer builds use malloc so ASan sees overruns. */
static void *hx_grow(void *p, size_t old_bytes, size_t new_bytes)
{
#ifdef HX_MALLOC_ARRAYS
    (void)old_bytes;
    return realloc(p, new_bytes);
#else
    void *q;
    if (p)
        q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
    else
        q = mmap(NULL, new_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) return NULL;
    (void)madvise(q, new_bytes, MADV_HUGEPAGE); /* advice only; fine if refused */
    return q;
#endif
}

static void hx_release(void *p, size_t bytes)
{
#ifdef HX_MALLOC_ARRAYS
    (void)bytes;
    free(p);
#else
    if (p) munmap(p, bytes);
#endif
}

/* ---- hashing helpers ----------------------------------------------------------------------- */

static inline void hx_load(uint64_t w[HX_WORDS], const uint8_t *bytes)
{
    memcpy(w, bytes, HINDEX_HASH_BYTES);
}

/* Chunk t is 16 consecutive bits of the stored words; any fixed partition works for the proof
 * as long as stored hashes and queries use the same one. */
static inline uint32_t hx_chunk(const uint64_t *w, int t)
{
    return (uint32_t)(w[t >> 2] >> ((t & 3) * 16)) & 0xFFFFu;
}

static inline int hx_dist(const uint64_t *a, const uint64_t *b)
{
    return __builtin_popcountll(a[0] ^ b[0]) + __builtin_popcountll(a[1] ^ b[1]) +
           __builtin_popcountll(a[2] ^ b[2]) + __builtin_popcountll(a[3] ^ b[3]);
}

/* Checks the entries listed in a CSR bucket; out has room for len. */
HX_INLINE size_t hx_scan_list_body(const uint64_t *hash, const uint32_t *list, size_t len,
                                   const uint64_t *q, int r, hx_cand *out)
{
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        /* The hashes are scattered over hundreds of MB: fetch a few entries ahead so several
         * cache misses are in flight at once. */
        if (i + 8 < len) __builtin_prefetch(hash + (size_t)list[i + 8] * HX_WORDS);
        uint32_t idx = list[i];
        int d = hx_dist(hash + (size_t)idx * HX_WORDS, q);
        if (d <= r) {
            out[k].idx = idx;
            out[k].dist = d;
            k++;
        }
    }
    return k;
}

/* Follows a delta chain (newest first); out has room for the chain's length. */
HX_INLINE size_t hx_scan_chain_body(const uint64_t *hash, const uint32_t *next, size_t m, int t,
                                    uint32_t link, const uint64_t *q, int r, hx_cand *out)
{
    size_t k = 0;
    while (link) {
        uint32_t idx = link - 1;
        int d = hx_dist(hash + (size_t)idx * HX_WORDS, q);
        if (d <= r) {
            out[k].idx = idx;
            out[k].dist = d;
            k++;
        }
        link = next[(idx - m) * HX_TABLES + (size_t)t];
    }
    return k;
}

/* Checks entries [from, to) in storage order; out has room for to - from. */
HX_INLINE size_t hx_scan_range_body(const uint64_t *hash, size_t from, size_t to, const uint64_t *q,
                                    int r, hx_cand *out)
{
    size_t k = 0;
    for (size_t i = from; i < to; i++) {
        int d = hx_dist(hash + i * HX_WORDS, q);
        if (d <= r) {
            out[k].idx = (uint32_t)i;
            out[k].dist = d;
            k++;
        }
    }
    return k;
}

typedef size_t hx_list_fn(const uint64_t *, const uint32_t *, size_t, const uint64_t *, int,
                          hx_cand *);
typedef size_t hx_chain_fn(const uint64_t *, const uint32_t *, size_t, int, uint32_t,
                           const uint64_t *, int, hx_cand *);
typedef size_t hx_range_fn(const uint64_t *, size_t, size_t, const uint64_t *, int, hx_cand *);

typedef struct hx_scanner {
    hx_list_fn *list;
    hx_chain_fn *chain;
    hx_range_fn *range;
} hx_scanner;

#define HX_SCANNER(suffix, attr)                                                                   \
    attr static size_t hx_scan_list_##suffix(const uint64_t *hash, const uint32_t *list,           \
                                             size_t len, const uint64_t *q, int r, hx_cand *out)   \
    {                                                                                              \
        return hx_scan_list_body(hash, list, len, q, r, out);                                      \
    }                                                                                              \
    attr static size_t hx_scan_chain_##suffix(const uint64_t *hash, const uint32_t *next,          \
                                              size_t m, int t, uint32_t link, const uint64_t *q,   \
                                              int r, hx_cand *out)                                 \
    {                                                                                              \
        return hx_scan_chain_body(hash, next, m, t, link, q, r, out);                              \
    }                                                                                              \
    attr static size_t hx_scan_range_##suffix(const uint64_t *hash, size_t from, size_t to,        \
                                              const uint64_t *q, int r, hx_cand *out)              \
    {                                                                                              \
        return hx_scan_range_body(hash, from, to, q, r, out);                                      \
    }                                                                                              \
    static const hx_scanner hx_scanner_##suffix = {hx_scan_list_##suffix, hx_scan_chain_##suffix,  \
                                                   hx_scan_range_##suffix};

HX_SCANNER(generic, )
#ifdef HX_POPCNT_COPY
HX_SCANNER(popcnt, __attribute__((target("popcnt"))))
#endif

static const hx_scanner *hx_scanner_pick(void)
{
#ifdef HX_POPCNT_COPY
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt")) return &hx_scanner_popcnt;
#endif
    return &hx_scanner_generic;
}

/* ---- candidates and results ---------------------------------------------------------------- */

static void hx_cands_init(hx_cands *c)
{
    c->v = c->local;
    c->n = 0;
    c->cap = HX_LOCAL_CANDS;
}

static void hx_cands_release(hx_cands *c)
{
    if (c->v != c->local) free(c->v);
}

/* Room for `extra` more candidates; false when out of memory. */
static bool hx_cands_room(hx_cands *c, size_t extra)
{
    if (c->cap - c->n >= extra) return true;
    size_t want = c->cap * 2;
    if (want < c->n + extra) want = c->n + extra;
    if (want > SIZE_MAX / sizeof *c->v) return false;
    hx_cand *v;
    if (c->v == c->local) {
        v = malloc(want * sizeof *v);
        if (v) memcpy(v, c->local, c->n * sizeof *v);
    } else {
        v = realloc(c->v, want * sizeof *v);
    }
    if (!v) return false;
    c->v = v;
    c->cap = want;
    return true;
}

static int hx_cmp_id(const void *a, const void *b)
{
    const hindex_hit *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->distance > y->distance) - (x->distance < y->distance);
}

static int hx_cmp_dist(const void *a, const void *b)
{
    const hindex_hit *x = a, *y = b;
    if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Turns candidates into the public answer: one hit per id (smallest distance), closest first.
 * Must run under the lock (reads ids); writes out/n only on success. */
static ex_rc hx_finish(const hindex *ix, const hx_cands *c, hindex_hit *out, size_t max, size_t *n,
                       ex_error *e)
{
    if (c->n == 0) {
        *n = 0;
        return EX_OK;
    }
    hindex_hit *h = malloc(c->n * sizeof *h);
    if (!h)
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory for %zu near-duplicate candidates",
                       c->n);
    for (size_t i = 0; i < c->n; i++) {
        h[i].id = ix->id[c->v[i].idx];
        h[i].distance = c->v[i].dist;
    }
    /* An id can own several entries (dihedral variants, regions). */
    qsort(h, c->n, sizeof *h, hx_cmp_id);
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (k == 0 || h[k - 1].id != h[i].id) h[k++] = h[i];
    qsort(h, k, sizeof *h, hx_cmp_dist);
    if (k > max) k = max;
    if (k) memcpy(out, h, k * sizeof *h);
    *n = k;
    free(h);
    return EX_OK;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

hindex *hindex_new(void)
{
    hindex *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    /* calloc of these large blocks maps zero pages lazily: an empty index costs little RSS. */
    ix->off = calloc((size_t)HX_TABLES * (HX_BUCKETS + 1), sizeof *ix->off);
    ix->delta = calloc((size_t)HX_TABLES * HX_BUCKETS, sizeof *ix->delta);
    pthread_rwlockattr_t attr;
    bool locked = false;
    if (pthread_rwlockattr_init(&attr) == 0) {
        /* glibc's default prefers readers: steady queries would starve hindex_add. */
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        locked = pthread_rwlock_init(&ix->lock, &attr) == 0;
        pthread_rwlockattr_destroy(&attr);
    }
    if (!ix->off || !ix->delta || !locked) {
        if (locked) pthread_rwlock_destroy(&ix->lock);
        free(ix->off);
        free(ix->delta);
        free(ix);
        return NULL;
    }
    ix->merge_at = HX_DELTA_MIN;
    ix->scan = hx_scanner_pick();
    return ix;
}

void hindex_free(hindex *ix)
{
    if (!ix) return;
    pthread_rwlock_destroy(&ix->lock);
    hx_release(ix->hash, ix->hash_cap * HX_WORDS * sizeof *ix->hash);
    hx_release(ix->id, ix->id_cap * sizeof *ix->id);
    for (int t = 0; t < HX_TABLES; t++)
        hx_release(ix->post[t], ix->post_cap[t] * sizeof *ix->post[t]);
    free(ix->off);
    free(ix->delta);
    free(ix->next);
    free(ix);
}

/* ---- growth and merging (write lock held) -------------------------------------------------- */

/* Room for `want` entries in the flat arrays. */
static ex_rc hx_reserve_flat(hindex *ix, size_t want, ex_error *e)
{
    if (want <= ix->cap) return EX_OK;
    if (want > HINDEX_MAX_ENTRIES)
        return ex_fail(e, EX_ETOOBIG, "hindex_full", "the hash index holds at most %zu entries",
                       HINDEX_MAX_ENTRIES);
    const size_t hb = HX_WORDS * sizeof *ix->hash, ib = sizeof *ix->id;
    if (ix->hash_cap < want) {
        uint64_t *h = hx_grow(ix->hash, ix->hash_cap * hb, want * hb);
        if (!h) goto nomem;
        ix->hash = h;
        ix->hash_cap = want;
    }
    if (ix->id_cap < want) {
        uint64_t *id = hx_grow(ix->id, ix->id_cap * ib, want * ib);
        if (!id) goto nomem;
        ix->id = id;
        ix->id_cap = want;
    }
    ix->cap = want;
    return EX_OK;
nomem:
    return ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory to grow the hash index to %zu entries",
                   want);
}

/* Room for `count` more entries, growing by at least 1.5x so adds stay amortised O(1); growing
 * copies nothing (mremap). */
static ex_rc hx_room(hindex *ix, size_t count, ex_error *e)
{
    if (count > HINDEX_MAX_ENTRIES - ix->n)
        return ex_fail(e, EX_ETOOBIG, "hindex_full", "the hash index holds at most %zu entries",
                       HINDEX_MAX_ENTRIES);
    size_t need = ix->n + count;
    if (need <= ix->cap) return EX_OK;
    size_t want = ix->cap < 1024 ? 1024 : ix->cap + ix->cap / 2;
    if (want > HINDEX_MAX_ENTRIES) want = HINDEX_MAX_ENTRIES;
    return hx_reserve_flat(ix, want > need ? want : need, e);
}

/* Room in the chain links for `pending` delta entries. */
static ex_rc hx_next_room(hindex *ix, size_t pending, ex_error *e)
{
    if (pending <= ix->next_cap) return EX_OK;
    size_t want = ix->next_cap ? ix->next_cap * 2 : 1024;
    if (want < pending) want = pending;
    uint32_t *nx = NULL;
    if (want <= SIZE_MAX / (HX_TABLES * sizeof *nx))
        nx = realloc(ix->next, want * HX_TABLES * sizeof *nx);
    if (!nx) return ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory to add hashes to the index");
    ix->next = nx;
    ix->next_cap = want;
    return EX_OK;
}

/* Puts stored entry i (>= m) at the head of its bucket's chain in every table. */
static void hx_link(hindex *ix, size_t i)
{
    const uint64_t *w = ix->hash + i * HX_WORDS;
    uint32_t *link = ix->next + (i - ix->m) * HX_TABLES;
    for (int t = 0; t < HX_TABLES; t++) {
        hx_slot *sl = &ix->delta[(size_t)t * HX_BUCKETS + hx_chunk(w, t)];
        link[t] = sl->head;
        sl->head = (uint32_t)(i + 1);
        sl->len++;
    }
}

/* Folds the delta [m, n) into the CSR tables in place: each table grows to n entries, buckets
 * are moved from the last to the first (new offsets are never below old ones, so a bucket only
 * moves into space already vacated), then the delta entries are scattered into the gaps in
 * ascending order. Everything that can fail is allocated before anything changes. */
static ex_rc hx_merge(hindex *ix, ex_error *e)
{
    const size_t m = ix->m, n = ix->n;
    if (m == n) return EX_OK;
    for (int t = 0; t < HX_TABLES; t++) {
        if (ix->post_cap[t] >= n) continue;
        uint32_t *p = hx_grow(ix->post[t], ix->post_cap[t] * sizeof *p, n * sizeof *p);
        if (!p)
            return ex_fail(e, EX_ENOMEM, "out_of_memory",
                           "no memory to index %zu hashes (%zu more)", n, n - m);
        ix->post[t] = p;
        ix->post_cap[t] = n;
    }
    uint32_t *cur = malloc(HX_BUCKETS * sizeof *cur);
    uint32_t *noff = malloc((HX_BUCKETS + 1) * sizeof *noff);
    if (!cur || !noff) {
        free(cur);
        free(noff);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory to index %zu hashes", n);
    }
    for (int t = 0; t < HX_TABLES; t++) {
        uint32_t *off = ix->off + (size_t)t * (HX_BUCKETS + 1);
        uint32_t *post = ix->post[t];
        memset(cur, 0, HX_BUCKETS * sizeof *cur);
        for (size_t i = m; i < n; i++)
            cur[hx_chunk(ix->hash + i * HX_WORDS, t)]++;
        noff[0] = 0;
        for (size_t b = 0; b < HX_BUCKETS; b++)
            noff[b + 1] = noff[b] + (off[b + 1] - off[b]) + cur[b];
        assert(noff[HX_BUCKETS] == n);
        for (size_t b = HX_BUCKETS; b-- > 0;) {
            uint32_t len = off[b + 1] - off[b];
            if (len && noff[b] != off[b])
                memmove(post + noff[b], post + off[b], len * sizeof *post);
            cur[b] = noff[b] + len;
        }
        for (size_t i = m; i < n; i++)
            post[cur[hx_chunk(ix->hash + i * HX_WORDS, t)]++] = (uint32_t)i;
        memcpy(off, noff, (HX_BUCKETS + 1) * sizeof *off);
    }
    free(cur);
    free(noff);
    ix->m = n;
    memset(ix->delta, 0, (size_t)HX_TABLES * HX_BUCKETS * sizeof *ix->delta);
    /* The chains are empty now; give their memory back rather than hold 64 bytes per entry
     * of the largest delta ever seen. */
    free(ix->next);
    ix->next = NULL;
    ix->next_cap = 0;
    ix->merge_at = n / 8 > HX_DELTA_MIN ? n / 8 : HX_DELTA_MIN;
    return EX_OK;
}

/* ---- public API ---------------------------------------------------------------------------- */

/* Locking is not a logical modification; queries take a const index. Fails only when the
 * system's reader count limit is hit. */
static inline bool hx_rdlock(const hindex *ix)
{
    return pthread_rwlock_rdlock(&((hindex *)ix)->lock) == 0;
}

static inline void hx_unlock(const hindex *ix)
{
    pthread_rwlock_unlock(&((hindex *)ix)->lock);
}

ex_rc hindex_reserve(hindex *ix, size_t entries, ex_error *e)
{
    if (!ix) return ex_fail(e, EX_EINVAL, "hindex_bad_argument", "hindex_reserve: NULL index");
    pthread_rwlock_wrlock(&ix->lock);
    ex_rc rc = hx_reserve_flat(ix, entries, e);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

/* Stores the `count` pairs (hashes[k], ids[k]). Entries become visible
 * all at once (n moves last); all or nothing. Merges when the delta reaches merge_at, so a
 * loop of single adds or of small batches costs amortised O(1) per entry. */
static ex_rc hx_add_locked(hindex *ix, const uint8_t (*hashes)[HINDEX_HASH_BYTES],
                           const uint64_t *ids, size_t count, ex_error *e)
{
    ex_rc rc = hx_room(ix, count, e);
    if (rc != EX_OK) return rc;
    const size_t old_n = ix->n;
    for (size_t k = 0; k < count; k++) {
        hx_load(ix->hash + (old_n + k) * HX_WORDS, hashes[k]);
        ix->id[old_n + k] = ids[k];
    }
    if (old_n + count - ix->m >= ix->merge_at) {
        ix->n = old_n + count;
        if (hx_merge(ix, NULL) == EX_OK) return EX_OK;
        /* Keep working through the delta and retry the merge later rather than attempt it
         * (and fail) on every add while memory is tight. */
        ix->n = old_n;
        ix->merge_at = ix->merge_at <= SIZE_MAX / 2 ? ix->merge_at * 2 : SIZE_MAX;
    }
    rc = hx_next_room(ix, old_n + count - ix->m, e);
    if (rc != EX_OK) return rc;
    for (size_t k = 0; k < count; k++)
        hx_link(ix, old_n + k);
    ix->n = old_n + count;
    return EX_OK;
}

ex_rc hindex_add(hindex *ix, const uint8_t hash[HINDEX_HASH_BYTES], uint64_t id, ex_error *e)
{
    if (!ix || !hash)
        return ex_fail(e, EX_EINVAL, "hindex_bad_argument", "hindex_add: NULL index or hash");
    pthread_rwlock_wrlock(&ix->lock);
    ex_rc rc = hx_add_locked(ix, (const uint8_t(*)[HINDEX_HASH_BYTES])hash, &id, 1, e);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

ex_rc hindex_add_many(hindex *ix, const uint8_t (*hashes)[HINDEX_HASH_BYTES], const uint64_t *ids,
                      size_t count, ex_error *e)
{
    if (!ix || (count && (!hashes || !ids)))
        return ex_fail(e, EX_EINVAL, "hindex_bad_argument", "hindex_add_many: NULL argument");
    if (count == 0) return EX_OK;
    pthread_rwlock_wrlock(&ix->lock);
    ex_rc rc = hx_add_locked(ix, hashes, ids, count, e);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

ex_rc hindex_compact(hindex *ix, ex_error *e)
{
    if (!ix) return ex_fail(e, EX_EINVAL, "hindex_bad_argument", "hindex_compact: NULL index");
    pthread_rwlock_wrlock(&ix->lock);
    ex_rc rc = hx_merge(ix, e);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

static ex_rc hx_check_query(const hindex *ix, const uint8_t *q, int radius, int max_radius,
                            const hindex_hit *out, size_t max, const size_t *n, ex_error *e)
{
    if (!ix || !q || !n || (max && !out))
        return ex_fail(e, EX_EINVAL, "hindex_bad_argument", "hash query: NULL argument");
    if (radius < 0 || radius > max_radius)
        return ex_fail(e, EX_EINVAL, "hindex_bad_radius", "hash query radius %d is outside 0..%d",
                       radius, max_radius);
    return EX_OK;
}

/* Chooses per-table probe levels s[t] = t_k + 1 (0 skip, 1 exact bucket, 2 bucket + 16
 * neighbours) with sum >= need, minimising the estimated candidate count. A 16 x 33 x 3
 * dynamic programme: cheap next to a single cache miss per candidate. */
static void hx_plan(const uint64_t cost[HX_TABLES][3], int need, uint8_t s[HX_TABLES])
{
    enum { MAXS = 2 * HX_TABLES + 1 };
    uint64_t best[HX_TABLES + 1][MAXS];
    uint8_t pick[HX_TABLES + 1][MAXS], from[HX_TABLES + 1][MAXS];
    for (int t = 0; t <= HX_TABLES; t++)
        for (int c = 0; c < MAXS; c++)
            best[t][c] = UINT64_MAX;
    best[0][0] = 0;
    for (int t = 0; t < HX_TABLES; t++)
        for (int c = 0; c <= need; c++) {
            if (best[t][c] == UINT64_MAX) continue;
            for (int v = 0; v < 3; v++) {
                /* Sums past `need` are as good as `need`: cap the state. */
                int c2 = c + v > need ? need : c + v;
                uint64_t val = best[t][c] + cost[t][v];
                if (val < best[t + 1][c2]) {
                    best[t + 1][c2] = val;
                    pick[t + 1][c2] = (uint8_t)v;
                    from[t + 1][c2] = (uint8_t)c;
                }
            }
        }
    /* need <= 32 = 2 * HX_TABLES, so the full sum is always reachable. */
    assert(need <= 2 * HX_TABLES && best[HX_TABLES][need] != UINT64_MAX);
    for (int t = HX_TABLES, c = need; t > 0; t--) {
        s[t - 1] = pick[t][c];
        c = from[t][c];
    }
}

/* Entries in bucket b of table t, weighted by what checking them costs. */
static inline uint64_t hx_bucket_cost(const hindex *ix, int t, uint32_t b)
{
    const uint32_t *off = ix->off + (size_t)t * (HX_BUCKETS + 1);
    return HX_COST_PROBE + (uint64_t)(off[b + 1] - off[b]) +
           (uint64_t)ix->delta[(size_t)t * HX_BUCKETS + b].len * HX_COST_CHAIN;
}

/* Checks every entry of bucket b in table t (compact part, then delta chain). */
static bool hx_probe(const hindex *ix, int t, uint32_t b, const uint64_t *q, int r, hx_cands *c)
{
    const uint32_t *off = ix->off + (size_t)t * (HX_BUCKETS + 1);
    size_t len = off[b + 1] - off[b];
    if (len) {
        if (!hx_cands_room(c, len)) return false;
        c->n += ix->scan->list(ix->hash, ix->post[t] + off[b], len, q, r, c->v + c->n);
    }
    const hx_slot *sl = &ix->delta[(size_t)t * HX_BUCKETS + b];
    if (sl->head) {
        if (!hx_cands_room(c, sl->len)) return false;
        c->n += ix->scan->chain(ix->hash, ix->next, ix->m, t, sl->head, q, r, c->v + c->n);
    }
    return true;
}

/* Drops the hits found in table t that an earlier table already produced. An entry is a
 * candidate in table u exactly when its chunk u is within s[u] - 1 bits of the query's chunk,
 * so this keeps each entry once: a photo stored thousands of times then costs thousands of
 * hits, not sixteen times that. Only hits are re-checked, not every candidate. */
static void hx_drop_seen(const hindex *ix, hx_cands *c, size_t first, const uint64_t *q,
                         const uint8_t *s, int t)
{
    size_t k = first;
    for (size_t i = first; i < c->n; i++) {
        const uint64_t *w = ix->hash + (size_t)c->v[i].idx * HX_WORDS;
        bool seen = false;
        for (int u = 0; u < t && !seen; u++)
            seen = __builtin_popcount(hx_chunk(w, u) ^ hx_chunk(q, u)) < s[u];
        if (!seen) c->v[k++] = c->v[i];
    }
    c->n = k;
}

ex_rc hindex_query(const hindex *ix, const uint8_t q[HINDEX_HASH_BYTES], int radius,
                   hindex_hit *out, size_t max, size_t *n, ex_error *e)
{
    ex_rc rc = hx_check_query(ix, q, radius, HINDEX_MAX_RADIUS, out, max, n, e);
    if (rc != EX_OK) return rc;
    uint64_t qw[HX_WORDS];
    hx_load(qw, q);
    if (!hx_rdlock(ix))
        return ex_fail(e, EX_EBUSY, "hindex_busy", "too many concurrent hash queries");
    hx_cands c;
    hx_cands_init(&c);
    uint64_t cost[HX_TABLES][3];
    for (int t = 0; t < HX_TABLES; t++) {
        uint32_t b = hx_chunk(qw, t);
        cost[t][0] = 0;
        cost[t][1] = hx_bucket_cost(ix, t, b);
        cost[t][2] = cost[t][1];
        for (int j = 0; j < 16; j++)
            cost[t][2] += hx_bucket_cost(ix, t, b ^ (1u << j));
    }
    uint8_t s[HX_TABLES];
    hx_plan(cost, radius + 1, s);
    bool ok = true;
    for (int t = 0; t < HX_TABLES && ok; t++) {
        uint32_t b = hx_chunk(qw, t);
        size_t first = c.n;
        if (s[t] >= 1) ok = hx_probe(ix, t, b, qw, radius, &c);
        for (int j = 0; j < 16 && ok && s[t] == 2; j++)
            ok = hx_probe(ix, t, b ^ (1u << j), qw, radius, &c);
        hx_drop_seen(ix, &c, first, qw, s, t);
    }
    if (ok)
        rc = hx_finish(ix, &c, out, max, n, e);
    else
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory for near-duplicate candidates");
    hx_unlock(ix);
    hx_cands_release(&c);
    return rc;
}

ex_rc hindex_scan(const hindex *ix, const uint8_t q[HINDEX_HASH_BYTES], int radius, hindex_hit *out,
                  size_t max, size_t *n, ex_error *e)
{
    ex_rc rc = hx_check_query(ix, q, radius, HINDEX_HASH_BYTES * 8, out, max, n, e);
    if (rc != EX_OK) return rc;
    uint64_t qw[HX_WORDS];
    hx_load(qw, q);
    if (!hx_rdlock(ix))
        return ex_fail(e, EX_EBUSY, "hindex_busy", "too many concurrent hash queries");
    hx_cands c;
    hx_cands_init(&c);
    enum { BLOCK = 4096 };
    bool ok = true;
    for (size_t i = 0; i < ix->n && ok; i += BLOCK) {
        size_t end = ix->n - i > BLOCK ? i + BLOCK : ix->n;
        ok = hx_cands_room(&c, end - i);
        if (ok) c.n += ix->scan->range(ix->hash, i, end, qw, radius, c.v + c.n);
    }
    if (ok)
        rc = hx_finish(ix, &c, out, max, n, e);
    else
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "no memory for near-duplicate candidates");
    hx_unlock(ix);
    hx_cands_release(&c);
    return rc;
}

size_t hindex_size(const hindex *ix)
{
    if (!ix || !hx_rdlock(ix)) return 0;
    size_t n = ix->n;
    hx_unlock(ix);
    return n;
}

size_t hindex_memory(const hindex *ix)
{
    if (!ix || !hx_rdlock(ix)) return 0;
    size_t bytes = sizeof *ix;
    bytes += ix->hash_cap * HX_WORDS * sizeof *ix->hash + ix->id_cap * sizeof *ix->id;
    for (int t = 0; t < HX_TABLES; t++)
        bytes += ix->post_cap[t] * sizeof *ix->post[t];
    bytes += (size_t)HX_TABLES * (HX_BUCKETS + 1) * sizeof *ix->off;
    bytes += (size_t)HX_TABLES * HX_BUCKETS * sizeof *ix->delta;
    bytes += ix->next_cap * HX_TABLES * sizeof *ix->next;
    hx_unlock(ix);
    return bytes;
}
