/* bench_reuse.c - the costs of reuse detection, printed by make bench.
 *
 *   bench_reuse [--images N] [--queries N] PHOTO...
 *
 * 1. Signature: reuse_sig_compute on each photo's upright luma as image_process gives it
 *    (median and p90 over the photos; one core), with the share spent in ft_describe (SIFT).
 * 2. Verification: reuse_match of a real photo against each of the others (median).
 * 3. Shortlist at scale: a word index with N synthetic images (default 1,000,000). Each
 *    synthetic image gets as many distinct words as a real photo has (drawn from the real
 *    photos' counts), drawn from the word frequencies the real photos show (so common words
 *    are as common as in real data and rare ones as rare); the real photos are added too. A
 *    query is a real photo's query words (its own and its mirror's); reported: p50/p99 time
 *    of widx_query for the best MATCHER_SHORTLIST, that each real photo is its own top hit,
 *    and the index's bytes per image. Also PDQ keys: one per image in a hindex (see
 *    bench_index for its cost at 10 M).
 * 4. Disk: the serialised signature's bytes per image (median, max).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exhibit/features.h"
#include "exhibit/image.h"
#include "exhibit/matcher.h"
#include "exhibit/reuse.h"
#include "exhibit/wordindex.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p * (n - 1) + 0.5);
    return v[i];
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    size_t images = 1000000, queries = 200;
    int first = 1;
    for (; first + 1 < argc && argv[first][0] == '-'; first += 2) {
        if (!strcmp(argv[first], "--images"))
            images = strtoull(argv[first + 1], NULL, 10);
        else if (!strcmp(argv[first], "--queries"))
            queries = strtoull(argv[first + 1], NULL, 10);
    }
    ex_error e;
    if (image_global_init(argv[0], &e)) {
        fprintf(stderr, "bench_reuse: %s\n", e.message);
        return 1;
    }
    int np = argc - first;
    reuse_sig **sig = calloc((size_t)(np > 0 ? np : 1), sizeof *sig);
    double *tsig = calloc((size_t)(np > 0 ? np : 1), sizeof *tsig);
    double *tdesc = calloc((size_t)(np > 0 ? np : 1), sizeof *tdesc);
    double *bytes = calloc((size_t)(np > 0 ? np : 1), sizeof *bytes);
    size_t ns = 0;
    for (int i = 0; i < np; i++) {
        image_result r;
        if (image_process(argv[first + i], NULL, &r, &e) != EX_OK) continue;
        float *kp = NULL;
        uint8_t *desc = NULL;
        size_t n = 0;
        int sw, sh;
        double t0 = now();
        if (ft_describe(r.luma, r.luma_w, r.luma_h, &kp, &desc, &n, &sw, &sh, &e) == EX_OK)
            tdesc[ns] = now() - t0;
        free(kp);
        free(desc);
        t0 = now();
        if (reuse_sig_compute(r.luma, r.luma_w, r.luma_h, &sig[ns], &e) == EX_OK) {
            tsig[ns] = now() - t0;
            uint8_t *buf = NULL;
            size_t len = 0;
            if (reuse_sig_serialize(sig[ns], &buf, &len, &e) == EX_OK) bytes[ns] = (double)len;
            free(buf);
            if (!reuse_sig_flat(sig[ns]))
                ns++;
            else
                reuse_sig_free(sig[ns]), sig[ns] = NULL;
        }
        image_result_release(&r);
    }
    if (ns < 2) {
        fprintf(stderr, "bench_reuse: fewer than 2 usable photos\n");
        return 1;
    }
    printf("  signature (features + PDQ), %zu photos: median %.1f ms, p90 %.1f ms "
           "(SIFT alone: median %.1f ms)\n",
           ns, 1e3 * pct(tsig, ns, 0.5), 1e3 * pct(tsig, ns, 0.9), 1e3 * pct(tdesc, ns, 0.5));
    printf("  stored signature: median %.0f bytes, max %.0f\n", pct(bytes, ns, 0.5),
           pct(bytes, ns, 1.0));

    /* Verification cost: photo 0 against every other (all are non-matches but most share
     * words, so this is the full tentative-pair and hypothesis work). */
    double *tv = calloc(ns, sizeof *tv);
    size_t nv = 0;
    for (int rep = 0; rep < 5; rep++)
        for (size_t j = 1; j < ns; j++) {
            reuse_result r;
            double t0 = now();
            reuse_match(sig[j % ns], sig[(j + rep + 1) % ns], &r);
            if (rep == 0) tv[nv++] = now() - t0;
        }
    printf("  verification (reuse_match), %zu pairs: median %.3f ms, p90 %.3f ms\n", nv,
           1e3 * pct(tv, nv, 0.5), 1e3 * pct(tv, nv, 0.9));

    /* Word frequencies and word counts of the real photos. */
    double *freq = calloc(FT_WORDS, sizeof *freq), total = 0;
    size_t *counts = calloc(ns, sizeof *counts);
    uint32_t *words = malloc(2 * FT_MAX_FEATS * sizeof *words);
    for (size_t i = 0; i < ns; i++) {
        size_t n = reuse_words(sig[i], 0, words, 2 * FT_MAX_FEATS);
        counts[i] = n;
        for (size_t k = 0; k < n; k++)
            freq[words[k]] += 1, total += 1;
    }
    /* Cumulative distribution, with every word given a small floor so unseen words occur. */
    double *cdf = malloc(FT_WORDS * sizeof *cdf), acc = 0;
    for (size_t w = 0; w < FT_WORDS; w++)
        acc += freq[w] + 0.05, cdf[w] = acc;
    widx *ix = widx_new(FT_WORDS);
    double t0 = now();
    for (size_t i = 0; i < images; i++) {
        size_t n = counts[next() % ns];
        for (size_t k = 0; k < n; k++) {
            double u = (double)(next() >> 11) / 9007199254740992.0 * acc;
            size_t lo = 0, hi = FT_WORDS - 1;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (cdf[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            words[k] = (uint32_t)lo;
        }
        if (widx_add(ix, 1000000000ull + i, words, n, &e)) {
            fprintf(stderr, "bench_reuse: %s\n", e.message);
            return 1;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        size_t n = reuse_words(sig[i], 0, words, 2 * FT_MAX_FEATS);
        if (widx_add(ix, i + 1, words, n, &e)) return 1;
    }
    double build = now() - t0;
    size_t n_ix = widx_images(ix);
    printf("  word index: %zu images (%zu synthetic, words drawn from the real photos' word "
           "frequencies) built in %.1f s; %.0f bytes per image\n",
           n_ix, images, build, (double)widx_memory(ix) / n_ix);
    double *tq = calloc(queries, sizeof *tq);
    size_t self_top = 0;
    for (size_t q = 0; q < queries; q++) {
        size_t i = q % ns;
        size_t n = reuse_words(sig[i], 1, words, 2 * FT_MAX_FEATS);
        widx_hit hits[MATCHER_SHORTLIST];
        double a = now();
        int got = widx_query(ix, words, n, 0, 5, hits, MATCHER_SHORTLIST);
        tq[q] = now() - a;
        if (got > 0 && hits[0].id == i + 1) self_top++;
    }
    printf("  shortlist (best %d of %zu): p50 %.1f ms, p99 %.1f ms; the photo itself ranked "
           "first in %zu of %zu queries\n",
           MATCHER_SHORTLIST, n_ix, 1e3 * pct(tq, queries, 0.5), 1e3 * pct(tq, queries, 0.99),
           self_top, queries);
    widx_free(ix);
    for (size_t i = 0; i < ns; i++)
        reuse_sig_free(sig[i]);
    free(sig);
    free(tsig);
    free(tdesc);
    free(bytes);
    free(tv);
    free(freq);
    free(counts);
    free(words);
    free(cdf);
    free(tq);
    image_global_shutdown();
    return 0;
}
