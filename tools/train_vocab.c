/* train_vocab.c - trains the visual vocabulary of the local-feature tier (src/vocab.bin).
 *
 *   train_vocab --out src/vocab.bin [--seed N] [--tune-half DIR] PHOTO...
 *
 * Run once; the result is committed and embedded in the binary. make vocab names the photos:
 * the tuning half of the evaluation set (--tune-half: reuse_eval.h's re_split_of, the same
 * split make eval reports on the other half of) and the test photos that are not in the
 * evaluation set, never a photo its numbers are reported on. For every photo, upright and shrunk as
 * an upload's preview, it takes the SIFT descriptors of ft_describe at four scales (1, 0.7, 0.5,
 * 0.35: crops and resizes meet the same structure at other sizes), then clusters them in two levels
 * with VLFeat's k-means (Elkan, k-means++ seeding): FT_WORDS_L1 centres, then FT_WORDS_L2
 * inside each. The Hamming-embedding dimensions are the HE bits with the largest spread of the
 * descriptors around their word's centre. Changing the vocabulary changes every word: bump
 * FT_VOCAB_VERSION and run exhibit reindex.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>
#include <vl/kmeans.h>
#include <vl/random.h>

#include "exhibit/features.h"
#include "reuse_eval.h"

#include <dirent.h>

#define HE_BITS 32

static float *to_luma(VipsImage *img, double scale, int *w, int *h)
{
    VipsImage *s = NULL, *g = NULL, *f = NULL;
    float *out = NULL;
    size_t n = 0;
    if (vips_resize(img, &s, scale, NULL) == 0 &&
        vips_colourspace(s, &g, VIPS_INTERPRETATION_B_W, NULL) == 0 &&
        vips_cast(g, &f, VIPS_FORMAT_FLOAT, NULL) == 0)
        out = vips_image_write_to_memory(f, &n);
    if (out) {
        *w = f->Xsize;
        *h = f->Ysize;
    }
    VIPS_UNREF(s);
    VIPS_UNREF(g);
    VIPS_UNREF(f);
    return out;
}

/* Runs k-means on n float points of FT_DESC dims and writes k uint8 centres. When there are
 * fewer points than centres, the points are repeated (words nobody uses cost nothing). */
static void cluster(const float *pts, size_t n, size_t k, uint8_t *centres)
{
    if (n == 0) {
        memset(centres, 0, k * FT_DESC);
        return;
    }
    if (n <= k) {
        for (size_t i = 0; i < k; i++)
            for (int d = 0; d < FT_DESC; d++) {
                float v = pts[(i % n) * FT_DESC + d];
                centres[i * FT_DESC + d] = (uint8_t)(v > 255 ? 255 : v < 0 ? 0 : v + 0.5f);
            }
        return;
    }
    VlKMeans *km = vl_kmeans_new(VL_TYPE_FLOAT, VlDistanceL2);
    vl_kmeans_set_algorithm(km, VlKMeansElkan);
    vl_kmeans_set_initialization(km, VlKMeansPlusPlus);
    vl_kmeans_set_max_num_iterations(km, 25);
    vl_kmeans_cluster(km, pts, FT_DESC, n, k);
    const float *c = vl_kmeans_get_centers(km);
    for (size_t i = 0; i < k * FT_DESC; i++)
        centres[i] = (uint8_t)(c[i] > 255 ? 255 : c[i] < 0 ? 0 : c[i] + 0.5f);
    vl_kmeans_delete(km);
}

static int nearest(const float *p, const uint8_t *centres, int k)
{
    int best = 0;
    double bd = 1e30;
    for (int i = 0; i < k; i++) {
        double d = 0;
        for (int j = 0; j < FT_DESC; j++) {
            double t = p[j] - centres[i * FT_DESC + j];
            d += t * t;
        }
        if (d < bd) bd = d, best = i;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *tune = NULL;
    unsigned long seed = 1;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "--out") && first + 1 < argc)
            out = argv[++first];
        else if (!strcmp(argv[first], "--seed") && first + 1 < argc)
            seed = strtoul(argv[++first], NULL, 10);
        else if (!strcmp(argv[first], "--tune-half") && first + 1 < argc)
            tune = argv[++first];
        else
            break;
    }
    if (!out || (first >= argc && !tune)) {
        fprintf(stderr, "usage: train_vocab --out FILE [--seed N] [--tune-half DIR] PHOTO...\n");
        return 2;
    }
    /* The photos: the tuning half of DIR (sorted by name), then the ones named. */
    char **list = calloc((size_t)argc + 4096, sizeof *list);
    int nlist = 0;
    if (tune) {
        struct dirent **ents = NULL;
        int ne = scandir(tune, &ents, NULL, alphasort);
        for (int i = 0; i < ne; i++) {
            const char *dot = strrchr(ents[i]->d_name, '.');
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", tune, ents[i]->d_name);
            if (dot && !strcmp(dot, ".jpg") && re_split_of(path) == 0 && nlist < 4096)
                list[nlist++] = strdup(path);
            free(ents[i]);
        }
        free(ents);
    }
    for (int a = first; a < argc; a++)
        list[nlist++] = strdup(argv[a]);
    if (VIPS_INIT(argv[0])) return 1;
    vl_rand_seed(vl_get_rand(), seed);
    size_t cap = 1 << 16, n = 0;
    float *all = malloc(cap * FT_DESC * sizeof *all);
    static const double scales[] = {1.0, 0.7, 0.5, 0.35};
    int photos = 0;
    for (int a = 0; a < nlist; a++) {
        VipsImage *t = NULL;
        if (vips_thumbnail(list[a], &t, 1600, "size", VIPS_SIZE_DOWN, NULL)) {
            fprintf(stderr, "skipped %s: %s", list[a], vips_error_buffer());
            vips_error_clear();
            continue;
        }
        VipsImage *img = vips_image_copy_memory(t);
        g_object_unref(t);
        if (!img) continue;
        if (img->Bands > 3) {
            VipsImage *x = NULL;
            if (vips_flatten(img, &x, NULL) == 0) g_object_unref(img), img = x;
        }
        photos++;
        for (size_t s = 0; s < sizeof scales / sizeof *scales; s++) {
            int w = 0, h = 0, sw, sh;
            float *luma = to_luma(img, scales[s], &w, &h), *kp = NULL;
            uint8_t *desc = NULL;
            size_t k = 0;
            if (luma && ft_describe(luma, w, h, &kp, &desc, &k, &sw, &sh, NULL) == EX_OK) {
                if (n + k > cap) {
                    while (n + k > cap)
                        cap *= 2;
                    all = realloc(all, cap * FT_DESC * sizeof *all);
                }
                for (size_t i = 0; i < k * FT_DESC; i++)
                    all[n * FT_DESC + i] = desc[i];
                n += k;
            }
            free(kp);
            free(desc);
            g_free(luma);
        }
        g_object_unref(img);
    }
    fprintf(stderr, "train_vocab: %d photos, %zu descriptors\n", photos, n);
    if (n < FT_WORDS_L1 * 4) {
        fprintf(stderr, "train_vocab: too few descriptors\n");
        return 1;
    }
    uint8_t *l1 = malloc((size_t)FT_WORDS_L1 * FT_DESC);
    uint8_t *l2 = malloc((size_t)FT_WORDS * FT_DESC);
    int *cell = malloc(n * sizeof *cell);
    float *members = malloc(n * FT_DESC * sizeof *members);
    cluster(all, n, FT_WORDS_L1, l1);
    for (size_t i = 0; i < n; i++)
        cell[i] = nearest(all + i * FT_DESC, l1, FT_WORDS_L1);
    for (int c = 0; c < FT_WORDS_L1; c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (cell[i] == c) memcpy(members + m++ * FT_DESC, all + i * FT_DESC, FT_DESC * 4);
        cluster(members, m, FT_WORDS_L2, l2 + (size_t)c * FT_WORDS_L2 * FT_DESC);
        if (c % 16 == 15) fprintf(stderr, "train_vocab: %d/%d cells\n", c + 1, FT_WORDS_L1);
    }
    /* Hamming-embedding dimensions: the largest spread around the assigned word. */
    double var[FT_DESC] = {0};
    for (size_t i = 0; i < n; i++) {
        const float *p = all + i * FT_DESC;
        const uint8_t *c2 = l2 + (size_t)cell[i] * FT_WORDS_L2 * FT_DESC;
        int b = nearest(p, c2, FT_WORDS_L2);
        for (int d = 0; d < FT_DESC; d++) {
            double t = p[d] - c2[b * FT_DESC + d];
            var[d] += t * t;
        }
    }
    uint8_t dims[HE_BITS];
    for (int k = 0; k < HE_BITS; k++) {
        int best = 0;
        for (int d = 1; d < FT_DESC; d++)
            if (var[d] > var[best]) best = d;
        dims[k] = (uint8_t)best;
        var[best] = -1;
    }
    FILE *f = fopen(out, "wb");
    uint8_t hdr[20] = "EXVOCAB1";
    uint32_t v[3] = {FT_WORDS_L1, FT_WORDS_L2, FT_DESC};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            hdr[8 + 4 * i + b] = (uint8_t)(v[i] >> (8 * b));
    int ok = f && fwrite(hdr, 1, 20, f) == 20 &&
             fwrite(l1, 1, (size_t)FT_WORDS_L1 * FT_DESC, f) == (size_t)FT_WORDS_L1 * FT_DESC &&
             fwrite(l2, 1, (size_t)FT_WORDS * FT_DESC, f) == (size_t)FT_WORDS * FT_DESC &&
             fwrite(dims, 1, HE_BITS, f) == HE_BITS;
    if (f && fclose(f)) ok = 0;
    fprintf(stderr, "train_vocab: %s %s\n", out, ok ? "written" : "NOT written");
    for (int a = 0; a < nlist; a++)
        free(list[a]);
    free(list);
    free(all);
    free(l1);
    free(l2);
    free(cell);
    free(members);
    return ok ? 0 : 1;
}
