/* features.c - SIFT features as visual words, and the geometric decision (see features.h). */
#include "exhibit/features.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <vl/sift.h>

#include "exhibit/embedded.h"
#include "exhibit/phash.h"

/* Detection: a low peak threshold finds keypoints on smooth product shots too; the cap then
 * keeps the strongest. Each octave may use its share of the cap and pass on what it left, so
 * fine detail cannot crowd out the coarse structure that survives shrinking. */
#define PEAK_THRESH 0.004
#define EDGE_THRESH 10.0
#define MAX_OCTAVES 5
static const double octave_share[MAX_OCTAVES] = {0.40, 0.25, 0.15, 0.10, 0.10};

/* ---- vocabulary ---------------------------------------------------------------------------- */

#define HE_BITS 32
static const uint8_t *voc_l1, *voc_l2, *voc_dims;
static int voc_state; /* 0 unknown, 1 ready, -1 missing */

/* The vocabulary file: "EXVOCAB1", u32 K1, K2, D (little-endian), K1*D uint8 first-level
 * centres, K1*K2*D second-level centres, HE_BITS descriptor dimensions for the codes. */
static void vocab_load(void)
{
    for (size_t i = 0; vocab_files[i].name; i++) {
        const unsigned char *p = vocab_files[i].data;
        size_t need = 20 + (size_t)FT_WORDS_L1 * FT_DESC + (size_t)FT_WORDS * FT_DESC + HE_BITS;
        if (strcmp(vocab_files[i].name, "vocab.bin") || vocab_files[i].len != need ||
            memcmp(p, "EXVOCAB1", 8))
            continue;
        uint32_t k1 = p[8] | p[9] << 8, k2 = p[12] | p[13] << 8, d = p[16] | p[17] << 8;
        if (k1 != FT_WORDS_L1 || k2 != FT_WORDS_L2 || d != FT_DESC) continue;
        voc_l1 = p + 20;
        voc_l2 = voc_l1 + (size_t)FT_WORDS_L1 * FT_DESC;
        voc_dims = voc_l2 + (size_t)FT_WORDS * FT_DESC;
        voc_state = 1;
        return;
    }
    voc_state = -1;
}

ex_rc ft_vocab_ready(ex_error *e)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, vocab_load);
    if (voc_state != 1)
        return ex_fail(e, EX_EINTERNAL, "ft_no_vocabulary",
                       "the embedded visual vocabulary is missing or corrupt; rebuild exhibit");
    return EX_OK;
}

static uint32_t ssd(const uint8_t *a, const uint8_t *b)
{
    uint32_t s = 0;
    for (int i = 0; i < FT_DESC; i++) {
        int d = (int)a[i] - (int)b[i];
        s += (uint32_t)(d * d);
    }
    return s;
}

static int nearest(const uint8_t *desc, const uint8_t *centres, int k)
{
    int best = 0;
    uint32_t bd = UINT32_MAX;
    for (int i = 0; i < k; i++) {
        uint32_t d = ssd(desc, centres + (size_t)i * FT_DESC);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

uint32_t ft_word(const uint8_t desc[FT_DESC], uint32_t *code)
{
    int a = nearest(desc, voc_l1, FT_WORDS_L1);
    int b = nearest(desc, voc_l2 + (size_t)a * FT_WORDS_L2 * FT_DESC, FT_WORDS_L2);
    uint32_t w = (uint32_t)(a * FT_WORDS_L2 + b);
    if (code) {
        const uint8_t *c = voc_l2 + (size_t)w * FT_DESC;
        uint32_t bits = 0;
        for (int i = 0; i < HE_BITS; i++)
            if (desc[voc_dims[i]] > c[voc_dims[i]]) bits |= 1u << i;
        *code = bits;
    }
    return w;
}

/* ---- extraction ---------------------------------------------------------------------------- */

/* The descriptor of the same keypoint in the left-right mirrored image. VLFeat stores bin
 * (t, x, y) at t + 8 x + 32 y in the keypoint's frame; mirroring the image mirrors that frame
 * (its x axis now points along pi - angle) and reverses the direction of every gradient. */
static void mirror_desc(const uint8_t in[FT_DESC], uint8_t out[FT_DESC])
{
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int t = 0; t < 8; t++)
                out[((8 - t) & 7) + 8 * x + 32 * (3 - y)] = in[t + 8 * x + 32 * y];
}

typedef struct cand {
    float x, y, sigma, angle, peak;
    uint8_t desc[FT_DESC];
} cand;

static int by_peak(const void *a, const void *b)
{
    float x = ((const cand *)a)->peak, y = ((const cand *)b)->peak;
    return x > y ? -1 : x < y;
}

/* The shrunk, 0..1 image features are found on: about FT_AREA pixels whatever the shape, so a
 * photo inside a tall phone screenshot keeps its detail, but never upscaled and never more
 * than FT_MAX_SIDE on a side. */
static float *normalise(const float *luma, int w, int h, int *ow, int *oh, ex_error *e)
{
    double s = sqrt((double)FT_AREA / ((double)w * h));
    int long_side = w > h ? w : h;
    if (s * long_side > FT_MAX_SIDE) s = (double)FT_MAX_SIDE / long_side;
    if (s > 1) s = 1;
    int nw = (int)(w * s + 0.5), nh = (int)(h * s + 0.5);
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;
    float *img = malloc((size_t)nw * nh * sizeof *img);
    if (!img) {
        ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
        return NULL;
    }
    if (phash_luma_resize(luma, w, h, img, nw, nh, PHASH_RESIZE_BOX, e)) {
        free(img);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)nw * nh; i++)
        img[i] *= 1.0f / 255.0f;
    *ow = nw;
    *oh = nh;
    return img;
}

ex_rc ft_describe(const float *luma, int w, int h, float **kp_out, uint8_t **desc_out,
                  size_t *n_out, int *sw, int *sh, ex_error *e)
{
    if (!luma || w <= 0 || h <= 0 || (int64_t)w * h > (1 << 28))
        return ex_fail(e, EX_EINVAL, "ft_bad_image", "no image or a bad size");
    int nw, nh;
    float *img = normalise(luma, w, h, &nw, &nh, e);
    if (!img) return e && e->code[0] ? EX_ENOMEM : EX_ENOMEM;
    cand *cs = malloc(FT_MAX_FEATS * sizeof *cs);
    VlSiftFilt *sf = (nw >= 16 && nh >= 16) ? vl_sift_new(nw, nh, MAX_OCTAVES, 3, 0) : NULL;
    size_t n = 0;
    if (!cs) {
        free(img);
        vl_sift_delete(sf);
        return ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
    }
    if (sf) {
        vl_sift_set_peak_thresh(sf, PEAK_THRESH);
        vl_sift_set_edge_thresh(sf, EDGE_THRESH);
        double carry = 0;
        int err = vl_sift_process_first_octave(sf, img);
        for (int o = 0; !err && o < MAX_OCTAVES; o++, err = vl_sift_process_next_octave(sf)) {
            vl_sift_detect(sf);
            int m = vl_sift_get_nkeypoints(sf);
            const VlSiftKeypoint *k = vl_sift_get_keypoints(sf);
            int ow = vl_sift_get_octave_width(sf), oh = vl_sift_get_octave_height(sf);
            int smin = sf->s_min, levels = sf->s_max - sf->s_min;
            /* Strongest first within the octave (|DoG| at the keypoint). */
            float *peak = malloc((size_t)(m ? m : 1) * sizeof *peak);
            int *order = malloc((size_t)(m ? m : 1) * sizeof *order);
            if (!peak || !order) {
                free(peak);
                free(order);
                break;
            }
            for (int i = 0; i < m; i++) {
                int s = k[i].is - smin;
                int ix = k[i].ix, iy = k[i].iy;
                float v = 0;
                if (s >= 0 && s < levels && ix >= 0 && ix < ow && iy >= 0 && iy < oh)
                    v = fabsf(sf->dog[(size_t)s * ow * oh + (size_t)iy * ow + ix]);
                peak[i] = v;
                order[i] = i;
            }
            for (int i = 1; i < m; i++) { /* insertion sort: m is small after the threshold */
                int t = order[i], j = i;
                while (j > 0 && peak[order[j - 1]] < peak[t])
                    order[j] = order[j - 1], j--;
                order[j] = t;
            }
            double quota = FT_MAX_FEATS * octave_share[o] + carry;
            size_t start = n;
            for (int i = 0; i < m && n < FT_MAX_FEATS && (double)(n - start) < quota; i++) {
                const VlSiftKeypoint *kp = &k[order[i]];
                double ang[4];
                int na = vl_sift_calc_keypoint_orientations(sf, ang, kp);
                for (int a = 0; a < na && n < FT_MAX_FEATS; a++) {
                    vl_sift_pix d[FT_DESC];
                    vl_sift_calc_keypoint_descriptor(sf, d, kp, ang[a]);
                    cand *c = &cs[n++];
                    c->x = kp->x;
                    c->y = kp->y;
                    c->sigma = kp->sigma;
                    c->angle = (float)ang[a];
                    c->peak = peak[order[i]];
                    for (int j = 0; j < FT_DESC; j++) {
                        float v = 512.0f * d[j];
                        c->desc[j] = (uint8_t)(v > 255.0f ? 255 : v);
                    }
                }
            }
            carry = quota - (double)(n - start);
            if (carry < 0) carry = 0;
            free(peak);
            free(order);
        }
        vl_sift_delete(sf);
    }
    free(img);
    qsort(cs, n, sizeof *cs, by_peak);
    float *kp = malloc((n ? n : 1) * 4 * sizeof *kp);
    uint8_t *desc = malloc((n ? n : 1) * FT_DESC);
    if (!kp || !desc) {
        free(cs);
        free(kp);
        free(desc);
        return ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        kp[4 * i] = cs[i].x;
        kp[4 * i + 1] = cs[i].y;
        kp[4 * i + 2] = cs[i].sigma;
        kp[4 * i + 3] = cs[i].angle;
        memcpy(desc + i * FT_DESC, cs[i].desc, FT_DESC);
    }
    free(cs);
    *kp_out = kp;
    *desc_out = desc;
    *n_out = n;
    *sw = nw;
    *sh = nh;
    return EX_OK;
}

static int by_word(const void *a, const void *b)
{
    const ft_feat *x = a, *y = b;
    return x->word < y->word ? -1 : x->word > y->word;
}

void ft_free(ft_set *s)
{
    if (!s) return;
    free(s->f);
    free(s->m);
    free(s);
}

ex_rc ft_extract(const float *luma, int w, int h, ft_set **out, ex_error *e)
{
    ex_rc rc = ft_vocab_ready(e);
    if (rc) return rc;
    float *kp = NULL;
    uint8_t *desc = NULL;
    size_t n = 0;
    int sw = 0, sh = 0;
    if ((rc = ft_describe(luma, w, h, &kp, &desc, &n, &sw, &sh, e))) return rc;
    ft_set *s = calloc(1, sizeof *s);
    if (s) {
        s->f = malloc((n ? n : 1) * sizeof *s->f);
        s->m = malloc((n ? n : 1) * sizeof *s->m);
    }
    if (!s || !s->f || !s->m) {
        ft_free(s);
        free(kp);
        free(desc);
        return ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
    }
    s->w = sw;
    s->h = sh;
    for (size_t i = 0; i < n; i++) {
        uint8_t md[FT_DESC];
        ft_feat *f = &s->f[i], *m = &s->m[i];
        f->word = ft_word(desc + i * FT_DESC, &f->code);
        f->x = kp[4 * i];
        f->y = kp[4 * i + 1];
        f->scale = kp[4 * i + 2];
        f->angle = kp[4 * i + 3];
        mirror_desc(desc + i * FT_DESC, md);
        m->word = ft_word(md, &m->code);
        m->x = (float)(sw - 1) - f->x;
        m->y = f->y;
        m->scale = f->scale;
        m->angle = (float)M_PI - f->angle;
    }
    s->n = s->nm = n;
    qsort(s->f, n, sizeof *s->f, by_word);
    qsort(s->m, n, sizeof *s->m, by_word);
    free(kp);
    free(desc);
    *out = s;
    return EX_OK;
}

/* ---- serialisation ------------------------------------------------------------------------- */

/* "FT" u8 format, u8 vocabulary version, u16 w, h, n; per feature: u16 word, u32 code, u16 x*64,
 * u16 y*64, u8 log2(sigma)*32, u8 angle*256/2pi (all little-endian). */
#define FT_FORMAT 1
#define HDR 10
#define PER 12

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static unsigned get16(const uint8_t *p)
{
    return p[0] | (unsigned)p[1] << 8;
}

static unsigned clampq(double v, unsigned hi)
{
    return v <= 0 ? 0 : v >= hi ? hi : (unsigned)(v + 0.5);
}

ex_rc ft_serialize(const ft_set *s, uint8_t **buf, size_t *len, ex_error *e)
{
    if (!s || !buf || !len) return ex_fail(e, EX_EINVAL, "ft_bad_args", "bad arguments");
    size_t n = s->n, total = HDR + n * PER;
    uint8_t *p = malloc(total);
    if (!p) return ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
    p[0] = 'F';
    p[1] = 'T';
    p[2] = FT_FORMAT;
    p[3] = FT_VOCAB_VERSION;
    put16(p + 4, (unsigned)s->w);
    put16(p + 6, (unsigned)s->h);
    put16(p + 8, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        const ft_feat *f = &s->f[i];
        uint8_t *q = p + HDR + i * PER;
        double ang = fmod(f->angle, 2 * M_PI);
        if (ang < 0) ang += 2 * M_PI;
        put16(q, f->word);
        q[2] = (uint8_t)f->code;
        q[3] = (uint8_t)(f->code >> 8);
        q[4] = (uint8_t)(f->code >> 16);
        q[5] = (uint8_t)(f->code >> 24);
        put16(q + 6, clampq(f->x * 64.0, 65535));
        put16(q + 8, clampq(f->y * 64.0, 65535));
        q[10] = (uint8_t)clampq(log2(f->scale > 1 ? f->scale : 1) * 32.0, 255);
        q[11] = (uint8_t)(clampq(ang * 256.0 / (2 * M_PI), 256) & 255);
    }
    *buf = p;
    *len = total;
    return EX_OK;
}

ex_rc ft_parse(const uint8_t *p, size_t len, ft_set **out, ex_error *e)
{
    if (!p || !out) return ex_fail(e, EX_EINVAL, "ft_bad_args", "bad arguments");
    if (len < HDR || p[0] != 'F' || p[1] != 'T' || p[2] != FT_FORMAT || p[3] != FT_VOCAB_VERSION)
        return ex_fail(e, EX_EINVAL, "ft_corrupt", "not a feature set of this version");
    unsigned w = get16(p + 4), h = get16(p + 6), n = get16(p + 8);
    if (w == 0 || h == 0 || w > FT_MAX_SIDE || h > FT_MAX_SIDE || n > FT_MAX_FEATS ||
        len != HDR + (size_t)n * PER)
        return ex_fail(e, EX_EINVAL, "ft_corrupt", "feature set has a bad size");
    ft_set *s = calloc(1, sizeof *s);
    if (!s || !(s->f = malloc((n ? n : 1) * sizeof *s->f))) {
        ft_free(s);
        return ex_fail(e, EX_ENOMEM, "ft_no_memory", "out of memory");
    }
    s->w = (int)w;
    s->h = (int)h;
    s->n = n;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *q = p + HDR + (size_t)i * PER;
        ft_feat *f = &s->f[i];
        f->word = get16(q);
        f->code = q[2] | (uint32_t)q[3] << 8 | (uint32_t)q[4] << 16 | (uint32_t)q[5] << 24;
        f->x = get16(q + 6) / 64.0f;
        f->y = get16(q + 8) / 64.0f;
        f->scale = exp2f(q[10] / 32.0f);
        f->angle = (float)(q[11] * 2 * M_PI / 256.0);
        if (f->word >= FT_WORDS || f->x > (float)w || f->y > (float)h ||
            (i && f->word < s->f[i - 1].word)) {
            ft_free(s);
            return ex_fail(e, EX_EINVAL, "ft_corrupt", "feature set has a bad feature");
        }
    }
    *out = s;
    return EX_OK;
}

/* ---- verification -------------------------------------------------------------------------- */

/* Decision thresholds (chosen on the evaluation's tuning half; see README). */
#define HE_MAX 9       /* code bits two features of one word may differ in */
#define PER_WORD 24    /* features per word and side considered (bursts of one texture) */
#define MAX_PAIRS 1500 /* tentative pairs kept */
#define MAX_HYP 400    /* pairs tried as hypotheses */
#define TOL_FRAC 0.025 /* inlier distance, share of the longer side */
#define TOL_MIN 4.0    /* ... but at least this many pixels */
#define ANGLE_TOL 0.35 /* radians between a pair's angle difference and the model's */
#define SCALE_TOL 0.45 /* |log2| between a pair's scale ratio and the model's */
#define MIN_INLIERS FT_MIN_INLIERS
#define MIN_PLACES 7 /* distinct spots (twice the inlier distance apart) the inliers come from */
#define MIN_RATIO 0.12
#define MIN_COVER 0.30
#define MIN_OVERLAP 0.5 /* of the better-covered image */
#define MAX_ANISO 2.2   /* largest / smallest singular value of the affine map */
#define MIN_SIGMA 1.8   /* smallest SIFT scale the detector finds (octave 0 starts at 1.6) */

typedef struct pair {
    const ft_feat *q, *c;
} pair;

/* Pairs of features with the same word and close codes. A word repeated on both sides (text,
 * a tiled floor) pairs each query feature with its two closest partners, so repeated detail
 * still finds its true partner without a quadratic flood. */
static size_t tentative(const ft_feat *q, size_t nq, const ft_feat *c, size_t nc, pair *out,
                        size_t max)
{
    size_t i = 0, j = 0, n = 0;
    while (i < nq && j < nc && n < max) {
        if (q[i].word < c[j].word) {
            i++;
        } else if (q[i].word > c[j].word) {
            j++;
        } else {
            uint32_t w = q[i].word;
            size_t i1 = i, j1 = j;
            while (i1 < nq && q[i1].word == w)
                i1++;
            while (j1 < nc && c[j1].word == w)
                j1++;
            for (size_t a = i; a < i1 && a < i + PER_WORD && n < max; a++) {
                const ft_feat *b1 = NULL, *b2 = NULL;
                int d1 = HE_MAX + 1, d2 = HE_MAX + 1;
                for (size_t b = j; b < j1 && b < j + PER_WORD; b++) {
                    int d = __builtin_popcount(q[a].code ^ c[b].code);
                    if (d < d1) {
                        b2 = b1, d2 = d1;
                        b1 = &c[b], d1 = d;
                    } else if (d < d2) {
                        b2 = &c[b], d2 = d;
                    }
                }
                if (b1) out[n].q = &q[a], out[n].c = b1, n++;
                if (b2 && n < max) out[n].q = &q[a], out[n].c = b2, n++;
            }
            i = i1;
            j = j1;
        }
    }
    return n;
}

static double wrap_angle(double a)
{
    a = fmod(a, 2 * M_PI);
    if (a > M_PI) a -= 2 * M_PI;
    if (a < -M_PI) a += 2 * M_PI;
    return a;
}

/* Inliers of the map m (c -> q) among pairs; with check_local, each pair's own scale and angle
 * must also agree with the model's. Marks them in in[] and returns their count. */
static int count_inliers(const pair *p, size_t n, const double m[6], double tol2, int check_local,
                         double ds, double da, unsigned char *in)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        double x = p[i].c->x, y = p[i].c->y;
        double px = m[0] * x + m[1] * y + m[2] - p[i].q->x;
        double py = m[3] * x + m[4] * y + m[5] - p[i].q->y;
        int ok = px * px + py * py <= tol2;
        if (ok && check_local) {
            double s = log2(p[i].q->scale / p[i].c->scale) - ds;
            double a = wrap_angle(p[i].q->angle - p[i].c->angle - da);
            ok = fabs(s) <= SCALE_TOL && fabs(a) <= ANGLE_TOL;
        }
        in[i] = (unsigned char)ok;
        k += ok;
    }
    return k;
}

/* Least-squares affine map from the inliers (c -> q); 0 when degenerate. */
static int fit_affine(const pair *p, size_t n, const unsigned char *in, double m[6])
{
    double sxx = 0, sxy = 0, syy = 0, sx = 0, sy = 0, cnt = 0;
    double bx[3] = {0}, by[3] = {0};
    for (size_t i = 0; i < n; i++) {
        if (!in[i]) continue;
        double x = p[i].c->x, y = p[i].c->y, u = p[i].q->x, v = p[i].q->y;
        sxx += x * x, sxy += x * y, syy += y * y, sx += x, sy += y, cnt += 1;
        bx[0] += x * u, bx[1] += y * u, bx[2] += u;
        by[0] += x * v, by[1] += y * v, by[2] += v;
    }
    if (cnt < 3) return 0;
    double A[3][3] = {{sxx, sxy, sx}, {sxy, syy, sy}, {sx, sy, cnt}};
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
                 A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    if (fabs(det) < 1e-9 * (sxx + syy + 1) * (sxx + syy + 1) * cnt) return 0;
    double inv[3][3];
    inv[0][0] = (A[1][1] * A[2][2] - A[1][2] * A[2][1]) / det;
    inv[0][1] = (A[0][2] * A[2][1] - A[0][1] * A[2][2]) / det;
    inv[0][2] = (A[0][1] * A[1][2] - A[0][2] * A[1][1]) / det;
    inv[1][0] = (A[1][2] * A[2][0] - A[1][0] * A[2][2]) / det;
    inv[1][1] = (A[0][0] * A[2][2] - A[0][2] * A[2][0]) / det;
    inv[1][2] = (A[0][2] * A[1][0] - A[0][0] * A[1][2]) / det;
    inv[2][0] = (A[1][0] * A[2][1] - A[1][1] * A[2][0]) / det;
    inv[2][1] = (A[0][1] * A[2][0] - A[0][0] * A[2][1]) / det;
    inv[2][2] = (A[0][0] * A[1][1] - A[0][1] * A[1][0]) / det;
    for (int r = 0; r < 3; r++) {
        m[r] = inv[r][0] * bx[0] + inv[r][1] * bx[1] + inv[r][2] * bx[2];
        m[3 + r] = inv[r][0] * by[0] + inv[r][1] * by[1] + inv[r][2] * by[2];
    }
    return 1;
}

/* Singular values of the 2x2 part of m. */
static void singular(const double m[6], double *smax, double *smin)
{
    double a = m[0], b = m[1], c = m[3], d = m[4];
    double s1 = a * a + b * b + c * c + d * d;
    double s2 = sqrt((a * a + b * b - c * c - d * d) * (a * a + b * b - c * c - d * d) +
                     4 * (a * c + b * d) * (a * c + b * d));
    *smax = sqrt((s1 + s2) / 2);
    *smin = sqrt(fmax((s1 - s2) / 2, 0));
}

static int inside(double x, double y, int w, int h)
{
    return x >= 0 && y >= 0 && x <= w - 1 && y <= h - 1;
}

/* One direction of the test (q's features as given, normal or mirrored). */
static void verify_one(const ft_set *q, const ft_feat *qf, size_t nq, const ft_set *c, pair *p,
                       unsigned char *in, unsigned char *best_in, ft_result *r)
{
    memset(r, 0, sizeof *r);
    size_t n = tentative(qf, nq, c->f, c->n, p, MAX_PAIRS);
    r->tentative = (int)n;
    if (n < MIN_INLIERS) return;
    double side = q->w > q->h ? q->w : q->h;
    double tol = fmax(TOL_MIN, TOL_FRAC * side), tol2 = tol * tol;
    int best = 0;
    double bm[6] = {0}, bds = 0, bda = 0;
    /* 1-point hypotheses: each pair's scale and angle fix a similarity. */
    size_t step = n > MAX_HYP ? n / MAX_HYP : 1;
    for (size_t h = 0; h < n; h += step) {
        const ft_feat *a = p[h].q, *b = p[h].c;
        double s = a->scale / b->scale, th = a->angle - b->angle;
        double m[6] = {s * cos(th), -s * sin(th), 0, s * sin(th), s * cos(th), 0};
        m[2] = a->x - (m[0] * b->x + m[1] * b->y);
        m[5] = a->y - (m[3] * b->x + m[4] * b->y);
        int k = count_inliers(p, n, m, tol2, 1, log2(s), th, in);
        if (k > best) {
            best = k;
            memcpy(bm, m, sizeof bm);
            bds = log2(s);
            bda = th;
            memcpy(best_in, in, n);
        }
    }
    if (best < MIN_INLIERS) {
        r->inliers = best;
        return;
    }
    /* Refine to an affine map (a tilt seen from the side, a stretched screenshot), twice. */
    for (int it = 0; it < 2; it++) {
        double m[6];
        if (!fit_affine(p, n, best_in, m)) break;
        int k = count_inliers(p, n, m, tol2, 0, 0, 0, in);
        if (k < best) break;
        best = k;
        memcpy(bm, m, sizeof bm);
        memcpy(best_in, in, n);
    }
    (void)bds;
    (void)bda;
    r->inliers = best;
    memcpy(r->a, bm, sizeof bm);
    /* The overlap: c's features that land inside q, and q's that come from inside c. */
    double smax, smin;
    singular(bm, &smax, &smin);
    double det = bm[0] * bm[4] - bm[1] * bm[3];
    if (smin <= 1e-6 || smax / smin > MAX_ANISO || fabs(det) < 1e-6) return;
    double iv[6] = {bm[4] / det, -bm[1] / det, 0, -bm[3] / det, bm[0] / det, 0};
    iv[2] = -(iv[0] * bm[2] + iv[1] * bm[5]);
    iv[5] = -(iv[3] * bm[2] + iv[4] * bm[5]);
    /* Features either side could have had a partner for: inside the other image once mapped,
     * and at a scale the other image could still detect (a photo shrunk into a frame loses its
     * finest keypoints; those are not missing partners). */
    double sc = sqrt(fabs(det));
    int q_in = 0, c_in = 0;
    double ob[4] = {1e9, 1e9, -1e9, -1e9}; /* extent of c's countable features */
    double oq[4] = {1e9, 1e9, -1e9, -1e9}; /* and of q's */
    for (size_t i = 0; i < nq; i++) {
        double x = iv[0] * qf[i].x + iv[1] * qf[i].y + iv[2];
        double y = iv[3] * qf[i].x + iv[4] * qf[i].y + iv[5];
        if (!inside(x, y, c->w, c->h) || qf[i].scale / sc < MIN_SIGMA) continue;
        q_in++;
        oq[0] = fmin(oq[0], qf[i].x), oq[1] = fmin(oq[1], qf[i].y);
        oq[2] = fmax(oq[2], qf[i].x), oq[3] = fmax(oq[3], qf[i].y);
    }
    for (size_t i = 0; i < c->n; i++) {
        double x = bm[0] * c->f[i].x + bm[1] * c->f[i].y + bm[2];
        double y = bm[3] * c->f[i].x + bm[4] * c->f[i].y + bm[5];
        if (!inside(x, y, q->w, q->h) || c->f[i].scale * sc < MIN_SIGMA) continue;
        c_in++;
        ob[0] = fmin(ob[0], c->f[i].x), ob[1] = fmin(ob[1], c->f[i].y);
        ob[2] = fmax(ob[2], c->f[i].x), ob[3] = fmax(ob[3], c->f[i].y);
    }
    /* The inliers' extent in each image; coverage compares c's with the extent of the
     * features that could have matched, so a photo whose detail sits in one corner is not
     * penalised while a shared logo or caption on two different photos is. */
    double qb[4] = {1e9, 1e9, -1e9, -1e9}, cb[4] = {1e9, 1e9, -1e9, -1e9};
    for (size_t i = 0; i < n; i++) {
        if (!best_in[i]) continue;
        qb[0] = fmin(qb[0], p[i].q->x), qb[1] = fmin(qb[1], p[i].q->y);
        qb[2] = fmax(qb[2], p[i].q->x), qb[3] = fmax(qb[3], p[i].q->y);
        cb[0] = fmin(cb[0], p[i].c->x), cb[1] = fmin(cb[1], p[i].c->y);
        cb[2] = fmax(cb[2], p[i].c->x), cb[3] = fmax(cb[3], p[i].c->y);
    }
    for (int k = 0; k < 4; k++) {
        r->q_box[k] = qb[k] / (k % 2 ? q->h : q->w);
        r->c_box[k] = cb[k] / (k % 2 ? c->h : c->w);
    }
    /* On both sides, the inliers' box against the extent of the features that could have
     * matched: a copy agrees across its detail; two photos that share only a caption or a
     * watermark agree in a strip of it. */
    double oa = (ob[2] - ob[0]) * (ob[3] - ob[1]), ca = (cb[2] - cb[0]) * (cb[3] - cb[1]);
    double qa = (oq[2] - oq[0]) * (oq[3] - oq[1]), qi = (qb[2] - qb[0]) * (qb[3] - qb[1]);
    r->coverage = fmin(oa > 0 ? fmin(1.0, ca / oa) : 0, qa > 0 ? fmin(1.0, qi / qa) : 0);
    /* Agreement must come from many places: the corners of two different objects cut out
     * onto white agree under some affine map (any rectangle maps onto any other), each corner
     * at several scales, which can make a dozen inliers at four spots. */
    int places = 0;
    double(*spot)[2] = malloc((size_t)best * sizeof *spot);
    for (size_t i = 0; spot && i < n; i++) {
        if (!best_in[i]) continue;
        int near = 0;
        for (int k = 0; k < places && !near; k++) {
            double dx = p[i].q->x - spot[k][0], dy = p[i].q->y - spot[k][1];
            near = dx * dx + dy * dy < 4 * tol2;
        }
        if (!near) spot[places][0] = p[i].q->x, spot[places][1] = p[i].q->y, places++;
    }
    free(spot);
    r->places = places;
    /* How much of each picture the other covers: a copy, crop or frame of one photo overlaps
     * at least one of the two almost whole; two photos that only share a caption band meet
     * in a strip of both. */
    int in_q = 0, in_c = 0;
    for (int gy = 0; gy < 16; gy++)
        for (int gx = 0; gx < 16; gx++) {
            double x = (gx + 0.5) * c->w / 16.0, y = (gy + 0.5) * c->h / 16.0;
            in_q +=
                inside(bm[0] * x + bm[1] * y + bm[2], bm[3] * x + bm[4] * y + bm[5], q->w, q->h);
            x = (gx + 0.5) * q->w / 16.0, y = (gy + 0.5) * q->h / 16.0;
            in_c +=
                inside(iv[0] * x + iv[1] * y + iv[2], iv[3] * x + iv[4] * y + iv[5], c->w, c->h);
        }
    r->overlap = (in_q > in_c ? in_q : in_c) / 256.0;
    r->q_in = q_in;
    r->c_in = c_in;
    /* Both images must agree over the overlap: a caption shared by two different photos is
     * all of the overlap in the one scaled up to it, a small part of it in the other. */
    int more = q_in > c_in ? q_in : c_in;
    r->ratio = more > 0 ? (double)best / more : 0;
    r->match = best >= MIN_INLIERS && places >= MIN_PLACES && r->ratio >= MIN_RATIO &&
               r->coverage >= MIN_COVER && r->overlap >= MIN_OVERLAP;
}

void ft_verify(const ft_set *q, const ft_set *c, ft_result *r)
{
    memset(r, 0, sizeof *r);
    if (!q || !c || !q->n || !c->n) return;
    pair *p = malloc(MAX_PAIRS * sizeof *p);
    unsigned char *in = malloc(MAX_PAIRS), *best_in = malloc(MAX_PAIRS);
    if (p && in && best_in) {
        verify_one(q, q->f, q->n, c, p, in, best_in, r);
        if (!r->match && q->nm) {
            ft_result m;
            verify_one(q, q->m, q->nm, c, p, in, best_in, &m);
            if (m.match || m.inliers > r->inliers) {
                /* Boxes in the unmirrored query's terms. */
                double x0 = m.q_box[0];
                m.q_box[0] = 1 - m.q_box[2];
                m.q_box[2] = 1 - x0;
                *r = m;
                r->mirrored = 1;
            }
        }
    }
    free(p);
    free(in);
    free(best_in);
}
