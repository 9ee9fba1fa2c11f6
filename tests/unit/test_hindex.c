/* test_hindex.c - the multi-index hash must return exactly what a brute-force scan returns.
 *
 * The reference below is written independently of src/hindex.c: distances by a per-byte bit
 * table (no popcount builtin), one hit per id by linear search, ordering by insertion sort.
 * Real PDQ hashes come from tests/data/pdq (Meta's reference vectors); which of them are edits
 * of one photo is known from the file names, not from our distances.
 */
#include "exhibit/hindex.h"
#include "unit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- reference ----------------------------------------------------------------------------- */

static int bits8[256];

static void ref_init(void)
{
    for (int v = 0; v < 256; v++) {
        int c = 0;
        for (int b = 0; b < 8; b++)
            c += (v >> b) & 1;
        bits8[v] = c;
    }
}

static int ref_dist(const uint8_t *a, const uint8_t *b)
{
    int d = 0;
    for (int i = 0; i < 32; i++)
        d += bits8[a[i] ^ b[i]];
    return d;
}

/* What the test has stored, in its own arrays. */
typedef struct store {
    uint8_t (*h)[32];
    uint64_t *id;
    size_t n, cap;
} store;

static void store_push(store *s, const uint8_t h[32], uint64_t id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->h = realloc(s->h, s->cap * 32);
        s->id = realloc(s->id, s->cap * sizeof *s->id);
        if (!s->h || !s->id) {
            fprintf(stderr, "test out of memory\n");
            exit(2);
        }
    }
    memcpy(s->h[s->n], h, 32);
    s->id[s->n++] = id;
}

static void store_free(store *s)
{
    free(s->h);
    free(s->id);
    memset(s, 0, sizeof *s);
}

/* Brute force: every id within r, smallest distance per id, by (distance, id); returns the
 * number of distinct ids found (which may exceed max; at most max are written). */
static size_t ref_query(const store *s, const uint8_t q[32], int r, hindex_hit *out, size_t max)
{
    hindex_hit *all = malloc((s->n ? s->n : 1) * sizeof *all);
    size_t k = 0;
    if (!all) exit(2);
    for (size_t i = 0; i < s->n; i++) {
        int d = ref_dist(s->h[i], q);
        if (d > r) continue;
        size_t j = 0;
        while (j < k && all[j].id != s->id[i])
            j++;
        if (j == k) {
            all[k].id = s->id[i];
            all[k].distance = d;
            k++;
        } else if (d < all[j].distance) {
            all[j].distance = d;
        }
    }
    for (size_t i = 1; i < k; i++) {
        hindex_hit x = all[i];
        size_t j = i;
        while (j > 0 && (all[j - 1].distance > x.distance ||
                         (all[j - 1].distance == x.distance && all[j - 1].id > x.id))) {
            all[j] = all[j - 1];
            j--;
        }
        all[j] = x;
    }
    for (size_t i = 0; i < k && i < max; i++)
        out[i] = all[i];
    free(all);
    return k;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic per test, independent of the module. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void rnd_hash(uint8_t h[32])
{
    for (int i = 0; i < 32; i += 8) {
        uint64_t v = rnd();
        memcpy(h + i, &v, 8);
    }
}

static void flip(uint8_t h[32], int bit)
{
    h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

/* Flips d distinct random bits of h. */
static void flip_random(uint8_t h[32], int d)
{
    int pos[256];
    for (int b = 0; b < 256; b++)
        pos[b] = b;
    for (int b = 0; b < d; b++) {
        int k = b + (int)(rnd() % (uint64_t)(256 - b));
        int t = pos[b];
        pos[b] = pos[k];
        pos[k] = t;
        flip(h, pos[b]);
    }
}

/* Flips d bits spread as evenly as possible over the 16 two-byte chunks, the worst case for
 * the pigeonhole argument: at d = 31, fifteen chunks differ in 2 bits and one in 1 bit. */
static void flip_spread(uint8_t h[32], int d)
{
    int per[16] = {0};
    int first = (int)(rnd() % 16);
    for (int i = 0; i < d; i++)
        per[(first + i) % 16]++;
    for (int c = 0; c < 16; c++) {
        /* per[c] distinct positions inside the 16-bit chunk */
        int pos[16];
        for (int b = 0; b < 16; b++)
            pos[b] = b;
        for (int b = 0; b < per[c]; b++) {
            int k = b + (int)(rnd() % (uint64_t)(16 - b));
            int t = pos[b];
            pos[b] = pos[k];
            pos[k] = t;
            flip(h, c * 16 + pos[b]);
        }
    }
}

/* Flips d bits packed into as few chunks as possible (the easy case for the index). */
static void flip_packed(uint8_t h[32], int d)
{
    int start = (int)(rnd() % 16) * 16;
    for (int i = 0; i < d; i++)
        flip(h, (start + i) % 256);
}

static bool same_hits(const hindex_hit *a, size_t na, const hindex_hit *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].id != b[i].id || a[i].distance != b[i].distance) return false;
    return true;
}

static bool add(hindex *ix, store *s, const uint8_t h[32], uint64_t id)
{
    ex_error e;
    store_push(s, h, id);
    return hindex_add(ix, h, id, &e) == EX_OK;
}

#define MAXH 512

/* Index answer == reference answer for (q, r, max); returns false and reports otherwise. */
static bool agrees(hindex *ix, const store *s, const uint8_t q[32], int r, size_t max)
{
    static hindex_hit got[MAXH], want[MAXH];
    size_t n = 0;
    ex_error e;
    if (hindex_query(ix, q, r, got, max, &n, &e) != EX_OK) {
        fprintf(stderr, "  query failed: %s: %s\n", e.code, e.message);
        return false;
    }
    size_t all = ref_query(s, q, r, want, max);
    size_t nw = all < max ? all : max;
    if (!same_hits(got, n, want, nw)) {
        fprintf(stderr, "  r=%d max=%zu: index %zu hits, reference %zu\n", r, max, n, nw);
        return false;
    }
    /* The scan path must agree too. */
    size_t n2 = 0;
    if (hindex_scan(ix, q, r, got, max, &n2, &e) != EX_OK || !same_hits(got, n2, want, nw)) {
        fprintf(stderr, "  r=%d max=%zu: scan disagrees with the reference\n", r, max);
        return false;
    }
    return true;
}

/* Whether id comes back for (q, r), and at which distance (-1 when absent). */
static int found_at(hindex *ix, const uint8_t q[32], int r, uint64_t id)
{
    static hindex_hit got[MAXH];
    size_t n = 0;
    ex_error e;
    if (hindex_query(ix, q, r, got, MAXH, &n, &e) != EX_OK) return -2;
    for (size_t i = 0; i < n; i++)
        if (got[i].id == id) return got[i].distance;
    return -1;
}

/* ---- tests --------------------------------------------------------------------------------- */

TEST(test_arguments)
{
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    uint8_t q[32] = {0};
    hindex_hit out[4];
    size_t n = 777;
    ex_error e = {{0}, {0}};
    CHECK(hindex_size(ix) == 0);
    CHECK(hindex_query(ix, q, 31, out, 4, &n, &e) == EX_OK && n == 0);

    n = 777;
    CHECK(hindex_query(ix, q, 32, out, 4, &n, &e) == EX_EINVAL);
    CHECK(strcmp(e.code, "hindex_bad_radius") == 0 && n == 777);
    CHECK(hindex_query(ix, q, -1, out, 4, &n, &e) == EX_EINVAL && n == 777);
    CHECK(hindex_query(ix, NULL, 3, out, 4, &n, &e) == EX_EINVAL && n == 777);
    CHECK(hindex_query(ix, q, 3, NULL, 4, &n, &e) == EX_EINVAL && n == 777);
    CHECK(hindex_query(ix, q, 3, out, 4, NULL, &e) == EX_EINVAL);
    CHECK(hindex_query(NULL, q, 3, out, 4, &n, &e) == EX_EINVAL && n == 777);
    CHECK(hindex_query(ix, q, 3, NULL, 0, &n, NULL) == EX_OK && n == 0);
    /* The scan accepts any radius a 256-bit distance can have. */
    CHECK(hindex_scan(ix, q, 256, out, 4, &n, &e) == EX_OK && n == 0);
    CHECK(hindex_scan(ix, q, 257, out, 4, &n, &e) == EX_EINVAL);

    CHECK(hindex_add(ix, NULL, 1, &e) == EX_EINVAL);
    CHECK(strcmp(e.code, "hindex_bad_argument") == 0);
    CHECK(hindex_add(NULL, q, 1, &e) == EX_EINVAL);
    CHECK(hindex_add_many(ix, NULL, NULL, 0, &e) == EX_OK);
    CHECK(hindex_add_many(ix, NULL, NULL, 3, &e) == EX_EINVAL);
    CHECK(hindex_reserve(ix, HINDEX_MAX_ENTRIES + 1, &e) == EX_ETOOBIG);
    CHECK(strcmp(e.code, "hindex_full") == 0);
    CHECK(hindex_compact(ix, &e) == EX_OK);
    CHECK(hindex_size(ix) == 0);

    /* Extreme hashes: all zeros and all ones are 256 apart. */
    uint8_t ones[32];
    memset(ones, 0xFF, sizeof ones);
    CHECK(hindex_add(ix, q, 10, &e) == EX_OK);
    CHECK(hindex_add(ix, ones, 11, &e) == EX_OK);
    CHECK(hindex_query(ix, q, 0, out, 4, &n, &e) == EX_OK && n == 1 && out[0].id == 10 &&
          out[0].distance == 0);
    CHECK(hindex_scan(ix, q, 256, out, 4, &n, &e) == EX_OK && n == 2 && out[1].id == 11 &&
          out[1].distance == 256);
    CHECK(hindex_size(ix) == 2);
    hindex_free(ix);
    hindex_free(NULL);
}

/* The pigeonhole proof, tested: a neighbour at any distance d <= 31, however its differing
 * bits are spread over the chunks, is found for every radius r >= d and never for r < d. */
TEST(test_exact_planted)
{
    rng_state = 0x9E3779B97F4A7C15ull;
    hindex *ix = hindex_new();
    store s = {0};
    CHECK(ix != NULL);
    if (!ix) return;
    uint8_t h[32];
    for (int i = 0; i < 5000; i++) {
        rnd_hash(h);
        CHECK(add(ix, &s, h, 100000 + (uint64_t)i));
    }
    enum { REPS = 6, MODES = 3, Q = 32 * MODES * REPS };
    static uint8_t qs[Q][32];
    static int qd[Q];
    int nq = 0;
    for (int d = 0; d <= 31; d++)
        for (int mode = 0; mode < MODES; mode++)
            for (int rep = 0; rep < REPS; rep++) {
                rnd_hash(qs[nq]);
                memcpy(h, qs[nq], 32);
                if (mode == 0)
                    flip_spread(h, d);
                else if (mode == 1)
                    flip_random(h, d);
                else
                    flip_packed(h, d);
                CHECKF(ref_dist(h, qs[nq]) == d, "planted at %d, wanted %d", ref_dist(h, qs[nq]),
                       d);
                qd[nq] = d;
                CHECK(add(ix, &s, h, (uint64_t)nq));
                nq++;
            }
    int misses = 0, false_hits = 0, disagreements = 0;
    for (int k = 0; k < nq; k++) {
        for (int r = 0; r <= HINDEX_MAX_RADIUS; r++) {
            int got = found_at(ix, qs[k], r, (uint64_t)k);
            if (qd[k] <= r && got != qd[k]) misses++;
            if (qd[k] > r && got != -1) false_hits++;
        }
        if (!agrees(ix, &s, qs[k], qd[k], MAXH) || !agrees(ix, &s, qs[k], 31, MAXH))
            disagreements++;
    }
    CHECKF(misses == 0, "%d planted neighbours missed", misses);
    CHECKF(false_hits == 0, "%d neighbours reported beyond the radius", false_hits);
    CHECKF(disagreements == 0, "%d queries differ from brute force", disagreements);
    hindex_free(ix);
    store_free(&s);
}

/* Skewed data like real uploads: clusters of near-copies, exact duplicates under several ids,
 * several hashes per id, and a popular chunk value; random radii and result limits. */
TEST(test_matches_bruteforce)
{
    rng_state = 12345;
    hindex *ix = hindex_new();
    store s = {0};
    CHECK(ix != NULL);
    if (!ix) return;
    enum { CENTRES = 40 };
    static uint8_t centre[CENTRES][32];
    uint8_t h[32];
    for (int c = 0; c < CENTRES; c++)
        rnd_hash(centre[c]);
    uint64_t id = 1;
    for (int i = 0; i < 6000; i++) {
        int kind = (int)(rnd() % 10);
        if (kind < 4) { /* near-copy of a centre */
            memcpy(h, centre[rnd() % CENTRES], 32);
            flip_random(h, (int)(rnd() % 48));
        } else if (kind < 5) { /* exact duplicate of a centre under a new id */
            memcpy(h, centre[rnd() % CENTRES], 32);
        } else if (kind < 6) { /* popular first chunk (like flat image areas) */
            rnd_hash(h);
            h[0] = 0;
            h[1] = 0;
        } else {
            rnd_hash(h);
        }
        /* Every fifth entry reuses a recent id: several hashes per id. */
        uint64_t use = (i % 5 == 4 && id > 10) ? id - 1 - rnd() % 10 : id++;
        CHECK(add(ix, &s, h, use));
    }
    int bad = 0;
    for (int k = 0; k < 600; k++) {
        uint8_t q[32];
        if (k % 3 == 0) {
            rnd_hash(q);
        } else {
            memcpy(q, centre[rnd() % CENTRES], 32);
            flip_random(q, (int)(rnd() % 24));
        }
        if (k % 7 == 0) {
            q[0] = 0;
            q[1] = 0;
        }
        int r = (int)(rnd() % 32);
        size_t max = (k % 4 == 0) ? (size_t)(1 + rnd() % 20) : MAXH;
        if (!agrees(ix, &s, q, r, max)) bad++;
    }
    CHECKF(bad == 0, "%d of 600 queries differ from brute force", bad);
    hindex_free(ix);
    store_free(&s);
}

TEST(test_one_hit_per_id_closest_first)
{
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    ex_error e;
    uint8_t q[32], h[32];
    memset(q, 0x5A, sizeof q);
    /* id 7 three times (distances 20, 3, 10), id 8 at 3, id 9 at 0, id 6 at 31, id 5 at 32. */
    const struct {
        uint64_t id;
        int d;
    } rows[] = {{7, 20}, {7, 3}, {7, 10}, {8, 3}, {9, 0}, {6, 31}, {5, 32}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memcpy(h, q, 32);
        for (int b = 0; b < rows[i].d; b++)
            flip(h, b * 8); /* distinct bits, spread over every chunk */
        CHECK(ref_dist(h, q) == rows[i].d);
        CHECK(hindex_add(ix, h, rows[i].id, &e) == EX_OK);
    }
    hindex_hit out[8];
    size_t n = 0;
    CHECK(hindex_query(ix, q, 31, out, 8, &n, &e) == EX_OK);
    CHECKF(n == 4, "n=%zu", n);
    if (n == 4) {
        CHECK(out[0].id == 9 && out[0].distance == 0);
        CHECK(out[1].id == 7 && out[1].distance == 3); /* tie at 3: smaller id first */
        CHECK(out[2].id == 8 && out[2].distance == 3);
        CHECK(out[3].id == 6 && out[3].distance == 31);
    }
    CHECK(hindex_query(ix, q, 31, out, 2, &n, &e) == EX_OK && n == 2 && out[1].id == 7);
    CHECK(hindex_query(ix, q, 2, out, 8, &n, &e) == EX_OK && n == 1 && out[0].id == 9);
    CHECK(hindex_scan(ix, q, 32, out, 8, &n, &e) == EX_OK && n == 5 && out[4].id == 5);
    CHECK(hindex_size(ix) == 7);
    hindex_free(ix);
}

/* One photo stored thousands of times (a reposted stock photo): every copy is one hit, ids
 * in order, and copies under a single id collapse to one hit; in the delta and after a merge. */
TEST(test_many_copies)
{
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    ex_error e;
    uint8_t q[32], h[32];
    memset(q, 0xC3, sizeof q);
    enum { COPIES = 3000 };
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < COPIES; i++) {
            memcpy(h, q, 32);
            if (pass == 1) flip(h, i % 256); /* second pass: at distance 1, under one id */
            CHECK(hindex_add(ix, h, pass == 0 ? (uint64_t)(COPIES - i) : 777777, &e) == EX_OK);
        }
        static hindex_hit out[COPIES + 10];
        size_t n = 0;
        CHECK(hindex_query(ix, q, 31, out, COPIES + 10, &n, &e) == EX_OK);
        size_t want = pass == 0 ? COPIES : COPIES + 1;
        CHECKF(n == want, "pass %d: %zu hits, want %zu", pass, n, want);
        bool ordered = true;
        for (size_t i = 0; i < n && i < COPIES; i++)
            ordered &= out[i].id == i + 1 && out[i].distance == 0;
        CHECK(ordered);
        if (pass == 1 && n == want) CHECK(out[COPIES].id == 777777 && out[COPIES].distance == 1);
        CHECK(hindex_compact(ix, &e) == EX_OK);
        CHECK(hindex_query(ix, q, 31, out, COPIES + 10, &n, &e) == EX_OK && n == want);
        CHECK(hindex_query(ix, q, 0, out, COPIES + 10, &n, &e) == EX_OK && n == COPIES);
    }
    hindex_free(ix);
}

/* Entries are first only in the delta chains, then merged; answers must not change across
 * merges, the explicit compaction, or a bulk load on top of a pending delta. */
TEST(test_delta_merge_and_bulk)
{
    rng_state = 777;
    hindex *ix = hindex_new();
    store s = {0};
    CHECK(ix != NULL);
    if (!ix) return;
    ex_error e;
    static uint8_t probes[64][32];
    for (int k = 0; k < 64; k++)
        rnd_hash(probes[k]);
    const size_t checkpoints[] = {1, 100, 4095, 4096, 4097, 5000, 9000, 20000};
    size_t next_cp = 0;
    int bad = 0;
    uint8_t h[32];
    for (size_t i = 1; i <= 20000; i++) {
        /* Every third entry is near one of the probes, so queries have answers. */
        if (i % 3 == 0) {
            memcpy(h, probes[rnd() % 64], 32);
            flip_random(h, (int)(rnd() % 40));
        } else {
            rnd_hash(h);
        }
        CHECK(add(ix, &s, h, i));
        if (next_cp < sizeof checkpoints / sizeof checkpoints[0] && i == checkpoints[next_cp]) {
            next_cp++;
            for (int k = 0; k < 64; k++)
                if (!agrees(ix, &s, probes[k], (int)(k % 32), MAXH)) bad++;
        }
    }
    CHECK(hindex_size(ix) == 20000);

    /* A bulk load while some entries are still pending in the delta. */
    enum { BULK = 7000 };
    static uint8_t bh[BULK][32];
    static uint64_t bid[BULK];
    for (int i = 0; i < BULK; i++) {
        memcpy(bh[i], probes[i % 64], 32);
        flip_random(bh[i], (int)(rnd() % 36));
        bid[i] = 50000 + (uint64_t)(i % 3000); /* several hashes per id */
        store_push(&s, bh[i], bid[i]);
    }
    CHECK(hindex_add_many(ix, (const uint8_t(*)[32])bh, bid, BULK, &e) == EX_OK);
    CHECK(hindex_size(ix) == 20000 + BULK);
    for (int k = 0; k < 64; k++)
        if (!agrees(ix, &s, probes[k], 31, MAXH) || !agrees(ix, &s, probes[k], k % 16, MAXH)) bad++;
    /* A small batch stays in the delta (no merge); then single adds on top of it. */
    for (int i = 0; i < 50; i++) {
        memcpy(bh[i], probes[i], 32);
        flip_random(bh[i], 1 + i % 30);
        bid[i] = 90000 + (uint64_t)i;
        store_push(&s, bh[i], bid[i]);
    }
    CHECK(hindex_add_many(ix, (const uint8_t(*)[32])bh, bid, 50, &e) == EX_OK);
    for (int i = 0; i < 50; i++) {
        rnd_hash(h);
        CHECK(add(ix, &s, h, 91000 + (uint64_t)i));
    }
    for (int k = 0; k < 64; k++)
        if (!agrees(ix, &s, probes[k], 31, MAXH)) bad++;
    CHECK(hindex_compact(ix, &e) == EX_OK);
    CHECK(hindex_compact(ix, &e) == EX_OK); /* nothing pending: a no-op */
    for (int k = 0; k < 64; k++)
        if (!agrees(ix, &s, probes[k], 31, MAXH) || !agrees(ix, &s, probes[k], 0, MAXH)) bad++;
    CHECKF(bad == 0, "%d queries differ from brute force", bad);
    hindex_free(ix);
    store_free(&s);
}

/* ---- real PDQ hashes ----------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool parse_hex(const char *s, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[64] == '\0' || s[64] == ',' || s[64] == '\n' || s[64] == '\r';
}

typedef struct pdq_row {
    char file[128];
    uint8_t h[8][32]; /* expected.csv: h[0] only; dihedral.csv: all 8 variants */
} pdq_row;

/* Reads `file,hex[,hex...],quality` rows; returns the row count or -1. */
static int read_csv(const char *path, pdq_row *rows, int max_rows, int nhash)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    bool header = true;
    while (fgets(line, sizeof line, f) && n < max_rows) {
        if (header) {
            header = false;
            continue;
        }
        char *comma = strchr(line, ',');
        if (!comma || (size_t)(comma - line) >= sizeof rows[n].file) break;
        memcpy(rows[n].file, line, (size_t)(comma - line));
        rows[n].file[comma - line] = '\0';
        const char *p = comma + 1;
        bool ok = true;
        for (int k = 0; k < nhash && ok; k++) {
            ok = parse_hex(p, rows[n].h[k]);
            p += 65;
        }
        if (!ok) break;
        n++;
    }
    fclose(f);
    return n;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

TEST(test_real_pdq_hashes)
{
    static pdq_row rows[64], dih[16];
    int nr = read_csv(unit_data("pdq/expected.csv"), rows, 64, 1);
    int nd = read_csv(unit_data("pdq/dihedral.csv"), dih, 16, 8);
    CHECKF(nr >= 30 && nd >= 4, "read %d + %d rows of tests/data/pdq", nr, nd);
    if (nr < 30 || nd < 4) return;
    hindex *ix = hindex_new();
    store s = {0};
    CHECK(ix != NULL);
    if (!ix) return;
    for (int i = 0; i < nr; i++)
        CHECK(add(ix, &s, rows[i].h[0], (uint64_t)i + 1));
    /* Each dihedral.csv photo under one id, all 8 orientations. */
    for (int i = 0; i < nd; i++)
        for (int k = 0; k < 8; k++)
            CHECK(add(ix, &s, dih[i].h[k], 1000 + (uint64_t)i));

    int bad = 0;
    const int radii[] = {0, 8, 15, 16, 24, 31};
    for (int i = 0; i < nr; i++)
        for (size_t k = 0; k < sizeof radii / sizeof radii[0]; k++)
            if (!agrees(ix, &s, rows[i].h[0], radii[k], MAXH)) bad++;
    CHECKF(bad == 0, "%d queries on real PDQ hashes differ from brute force", bad);

    /* Known from the data set: everything in bridge-mods/ and modes/ and dih/bridge-1 is an edit of
     * one photo (PDQ stays within 31 for them); labelme, exif-rotn and the turned dih/ files are
     * not. */
    int orig = -1;
    for (int i = 0; i < nr; i++)
        if (strcmp(rows[i].file, "bridge-mods/aaa-orig.jpg") == 0) orig = i;
    CHECK(orig >= 0);
    if (orig >= 0) {
        for (int i = 0; i < nr; i++) {
            bool same_photo = starts_with(rows[i].file, "bridge-mods/") ||
                              starts_with(rows[i].file, "modes/") ||
                              strcmp(rows[i].file, "dih/bridge-1-original.jpg") == 0;
            int d = found_at(ix, rows[orig].h[0], 31, (uint64_t)i + 1);
            CHECKF(same_photo ? d >= 0 : d == -1, "%s: found at %d", rows[i].file, d);
        }
    }
    /* Every turned or mirrored copy of the bridge finds the bridge's dihedral set. */
    int bridge = -1;
    for (int i = 0; i < nd; i++)
        if (strcmp(dih[i].file, "dih/bridge-1-original.jpg") == 0) bridge = i;
    CHECK(bridge >= 0);
    for (int i = 0; i < nr && bridge >= 0; i++) {
        if (!starts_with(rows[i].file, "dih/bridge-")) continue;
        int best = 256;
        for (int k = 0; k < 8; k++) {
            int d = ref_dist(rows[i].h[0], dih[bridge].h[k]);
            best = d < best ? d : best;
        }
        int d = found_at(ix, rows[i].h[0], 31, 1000 + (uint64_t)bridge);
        CHECKF(d == best && d <= 31, "%s: dihedral match at %d, closest variant %d", rows[i].file,
               d, best);
    }
    hindex_free(ix);
    store_free(&s);
}

/* ---- threads ------------------------------------------------------------------------------- */

typedef struct reader_arg {
    hindex *ix;
    const uint8_t (*q)[32];
    int nq;
    int failures;
    int rounds;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    hindex_hit out[64];
    for (int round = 0; round < a->rounds; round++)
        for (int k = 0; k < a->nq; k++) {
            size_t n = 0;
            /* Query k was planted with id k at distance k % 32 before the threads started;
             * concurrent adds and merges must never hide it. */
            if (hindex_query(a->ix, a->q[k], 31, out, 64, &n, NULL) != EX_OK) {
                a->failures++;
                continue;
            }
            bool seen = false;
            for (size_t i = 0; i < n; i++)
                seen |= out[i].id == (uint64_t)k && out[i].distance == k % 32;
            if (!seen) a->failures++;
        }
    return NULL;
}

typedef struct writer_arg {
    hindex *ix;
    int count;
    int failures;
    uint64_t seed;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    uint64_t x = a->seed;
    for (int i = 0; i < a->count; i++) {
        uint8_t h[32];
        for (int w = 0; w < 32; w += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(h + w, &x, 8);
        }
        if (hindex_add(a->ix, h, 1000000 + (uint64_t)i, NULL) != EX_OK) a->failures++;
    }
    return NULL;
}

TEST(test_concurrent_queries_and_adds)
{
    rng_state = 4242;
    hindex *ix = hindex_new();
    store s = {0};
    CHECK(ix != NULL);
    if (!ix) return;
    enum { NQ = 64, READERS = 3 };
    static uint8_t qs[NQ][32];
    uint8_t h[32];
    for (int k = 0; k < NQ; k++) {
        rnd_hash(qs[k]);
        memcpy(h, qs[k], 32);
        flip_random(h, k % 32);
        CHECK(add(ix, &s, h, (uint64_t)k));
    }
    reader_arg ra[READERS];
    writer_arg wa = {ix, 30000, 0, 99};
    pthread_t rt[READERS], wt;
    for (int i = 0; i < READERS; i++) {
        ra[i] = (reader_arg){ix, (const uint8_t(*)[32])qs, NQ, 0, 30};
        CHECK(pthread_create(&rt[i], NULL, reader, &ra[i]) == 0);
    }
    CHECK(pthread_create(&wt, NULL, writer, &wa) == 0);
    pthread_join(wt, NULL);
    for (int i = 0; i < READERS; i++) {
        pthread_join(rt[i], NULL);
        CHECKF(ra[i].failures == 0, "reader %d: %d bad answers", i, ra[i].failures);
    }
    CHECK(wa.failures == 0);
    CHECK(hindex_size(ix) == NQ + 30000);
    hindex_free(ix);
    store_free(&s);
}

/* The memory budget the service is sized by: ~104 bytes per entry + fixed tables (10 million
 * entries must stay under 1.5 GB, i.e. 150 bytes each). */
TEST(test_memory_budget)
{
    rng_state = 31337;
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    size_t empty = hindex_memory(ix);
    CHECKF(empty < 16u << 20, "empty index: %zu bytes", empty);
    enum { N = 50000 };
    ex_error e;
    CHECK(hindex_reserve(ix, N, &e) == EX_OK);
    uint8_t h[32];
    for (int i = 0; i < N; i++) {
        rnd_hash(h);
        CHECK(hindex_add(ix, h, (uint64_t)i, &e) == EX_OK);
    }
    CHECK(hindex_compact(ix, &e) == EX_OK);
    size_t used = hindex_memory(ix) - empty;
    /* Lower bound: the hash, id and 16 table slots every entry needs. */
    CHECKF(used >= (size_t)N * (32 + 8 + 16 * 4), "%zu bytes for %d entries", used, N);
    CHECKF(used <= (size_t)N * 110, "%zu bytes for %d entries (%.1f each)", used, N,
           (double)used / N);
    hindex_free(ix);
}

int main(void)
{
    ref_init();
    RUN(test_arguments);
    RUN(test_exact_planted);
    RUN(test_matches_bruteforce);
    RUN(test_one_hit_per_id_closest_first);
    RUN(test_many_copies);
    RUN(test_delta_merge_and_bulk);
    RUN(test_real_pdq_hashes);
    RUN(test_concurrent_queries_and_adds);
    RUN(test_memory_budget);
    UNIT_DONE();
}
