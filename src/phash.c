/* phash.c - PDQ and 64-bit DCT perceptual hashes of float luminance images.
 *
 * PDQ follows Meta's reference (ThreatExchange pdq/cpp, hashing + downscaling) step by step and
 * in the same float arithmetic, because Meta's test of a port is bit-equality on the same pixels:
 * two passes of a row box filter then a column box filter (window ceil(dim/128), the "Jarosz
 * tent"), point-sampling 64x64 at pixel centres, a 16x16 DCT of frequencies 1..16 (no DC), and one
 * bit per coefficient above the median. The box passes advance many lines at once (columns
 * directly, rows through a transposed tile) to use vector arithmetic; every line still sees the
 * same operations in the same order, so the results are the reference's bit for bit (checked
 * against Meta's vectors in tests/unit/test_phash.c).
 *
 * Limits: cost and scratch are O(w*h); callers shrink big images first (see phash.h). No state
 * besides the DCT tables, built once under pthread_once. Bit-exactness assumes plain IEEE float:
 * no -ffast-math, and no FMA contraction (the default for -std=c11 on baseline x86-64).
 */
#include "exhibit/phash.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    PDQ_MIN_DIM = 5, /* the reference refuses to hash anything smaller (zero hash, quality 0) */
    PDQ_PASSES = 2,  /* row+column box pairs: two box passes make the tent */
    PDQ_GRID = 64,
    PDQ_DCT = 16,
    D64_GRID = 32,
    D64_DCT = 8,
};

static const double phash_pi = 3.14159265358979323846;

/* Rows = frequencies 1..16 of a 64-point DCT-II, scaled sqrt(2/64) like the reference. */
static float pdq_dct_matrix[PDQ_DCT][PDQ_GRID];
/* Rows = frequencies 1..8 of an orthonormal 32-point DCT-II. */
static float d64_dct_matrix[D64_DCT][D64_GRID];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_build(void)
{
    /* The reference keeps the scale factor as a float and multiplies it by a double cosine. */
    const float pdq_scale = (float)sqrt(2.0 / PDQ_GRID);
    for (int i = 0; i < PDQ_DCT; i++)
        for (int j = 0; j < PDQ_GRID; j++)
            pdq_dct_matrix[i][j] =
                (float)(pdq_scale * cos((phash_pi / 2.0 / PDQ_GRID) * (i + 1) * (2 * j + 1)));
    const double d64_scale = sqrt(2.0 / D64_GRID);
    for (int u = 0; u < D64_DCT; u++)
        for (int x = 0; x < D64_GRID; x++)
            d64_dct_matrix[u][x] =
                (float)(d64_scale * cos((phash_pi / 2.0 / D64_GRID) * (u + 1) * (2 * x + 1)));
}

static void tables_ensure(void)
{
    int rc = pthread_once(&tables_once, tables_build);
    (void)rc; /* pthread_once can only fail on a bad once-control, which would be our bug */
}

/* ---- Jarosz filter (reference: downscaling.cpp box1DFloat / jaroszFilterFloat) ---- */

/* Window along a dimension so that two passes span dim/64: ceil(dim / 128). */
static int jarosz_window(int dim)
{
    return (dim + 2 * PDQ_GRID - 1) / (2 * PDQ_GRID);
}

/* The box filter runs on "lanes": many independent lines advanced in step, element k of lane j at
 * in[k * stride + j]. Across lanes the work is plain 4-wide vector arithmetic, which is exact per
 * lane (no fused operations), so each line sees the reference's additions, subtractions and
 * divisions in the reference's order. Vector division matters: one division per pixel per pass
 * is most of PDQ's cost. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof v);
}

/* One step of every lane: sum += add (if any), sum -= sub (if any), out = sum / n (if any). */
static void lanes_step(const float *add, const float *sub, float *out, float *sum, int lanes, int n)
{
    const float nf = (float)n;
    const v4f nv = {nf, nf, nf, nf};
    int j = 0;
    for (; j + 4 <= lanes; j += 4) {
        v4f s = v4_load(sum + j);
        if (add) s += v4_load(add + j);
        if (sub) s -= v4_load(sub + j);
        v4_store(sum + j, s);
        if (out) v4_store(out + j, s / nv);
    }
    for (; j < lanes; j++) {
        if (add) sum[j] += add[j];
        if (sub) sum[j] -= sub[j];
        if (out) out[j] = sum[j] / nf;
    }
}

/* One box pass of window win (1 <= win <= len) along every lane. The window is centred and
 * shrinks at both ends (phases 2 and 4) instead of padding, so edges average real pixels only;
 * for an even window the centre sits half a sample towards the end, as in the reference. */
static void box_lanes(const float *in, float *out, int len, size_t stride, int lanes, int win,
                      float *sum)
{
    const int half = (win + 2) / 2;
    int n = 0;
    size_t li = 0, ri = 0, oi = 0;
    for (int j = 0; j < lanes; j++)
        sum[j] = 0.0f;
    for (int k = 0; k < half - 1; k++, ri += stride)
        lanes_step(in + ri, NULL, NULL, sum, lanes, ++n);
    for (int k = 0; k < win - half + 1; k++, ri += stride, oi += stride)
        lanes_step(in + ri, NULL, out + oi, sum, lanes, ++n);
    for (int k = 0; k < len - win; k++, ri += stride, li += stride, oi += stride)
        lanes_step(in + ri, in + li, out + oi, sum, lanes, n);
    for (int k = 0; k < half - 1; k++, li += stride, oi += stride)
        lanes_step(NULL, in + li, out + oi, sum, lanes, --n);
}

enum { ROW_BLOCK = 8 };

/* Box pass along each row of in (rows x cols) into out. Rows are lanes too, ROW_BLOCK at a time,
 * through a transposed tile (tile holds 2 * ROW_BLOCK * cols floats, sum ROW_BLOCK). */
static void box_rows(const float *in, float *out, int rows, int cols, int win, float *tile,
                     float *sum)
{
    const size_t c = (size_t)cols;
    float *t_in = tile, *t_out = tile + ROW_BLOCK * c;
    for (int r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
        const int nr = rows - r0 < ROW_BLOCK ? rows - r0 : ROW_BLOCK;
        const float *src = in + (size_t)r0 * c;
        float *dst = out + (size_t)r0 * c;
        for (int r = 0; r < nr; r++)
            for (size_t k = 0; k < c; k++)
                t_in[k * ROW_BLOCK + r] = src[r * c + k];
        box_lanes(t_in, t_out, cols, ROW_BLOCK, nr, win, sum);
        for (int r = 0; r < nr; r++)
            for (size_t k = 0; k < c; k++)
                dst[r * c + k] = t_out[k * ROW_BLOCK + r];
    }
}

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* Tent-filters luma and samples it at 64x64 pixel centres. Needs w, h >= PDQ_MIN_DIM. */
static ex_rc pdq_downsample(const float *luma, int w, int h, float g[PDQ_GRID][PDQ_GRID],
                            ex_error *e)
{
    if (w == PDQ_GRID && h == PDQ_GRID) {
        /* The reference skips the filter here; at window 1 it would be an identity that only
         * adds rounding. */
        memcpy(g, luma, sizeof(float) * PDQ_GRID * PDQ_GRID);
    } else {
        const size_t n = (size_t)w * (size_t)h;
        /* b1, b2: full images; then per-column sums and the row-pass tiles. */
        const size_t extra = (size_t)w * (1 + 2 * ROW_BLOCK) + ROW_BLOCK;
        if (n > (SIZE_MAX / sizeof(float) - extra) / 2)
            return ex_fail(e, EX_ENOMEM, "phash_no_memory", "image of %dx%d is too large to hash",
                           w, h);
        float *b1 = malloc((2 * n + extra) * sizeof(float));
        if (!b1)
            return ex_fail(e, EX_ENOMEM, "phash_no_memory",
                           "no memory for the %dx%d hash buffers; shrink the image first", w, h);
        float *b2 = b1 + n, *colsum = b2 + n, *tile = colsum + w;
        float *rowsum = tile + 2 * ROW_BLOCK * (size_t)w;
        const int win_x = jarosz_window(w), win_y = jarosz_window(h);
        /* The reference filters its own copy in place; we read the caller's buffer once. */
        const float *src = luma;
        for (int pass = 0; pass < PDQ_PASSES; pass++) {
            box_rows(src, b2, h, w, win_x, tile, rowsum);
            box_lanes(b2, b1, h, (size_t)w, w, win_y, colsum);
            src = b1;
        }
        for (int i = 0; i < PDQ_GRID; i++) {
            const int y = (int)(((i + 0.5) * h) / PDQ_GRID);
            for (int j = 0; j < PDQ_GRID; j++) {
                const int x = (int)(((j + 0.5) * w) / PDQ_GRID);
                g[i][j] = b1[(size_t)y * w + x];
            }
        }
        free(b1);
    }
    if (!all_finite(&g[0][0], PDQ_GRID * PDQ_GRID))
        return ex_fail(e, EX_EINVAL, "phash_not_finite",
                       "luma holds NaN, infinity or values too large to filter");
    return EX_OK;
}

/* Meta's heuristic: count significant brightness steps between neighbours, 0..100. */
static int pdq_quality(const float g[PDQ_GRID][PDQ_GRID])
{
    /* Clamping each step keeps the int sum from overflowing on absurd (but finite) input; for
     * 0..255 luma a step is at most 100, so the reference's result is unchanged. */
    const float cap = 100000.0f;
    int sum = 0;
    for (int i = 0; i < PDQ_GRID - 1; i++)
        for (int j = 0; j < PDQ_GRID; j++) {
            float d = ((g[i][j] - g[i + 1][j]) * 100) / 255;
            d = fabsf(d) < cap ? d : cap;
            sum += abs((int)d);
        }
    for (int i = 0; i < PDQ_GRID; i++)
        for (int j = 0; j < PDQ_GRID - 1; j++) {
            float d = ((g[i][j] - g[i][j + 1]) * 100) / 255;
            d = fabsf(d) < cap ? d : cap;
            sum += abs((int)d);
        }
    int q = sum / 90;
    return q > 100 ? 100 : q;
}

/* B = D A D^T for the 16 lowest non-DC frequencies. Each sum runs k = 0..63 in order, as in the
 * reference, so float rounding matches. */
static void pdq_dct(const float a[PDQ_GRID][PDQ_GRID], float b[PDQ_DCT][PDQ_DCT])
{
    float t[PDQ_DCT][PDQ_GRID];
    for (int i = 0; i < PDQ_DCT; i++) {
        for (int j = 0; j < PDQ_GRID; j++)
            t[i][j] = 0.0f;
        for (int k = 0; k < PDQ_GRID; k++) {
            const float d = pdq_dct_matrix[i][k];
            for (int j = 0; j < PDQ_GRID; j++)
                t[i][j] += d * a[k][j];
        }
    }
    for (int i = 0; i < PDQ_DCT; i++)
        for (int j = 0; j < PDQ_DCT; j++) {
            float s = 0.0f;
            for (int k = 0; k < PDQ_GRID; k++)
                s += t[i][k] * pdq_dct_matrix[j][k];
            b[i][j] = s;
        }
}

/* k-th smallest (0-based) of v[0..n), reordering v. Values are finite (checked by callers). */
static float select_kth(float *v, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const float pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float tmp = v[i];
                v[i++] = v[j];
                v[j--] = tmp;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

/* One bit per coefficient above the median. The reference's Torben median of 256 values returns
 * the 128th smallest, so at most 128 bits are set. */
static void pdq_bits(const float b[PDQ_DCT][PDQ_DCT], phash_pdq *out)
{
    float v[PDQ_DCT * PDQ_DCT];
    memcpy(v, b, sizeof v);
    const float median = select_kth(v, PDQ_DCT * PDQ_DCT, PDQ_DCT * PDQ_DCT / 2 - 1);
    memset(out->bits, 0, sizeof out->bits);
    for (int k = 0; k < PDQ_DCT * PDQ_DCT; k++)
        if (b[k / PDQ_DCT][k % PDQ_DCT] > median) out->bits[k / 8] |= (uint8_t)(1u << (k % 8));
}

static ex_rc check_size(const float *luma, int w, int h, ex_error *e)
{
    if (!luma || w <= 0 || h <= 0)
        return ex_fail(e, EX_EINVAL, "phash_bad_size",
                       "cannot hash a %dx%d image (or no pixels were given)", w, h);
    return EX_OK;
}

/* The shared front half: the 16x16 DCT and quality. *tiny is set for images the reference leaves
 * unhashed. */
static ex_rc pdq_front(const float *luma, int w, int h, float b[PDQ_DCT][PDQ_DCT], int *quality,
                       int *tiny, ex_error *e)
{
    ex_rc rc = check_size(luma, w, h, e);
    if (rc) return rc;
    *tiny = w < PDQ_MIN_DIM || h < PDQ_MIN_DIM;
    if (*tiny) {
        *quality = 0;
        return EX_OK;
    }
    tables_ensure();
    float g[PDQ_GRID][PDQ_GRID];
    rc = pdq_downsample(luma, w, h, g, e);
    if (rc) return rc;
    *quality = pdq_quality(g);
    pdq_dct(g, b);
    if (!all_finite(&b[0][0], PDQ_DCT * PDQ_DCT))
        return ex_fail(e, EX_EINVAL, "phash_not_finite", "luma values too large to transform");
    return EX_OK;
}

ex_rc phash_pdq_compute(const float *luma, int w, int h, phash_pdq *out, ex_error *e)
{
    float b[PDQ_DCT][PDQ_DCT];
    int quality, tiny;
    ex_rc rc = pdq_front(luma, w, h, b, &quality, &tiny, e);
    if (rc) return rc;
    if (tiny)
        memset(out->bits, 0, sizeof out->bits);
    else
        pdq_bits(b, out);
    out->quality = quality;
    return EX_OK;
}

/* A rotation or mirror of the image only transposes the DCT block and/or flips the sign of the
 * odd-frequency coefficients along an axis (frequency i+1 is odd when index i is even). So each
 * variant is: optionally transpose, negate where (neg_i && i even) xor (neg_j && j even). */
static const struct {
    unsigned char transpose, neg_i, neg_j;
} dihedral_ops[PHASH_DIH_COUNT] = {
    [PHASH_DIH_ORIGINAL] = {0, 0, 0},   [PHASH_DIH_ROT90] = {1, 0, 1},
    [PHASH_DIH_ROT180] = {0, 1, 1},     [PHASH_DIH_ROT270] = {1, 1, 0},
    [PHASH_DIH_FLIPX] = {0, 1, 0},      [PHASH_DIH_FLIPY] = {0, 0, 1},
    [PHASH_DIH_FLIP_PLUS1] = {1, 0, 0}, [PHASH_DIH_FLIP_MINUS1] = {1, 1, 1},
};

ex_rc phash_pdq_dihedral(const float *luma, int w, int h, phash_pdq out[PHASH_DIH_COUNT],
                         ex_error *e)
{
    float b[PDQ_DCT][PDQ_DCT];
    int quality, tiny;
    ex_rc rc = pdq_front(luma, w, h, b, &quality, &tiny, e);
    if (rc) return rc;
    for (int v = 0; v < PHASH_DIH_COUNT; v++) {
        if (tiny) {
            memset(out[v].bits, 0, sizeof out[v].bits);
        } else {
            float t[PDQ_DCT][PDQ_DCT];
            for (int i = 0; i < PDQ_DCT; i++)
                for (int j = 0; j < PDQ_DCT; j++) {
                    const int neg =
                        (dihedral_ops[v].neg_i && !(i & 1)) ^ (dihedral_ops[v].neg_j && !(j & 1));
                    const float c = neg ? -b[i][j] : b[i][j];
                    if (dihedral_ops[v].transpose)
                        t[j][i] = c;
                    else
                        t[i][j] = c;
                }
            pdq_bits(t, &out[v]);
        }
        out[v].quality = quality;
    }
    return EX_OK;
}

static const char hex_digits[] = "0123456789abcdef";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void phash_pdq_hex(const phash_pdq *h, char out[65])
{
    for (int i = 0; i < 32; i++) {
        const uint8_t byte = h->bits[31 - i];
        out[2 * i] = hex_digits[byte >> 4];
        out[2 * i + 1] = hex_digits[byte & 15];
    }
    out[64] = '\0';
}

int phash_pdq_from_hex(const char *hex, phash_pdq *out)
{
    uint8_t bits[32];
    if (!hex || !out) return -1;
    /* Digit by digit, so a short string stops at its NUL and is never read past. */
    for (int i = 0; i < 64; i++) {
        const int v = hex_value(hex[i]);
        if (v < 0) return -1;
        if (i & 1)
            bits[31 - i / 2] |= (uint8_t)v;
        else
            bits[31 - i / 2] = (uint8_t)(v << 4);
    }
    if (hex[64] != '\0') return -1;
    memcpy(out->bits, bits, sizeof bits);
    out->quality = -1;
    return 0;
}

int phash_bits_distance(const uint8_t a[32], const uint8_t b[32])
{
    int d = 0;
    for (int i = 0; i < 32; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d += __builtin_popcountll(x ^ y);
    }
    return d;
}

int phash_pdq_distance(const phash_pdq *a, const phash_pdq *b)
{
    return phash_bits_distance(a->bits, b->bits);
}

/* ---- resizing ---- */

/* Area-average weights for one axis, n_in -> n_out: output o covers input [o*r, (o+1)*r) with
 * r = n_in / n_out; input pixel s contributes its overlap with that span, normalised. The spans
 * mirror exactly under reversal, so a box resize commutes with flips and rotations (PDQ's
 * dihedral variants stay meaningful), unlike nearest-neighbour. */
typedef struct {
    size_t *first, *count, *start; /* count[o] weights for output o start at weight[start[o]] */
    float *weight;
} axis_weights;

static size_t axis_weight_capacity(int n_in, int n_out)
{
    /* Each output spans at most ceil(n_in/n_out)+1 inputs. */
    return (size_t)n_out * ((size_t)n_in / (size_t)n_out + 2);
}

static void axis_weights_fill(axis_weights *aw, int n_in, int n_out)
{
    size_t at = 0;
    const double r = (double)n_in / n_out;
    for (int o = 0; o < n_out; o++) {
        const double a = o * r, b = (o + 1) * r;
        int s0 = (int)floor(a), s1 = (int)ceil(b);
        if (s1 > n_in) s1 = n_in;
        if (s0 > n_in - 1) s0 = n_in - 1;
        if (s1 <= s0) s1 = s0 + 1;
        aw->first[o] = (size_t)s0;
        aw->count[o] = (size_t)(s1 - s0);
        aw->start[o] = at;
        double total = 0.0;
        for (int s = s0; s < s1; s++) {
            const double lo = a > s ? a : s, hi = b < s + 1 ? b : s + 1;
            const double wgt = hi > lo ? hi - lo : 0.0;
            aw->weight[at + (size_t)(s - s0)] = (float)wgt;
            total += wgt;
        }
        for (int s = s0; s < s1; s++) {
            float *wp = &aw->weight[at + (size_t)(s - s0)];
            *wp = total > 0.0 ? (float)(*wp / total) : 1.0f / (float)(s1 - s0);
        }
        at += (size_t)(s1 - s0);
    }
}

/* Columns first: combining whole input rows is vector work over the full width, and it leaves
 * only oh rows (not h) for the horizontal pass, whose sums are short serial chains. */
static ex_rc resize_box(const float *in, int w, int h, float *out, int ow, int oh, ex_error *e)
{
    const size_t cap_x = axis_weight_capacity(w, ow), cap_y = axis_weight_capacity(h, oh);
    const size_t tmp_n = (size_t)oh * (size_t)w;
    const size_t floats = tmp_n + cap_x + cap_y, idx = 3 * ((size_t)ow + (size_t)oh);
    if (floats > SIZE_MAX / sizeof(float) || idx > SIZE_MAX / sizeof(size_t))
        return ex_fail(e, EX_ENOMEM, "phash_no_memory", "resize %dx%d -> %dx%d is too large", w, h,
                       ow, oh);
    float *fb = malloc(floats * sizeof(float));
    size_t *ib = malloc(idx * sizeof(size_t));
    if (!fb || !ib) {
        free(fb);
        free(ib);
        return ex_fail(e, EX_ENOMEM, "phash_no_memory", "no memory to resize %dx%d -> %dx%d", w, h,
                       ow, oh);
    }
    float *tmp = fb;
    axis_weights ax = {ib, ib + ow, ib + 2 * (size_t)ow, fb + tmp_n};
    axis_weights ay = {ib + 3 * (size_t)ow, ib + 3 * (size_t)ow + oh,
                       ib + 3 * (size_t)ow + 2 * (size_t)oh, fb + tmp_n + cap_x};
    axis_weights_fill(&ax, w, ow);
    axis_weights_fill(&ay, h, oh);

    for (int o = 0; o < oh; o++) {
        float *t = tmp + (size_t)o * w;
        const float *wt = ay.weight + ay.start[o];
        for (int x = 0; x < w; x++)
            t[x] = 0.0f;
        for (size_t k = 0; k < ay.count[o]; k++) {
            const float *row = in + (ay.first[o] + k) * (size_t)w;
            const float wk = wt[k];
            const v4f wv = {wk, wk, wk, wk};
            int x = 0;
            for (; x + 4 <= w; x += 4)
                v4_store(t + x, v4_load(t + x) + wv * v4_load(row + x));
            for (; x < w; x++)
                t[x] += wk * row[x];
        }
    }
    for (int o = 0; o < oh; o++) {
        const float *t = tmp + (size_t)o * w;
        float *dst = out + (size_t)o * ow;
        for (int x = 0; x < ow; x++) {
            const float *wt = ax.weight + ax.start[x];
            const float *src = t + ax.first[x];
            float sum = 0.0f;
            for (size_t k = 0; k < ax.count[x]; k++)
                sum += wt[k] * src[k];
            dst[x] = sum;
        }
    }
    free(fb);
    free(ib);
    return EX_OK;
}

ex_rc phash_luma_resize(const float *luma, int w, int h, float *out, int ow, int oh,
                        phash_resize_kind kind, ex_error *e)
{
    if (!luma || !out || w <= 0 || h <= 0 || ow <= 0 || oh <= 0)
        return ex_fail(e, EX_EINVAL, "phash_bad_size", "cannot resize %dx%d to %dx%d", w, h, ow,
                       oh);
    if (kind == PHASH_RESIZE_NEAREST) {
        for (int y = 0; y < oh; y++) {
            const size_t sy = (size_t)((uint64_t)y * (uint64_t)h / (uint64_t)oh);
            for (int x = 0; x < ow; x++) {
                const size_t sx = (size_t)((uint64_t)x * (uint64_t)w / (uint64_t)ow);
                out[(size_t)y * ow + x] = luma[sy * (size_t)w + sx];
            }
        }
        return EX_OK;
    }
    if (kind != PHASH_RESIZE_BOX)
        return ex_fail(e, EX_EINVAL, "phash_bad_resize", "unknown resize kind %d", (int)kind);
    return resize_box(luma, w, h, out, ow, oh, e);
}

/* ---- 64-bit DCT hash ---- */

ex_rc phash_dct64_compute(const float *luma, int w, int h, uint64_t *out, ex_error *e)
{
    ex_rc rc = check_size(luma, w, h, e);
    if (rc) return rc;
    tables_ensure();
    float g[D64_GRID][D64_GRID];
    if (w == D64_GRID && h == D64_GRID) {
        memcpy(g, luma, sizeof g);
    } else {
        rc = phash_luma_resize(luma, w, h, &g[0][0], D64_GRID, D64_GRID, PHASH_RESIZE_BOX, e);
        if (rc) return rc;
    }
    if (!all_finite(&g[0][0], D64_GRID * D64_GRID))
        return ex_fail(e, EX_EINVAL, "phash_not_finite", "luma holds NaN or infinity");

    float t[D64_DCT][D64_GRID], c[D64_DCT * D64_DCT];
    for (int u = 0; u < D64_DCT; u++) {
        for (int x = 0; x < D64_GRID; x++)
            t[u][x] = 0.0f;
        for (int y = 0; y < D64_GRID; y++) {
            const float d = d64_dct_matrix[u][y];
            for (int x = 0; x < D64_GRID; x++)
                t[u][x] += d * g[y][x];
        }
    }
    for (int u = 0; u < D64_DCT; u++)
        for (int v = 0; v < D64_DCT; v++) {
            float s = 0.0f;
            for (int x = 0; x < D64_GRID; x++)
                s += t[u][x] * d64_dct_matrix[v][x];
            c[u * D64_DCT + v] = s;
        }
    if (!all_finite(c, D64_DCT * D64_DCT))
        return ex_fail(e, EX_EINVAL, "phash_not_finite", "luma values too large to transform");

    /* Median of an even count: mean of the two middle values, as classic pHash takes it, so a
     * textured image gets 32 ones. */
    float v[D64_DCT * D64_DCT];
    memcpy(v, c, sizeof v);
    const int n = D64_DCT * D64_DCT;
    const float upper = select_kth(v, n, n / 2);
    float lower = v[0];
    for (int i = 1; i < n / 2; i++) /* select_kth left the n/2 smallest in v[0..n/2) */
        lower = v[i] > lower ? v[i] : lower;
    const float median = (lower + upper) / 2;
    uint64_t hash = 0;
    for (int k = 0; k < n; k++)
        if (c[k] > median) hash |= UINT64_C(1) << k;
    *out = hash;
    return EX_OK;
}

void phash_dct64_hex(uint64_t h, char out[17])
{
    for (int i = 0; i < 16; i++)
        out[i] = hex_digits[(h >> (60 - 4 * i)) & 15];
    out[16] = '\0';
}

int phash_dct64_from_hex(const char *hex, uint64_t *out)
{
    uint64_t v = 0;
    if (!hex || !out) return -1;
    for (int i = 0; i < 16; i++) {
        const int d = hex_value(hex[i]);
        if (d < 0) return -1;
        v = (v << 4) | (uint64_t)d;
    }
    if (hex[16] != '\0') return -1;
    *out = v;
    return 0;
}

int phash_dct64_distance(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}
