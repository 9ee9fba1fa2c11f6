/* bench_index.c - builds a hindex of N random 256-bit hashes and times radius-31 queries
 * against a brute-force scan of the same entries.
 *
 *   bench_index [count] [--queries Q] [--seed S] [--bulk]
 *
 * count defaults to 10,000,000. Entries are made by a seeded counter-based generator, so entry
 * i's hash can be recomputed to plant a neighbour. Half the queries are random; the other half
 * are a stored hash with d (0..31) distinct bits flipped, so that entry must come back at
 * distance exactly d. Build time and memory (hindex_memory, VmHWM) are measured before any
 * query. Exit status 1 when the index and the scan disagree or a planted entry is missed.
 * Single-threaded: the numbers are for one core.
 */
#include "exhibit/hindex.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RADIUS 31
#define MAX_HITS 256

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Hash of entry i: a pure function of (seed, i). */
static void entry_hash(uint64_t seed, uint64_t i, uint8_t out[32])
{
    for (int w = 0; w < 4; w++) {
        uint64_t v = mix64(seed ^ mix64(i * 4 + (uint64_t)w));
        memcpy(out + 8 * w, &v, 8);
    }
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a machine shared with others, wall-clock percentiles include
 * time spent descheduled; CPU time shows what the query itself costs. */
static double cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

/* A "VmHWM:" style line of /proc/self/status in MiB, or -1. */
static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mib = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) {
            mib = strtod(line + klen, NULL) / 1024.0;
            break;
        }
    fclose(f);
    return mib;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    double p50, p99, mean, max;
} stats;

static stats summarise(double *ms, size_t n)
{
    stats s = {0, 0, 0, 0};
    if (n == 0) return s;
    for (size_t i = 0; i < n; i++)
        s.mean += ms[i];
    s.mean /= (double)n;
    qsort(ms, n, sizeof *ms, cmp_double);
    s.p50 = ms[n / 2];
    s.p99 = ms[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    s.max = ms[n - 1];
    return s;
}

/* Field by field: hindex_hit has padding that memcmp would compare. */
static bool same_hits(const hindex_hit *a, size_t na, const hindex_hit *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].id != b[i].id || a[i].distance != b[i].distance) return false;
    return true;
}

typedef struct query {
    uint8_t q[32];
    int64_t planted; /* entry id expected at distance `dist`, or -1 */
    int dist;
} query;

/* Runs every query through the index, recording wall and CPU milliseconds; stores hits when
 * keep is non-NULL. */
static bool time_index(hindex *ix, const query *qs, size_t nq, double *ms, double *cpu_ms,
                       hindex_hit *keep, size_t *keep_n)
{
    hindex_hit hits[MAX_HITS];
    for (size_t j = 0; j < nq; j++) {
        size_t n = 0;
        ex_error e = {{0}, {0}};
        double t0 = now_s(), c0 = cpu_s();
        ex_rc rc = hindex_query(ix, qs[j].q, RADIUS, hits, MAX_HITS, &n, &e);
        ms[j] = (now_s() - t0) * 1e3;
        cpu_ms[j] = (cpu_s() - c0) * 1e3;
        if (rc != EX_OK) {
            fprintf(stderr, "query %zu failed: %s: %s\n", j, e.code, e.message);
            return false;
        }
        if (keep) {
            memcpy(keep + j * MAX_HITS, hits, n * sizeof *hits);
            keep_n[j] = n;
        }
    }
    return true;
}

/* Even j: a random hash. Odd j: stored entry `pick` with d in 0..31 distinct bits flipped. */
static void make_queries(query *qs, size_t nq, size_t count, uint64_t seed)
{
    uint64_t rs = mix64(seed ^ 0x5151);
    for (size_t j = 0; j < nq; j++) {
        query *q = &qs[j];
        q->planted = -1;
        if (j % 2 == 0) {
            entry_hash(rs, j, q->q); /* an unrelated stream */
            continue;
        }
        uint64_t pick = mix64(rs + j) % count;
        int d = (int)(mix64(rs + j + 0x1000000) % (RADIUS + 1));
        entry_hash(seed, pick, q->q);
        /* A partial Fisher-Yates shuffle of the 256 bit positions picks d distinct bits. */
        int pos[256];
        for (int b = 0; b < 256; b++)
            pos[b] = b;
        for (int b = 0; b < d; b++) {
            int k = b + (int)(mix64(rs * 31 + j * 256 + (uint64_t)b) % (uint64_t)(256 - b));
            int tmp = pos[b];
            pos[b] = pos[k];
            pos[k] = tmp;
            q->q[pos[b] / 8] ^= (uint8_t)(1u << (pos[b] % 8));
        }
        q->planted = (int64_t)pick;
        q->dist = d;
    }
}

/* Prints wall and CPU percentiles and returns them in *w and *c (sorts both arrays). */
static void report(const char *what, double *ms, double *cms, size_t n, stats *wall, stats *cpu)
{
    stats w = summarise(ms, n), c = summarise(cms, n);
    *wall = w;
    *cpu = c;
    printf("%s (%zu queries, radius %d):\n"
           "  wall p50 %.3f ms  p99 %.3f ms  mean %.3f ms  max %.3f ms\n"
           "  cpu  p50 %.3f ms  p99 %.3f ms  mean %.3f ms  max %.3f ms\n",
           what, n, RADIUS, w.p50, w.p99, w.mean, w.max, c.p50, c.p99, c.mean, c.max);
}

int main(int argc, char **argv)
{
    size_t count = 10000000, nq = 2000;
    uint64_t seed = 20240601;
    bool bulk = false;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--queries") == 0 && a + 1 < argc)
            nq = strtoull(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--seed") == 0 && a + 1 < argc)
            seed = strtoull(argv[++a], NULL, 10);
        else if (strcmp(argv[a], "--bulk") == 0)
            bulk = true;
        else if (argv[a][0] >= '0' && argv[a][0] <= '9')
            count = strtoull(argv[a], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [count] [--queries Q] [--seed S] [--bulk]\n", argv[0]);
            return 2;
        }
    }
    if (count == 0 || nq == 0) {
        fprintf(stderr, "count and queries must be positive\n");
        return 2;
    }

    hindex *ix = hindex_new();
    if (!ix) {
        fprintf(stderr, "hindex_new: out of memory\n");
        return 1;
    }
    ex_error e = {{0}, {0}};
    printf("building: %zu random hashes (%s), seed %llu\n", count,
           bulk ? "hindex_add_many, batches of 1M" : "hindex_add loop", (unsigned long long)seed);
    double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (hindex_reserve(ix, count, &e) != EX_OK) {
        fprintf(stderr, "reserve: %s: %s\n", e.code, e.message);
        return 1;
    }
    size_t step = count >= 10 ? count / 10 : 1;
    if (bulk) {
        enum { BATCH = 1 << 20 };
        uint8_t(*hs)[32] = malloc((size_t)BATCH * 32);
        uint64_t *ids = malloc((size_t)BATCH * sizeof *ids);
        if (!hs || !ids) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < count; i += BATCH) {
            size_t k = count - i < BATCH ? count - i : BATCH;
            for (size_t j = 0; j < k; j++) {
                entry_hash(seed, i + j, hs[j]);
                ids[j] = i + j;
            }
            if (hindex_add_many(ix, (const uint8_t(*)[32])hs, ids, k, &e) != EX_OK) {
                fprintf(stderr, "add_many: %s: %s\n", e.code, e.message);
                return 1;
            }
            printf("  %zu entries, %.2f s\n", i + k, now_s() - t0);
            fflush(stdout);
        }
        free(hs);
        free(ids);
    } else {
        for (size_t i = 0; i < count; i++) {
            uint8_t h[32];
            entry_hash(seed, i, h);
            if (hindex_add(ix, h, i, &e) != EX_OK) {
                fprintf(stderr, "add %zu: %s: %s\n", i, e.code, e.message);
                return 1;
            }
            if ((i + 1) % step == 0) {
                printf("  %zu entries, %.2f s\n", i + 1, now_s() - t0);
                fflush(stdout);
            }
        }
    }
    double t_build = now_s() - t0, c_build = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    query *qs = calloc(nq, sizeof *qs);
    double *ms = calloc(nq, sizeof *ms), *cms = calloc(nq, sizeof *cms);
    hindex_hit *kept = calloc(nq * MAX_HITS, sizeof *kept);
    size_t *kept_n = calloc(nq, sizeof *kept_n);
    if (!qs || !ms || !cms || !kept || !kept_n) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    make_queries(qs, nq, count, seed);

    /* The service queries an index that still has a delta (additions since the last merge). */
    if (!time_index(ix, qs, nq, ms, cms, NULL, NULL)) return 1;
    stats sw, sc;
    report("index before final compaction", ms, cms, nq, &sw, &sc);
    double t1 = now_s();
    if (hindex_compact(ix, &e) != EX_OK) {
        fprintf(stderr, "compact: %s: %s\n", e.code, e.message);
        return 1;
    }
    double t_compact = now_s() - t1;
    printf("build: %.2f s wall, %.2f s cpu (%.0f adds/s), final compaction %.3f s\n", t_build,
           c_build, (double)count / t_build, t_compact);
    printf("memory: hindex_memory %.1f MiB (%.1f bytes/entry), VmHWM %.1f MiB, VmRSS %.1f MiB\n",
           (double)hindex_memory(ix) / 1048576.0, (double)hindex_memory(ix) / (double)count,
           status_mib("VmHWM:"), status_mib("VmRSS:"));

    /* Warm-up pass so the first timed queries do not pay for page faults of the tables. */
    if (!time_index(ix, qs, nq, ms, cms, NULL, NULL)) return 1;
    if (!time_index(ix, qs, nq, ms, cms, kept, kept_n)) return 1;
    stats iw, ic;
    report("index", ms, cms, nq, &iw, &ic);
    fflush(stdout);

    size_t mismatches = 0, planted_found = 0, planted = 0, total_hits = 0;
    hindex_hit hits[MAX_HITS];
    for (size_t j = 0; j < nq; j++) {
        size_t n = 0;
        double t2 = now_s(), c2 = cpu_s();
        if (hindex_scan(ix, qs[j].q, RADIUS, hits, MAX_HITS, &n, &e) != EX_OK) {
            fprintf(stderr, "scan %zu: %s: %s\n", j, e.code, e.message);
            return 1;
        }
        ms[j] = (now_s() - t2) * 1e3;
        cms[j] = (cpu_s() - c2) * 1e3;
        total_hits += n;
        if (!same_hits(hits, n, kept + j * MAX_HITS, kept_n[j])) {
            mismatches++;
            fprintf(stderr, "query %zu: index %zu hits, scan %zu hits\n", j, kept_n[j], n);
        }
        if (qs[j].planted >= 0) {
            planted++;
            for (size_t k = 0; k < kept_n[j]; k++)
                if (kept[j * MAX_HITS + k].id == (uint64_t)qs[j].planted &&
                    kept[j * MAX_HITS + k].distance == qs[j].dist)
                    planted_found++;
        }
        if ((j + 1) % (nq / 4 ? nq / 4 : 1) == 0) {
            printf("  brute force: %zu/%zu queries\n", j + 1, nq);
            fflush(stdout);
        }
    }
    stats bw, bc;
    report("brute force", ms, cms, nq, &bw, &bc);
    printf("speed-up brute/index: wall p50 %.1fx mean %.1fx, cpu p50 %.1fx mean %.1fx\n",
           bw.p50 / iw.p50, bw.mean / iw.mean, bc.p50 / ic.p50, bc.mean / ic.mean);
    printf("results: %zu hits in total, %zu/%zu planted neighbours found at their distance, "
           "%zu mismatching queries\n",
           total_hits, planted_found, planted, mismatches);
    bool ok = mismatches == 0 && planted_found == planted;
    printf("%s\n", ok ? "OK: index == brute force" : "FAIL");

    free(qs);
    free(ms);
    free(cms);
    free(kept);
    free(kept_n);
    hindex_free(ix);
    return ok ? 0 : 1;
}
