/* reuse_eval.c - variant families, hard negatives, detector adapters and the scoring run of the
 * reuse-detection evaluation (see reuse_eval.h). Linked into build/tools/eval_reuse and
 * build/asan/tests/test_reuse_eval; it is not a tool by itself. */
#include "reuse_eval.h"

#include "exhibit/hindex.h"
#include "exhibit/image.h"
#include "exhibit/matcher.h"
#include "exhibit/reuse.h"
#include "exhibit/phash.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- randomness -------------------------------------------------------------------------- */

void re_rng_seed(re_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t re_rng_next(re_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double re_rng_uniform(re_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)(re_rng_next(r) >> 11) / 9007199254740992.0;
}

int re_rng_int(re_rng *r, int lo, int hi)
{
    return lo + (int)(re_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

int re_split_of(const char *path)
{
    const char *base = strrchr(path, '/');
    re_rng r;
    /* one mixing round, so names differing in the last character still split evenly */
    re_rng_seed(&r, fnv1a(base ? base + 1 : path));
    return (int)(re_rng_next(&r) & 1);
}

/* ---- families ---------------------------------------------------------------------------- */

const re_family_info re_families[RE_FAMILIES] = {
    [RE_JPEG] = {"jpeg re-encode", "q 30-95", RE_BENIGN, 0.99},
    [RE_RESIZE] = {"resize", "scale 0.25-0.9", RE_BENIGN, 0.99},
    [RE_ROTATE] = {"rotate 90/180/270", "one of the three", RE_BENIGN, 0.99},
    [RE_MIRROR] = {"mirror", "left-right", RE_BENIGN, 0.99},
    [RE_TONE] = {"brightness/contrast", "gain 0.6-1.5 about mid-grey, offset -40..40", RE_BENIGN,
                 0.99},
    [RE_GREY] = {"greyscale", "", RE_BENIGN, 0.99},
    [RE_BLUR] = {"blur", "gaussian sigma 0.5-3", RE_BENIGN, 0.99},
    [RE_CROP] = {"crop", "35-95% of the area, any aspect, anywhere", RE_EDIT, 0.95},
    [RE_TILT] = {"tilt, black corners", "1-15 degrees either way", RE_EDIT, 0.95},
    [RE_TILT_CROP] = {"tilt, corners cut", "1-15 degrees, largest upright rectangle", RE_EDIT,
                      0.95},
    [RE_PERSPECTIVE] = {"perspective (screen)", "keystone 5-15%, bezel, blur, brightness", RE_EDIT,
                        0.95},
    [RE_BORDER] = {"border", "3-20% per side, random colour", RE_EDIT, 0.95},
    [RE_SCREENSHOT] = {"phone screenshot png", "1170x2532, light/dark, caption, status bar",
                       RE_EDIT, 0.95},
    [RE_STICKER] = {"sticker", "rectangle/ellipse 3-20% of the area", RE_EDIT, 0.95},
    [RE_TEXTBAND] = {"text band", "any edge, 5-20% thick", RE_EDIT, 0.95},
    [RE_WATERMARK] = {"watermark", "text, opacity 0.3-0.7, anywhere", RE_EDIT, 0.95},
    [RE_JPEG15] = {"jpeg q15", "after a 60-100% resize", RE_EDIT, 0.95},
    [RE_COMBO] = {"combo of 2-3", "crop>=50%, tilt<=8, border, overlay, q30-60", RE_EDIT, 0.95},
};

/* ---- libvips building blocks ------------------------------------------------------------- */

static const char *const captions[] = {
    "SOLD  order #48213",  "Brand new, never used", "Great condition!!",
    "Free shipping today", "Original box incl.",    "see more on my page",
    "DM for price",        "LIMITED EDITION",       "Delivered 12/03 - damaged",
    "My listing #2291",
};
#define NCAPTIONS (int)(sizeof captions / sizeof captions[0])

static void desc_add(char *desc, size_t desc_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void desc_add(char *desc, size_t desc_len, const char *fmt, ...)
{
    const size_t used = strnlen(desc, desc_len);
    if (used + 1 >= desc_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc + used, desc_len - used, fmt, ap);
    va_end(ap);
}

/* Times for the phone's status bar. */
static const char *const clocks[] = {"9:41", "10:28", "12:05", "7:56", "3:17", "11:52"};
#define NCLOCKS (int)(sizeof clocks / sizeof clocks[0])

/* Every text is drawn once, large, and scaled to each box. vips_text cannot be called from
 * worker threads: pango's own font-loading thread races with the font-map cache clear that
 * libvips 8.14 does on every call, and GLib dies in g_hash_table_remove (SIGFPE), whatever
 * lock we hold. Drawn once inside pthread_once, the masks are then only read; they stay for
 * the life of the process. */
static VipsImage *text_masks[NCAPTIONS + NCLOCKS];
static pthread_once_t text_once = PTHREAD_ONCE_INIT;

static void text_draw_all(void)
{
    for (int i = 0; i < NCAPTIONS + NCLOCKS; i++) {
        const char *t = i < NCAPTIONS ? captions[i] : clocks[i - NCAPTIONS];
        if (vips_text(&text_masks[i], t, "font", "DejaVu Sans Bold 100", NULL))
            text_masks[i] = NULL;
    }
}

/* text (one of captions[] or clocks[]) as a 1-band 0..255 mask, as large as fits in bw x bh. */
static int text_mask(const char *text, int bw, int bh, VipsImage **out)
{
    pthread_once(&text_once, text_draw_all);
    for (int i = 0; i < NCAPTIONS + NCLOCKS; i++) {
        const char *t = i < NCAPTIONS ? captions[i] : clocks[i - NCAPTIONS];
        if (strcmp(t, text) != 0) continue;
        VipsImage *m = text_masks[i];
        if (!m) break;
        double s = (double)(bw < 8 ? 8 : bw) / m->Xsize;
        if (m->Ysize * s > (bh < 8 ? 8 : bh)) s = (double)(bh < 8 ? 8 : bh) / m->Ysize;
        return vips_resize(m, out, s, NULL);
    }
    vips_error("reuse_eval", "no mask for text \"%s\"", text);
    return -1;
}

/* img with ink painted through mask placed at (x, y) at the given opacity. */
static int paint_mask(VipsObject *ctx, VipsImage *img, VipsImage *mask, int x, int y,
                      const double ink[3], double opacity, VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 3);
    if (vips_embed(mask, &t[0], x, y, img->Xsize, img->Ysize, NULL) ||
        vips_linear1(t[0], &t[1], opacity, 0.0, "uchar", TRUE, NULL) ||
        !(t[2] = vips_image_new_from_image(img, ink, 3)))
        return -1;
    return vips_ifthenelse(t[1], t[2], img, out, "blend", TRUE, NULL);
}

/* A w x h sRGB rectangle of colour ink. */
static int solid(VipsObject *ctx, int w, int h, const double ink[3], VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    double one[3] = {1, 1, 1}, add[3] = {ink[0], ink[1], ink[2]};
    if (vips_black(&t[0], w, h, "bands", 3, NULL) ||
        vips_linear(t[0], &t[1], one, add, 3, "uchar", TRUE, NULL))
        return -1;
    return vips_copy(t[1], out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL);
}

/* A 1-band uchar image owned by ctx, copied from pixels. */
static int from_memory(VipsObject *ctx, const void *pix, int w, int h, int bands,
                       VipsBandFormat fmt, VipsImage **out)
{
    const size_t sz = (size_t)w * (size_t)h * (size_t)bands * (fmt == VIPS_FORMAT_FLOAT ? 4 : 1);
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 1);
    if (!(t[0] = vips_image_new_from_memory_copy(pix, sz, w, h, bands, fmt))) return -1;
    *out = t[0];
    return 0;
}

static void random_colour(re_rng *r, double c[3])
{
    for (int i = 0; i < 3; i++)
        c[i] = re_rng_int(r, 0, 255);
}

/* A box of `area` (fraction of W x H) with a random aspect, anywhere inside W x H. */
static void random_box(re_rng *r, int W, int H, double area, int *x, int *y, int *w, int *h)
{
    /* fw in [area, 1] log-uniformly, so tall and wide boxes are equally likely */
    const double fw = pow(area, re_rng_uniform(r, 0, 1)), fh = area / fw;
    *w = (int)(W * fw + 0.5);
    *h = (int)(H * fh + 0.5);
    *w = *w < 8 ? 8 : *w > W ? W : *w;
    *h = *h < 8 ? 8 : *h > H ? H : *h;
    *x = re_rng_int(r, 0, W - *w);
    *y = re_rng_int(r, 0, H - *h);
}

/* ---- one edit each ----------------------------------------------------------------------- */

typedef struct op {
    VipsObject *ctx; /* owns every intermediate image */
    re_rng *r;
    char *desc;
    size_t desc_len;
} op;

static int op_crop(op *o, VipsImage *in, double amin, double amax, VipsImage **out)
{
    const double a = re_rng_uniform(o->r, amin, amax);
    int x, y, w, h;
    random_box(o->r, in->Xsize, in->Ysize, a, &x, &y, &w, &h);
    desc_add(o->desc, o->desc_len, "crop %.0f%% %dx%d+%d+%d ", 100 * a, w, h, x, y);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 1);
    if (vips_extract_area(in, &t[0], x, y, w, h, NULL)) return -1;
    *out = t[0];
    return 0;
}

static double random_tilt(re_rng *r, double max)
{
    const double a = re_rng_uniform(r, 1.0, max);
    return re_rng_next(r) & 1 ? a : -a;
}

static int op_tilt(op *o, VipsImage *in, double max, int cut_corners, VipsImage **out)
{
    const double a = random_tilt(o->r, max);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 2);
    if (vips_rotate(in, &t[0], a, NULL)) return -1;
    desc_add(o->desc, o->desc_len, "tilt %.2f deg%s ", a, cut_corners ? " corners cut" : "");
    if (!cut_corners) {
        *out = t[0];
        return 0;
    }
    /* Largest axis-aligned rectangle inside the turned W x H one (the classic closed form). */
    const double W = in->Xsize, H = in->Ysize, s = fabs(sin(a * M_PI / 180)),
                 c = fabs(cos(a * M_PI / 180));
    const int wide = W >= H;
    const double lo = wide ? H : W, hi = wide ? W : H;
    double wr, hr;
    if (lo <= 2 * s * c * hi || fabs(s - c) < 1e-10) {
        const double x = 0.5 * lo;
        wr = wide ? x / s : x / c;
        hr = wide ? x / c : x / s;
    } else {
        const double c2 = c * c - s * s;
        wr = (W * c - H * s) / c2;
        hr = (H * c - W * s) / c2;
    }
    /* a few pixels in from the exact corners, where interpolation still blends in black */
    const int cw = (int)wr - 6, ch = (int)hr - 6;
    if (cw < 8 || ch < 8) return -1;
    if (vips_extract_area(t[0], &t[1], (t[0]->Xsize - cw) / 2, (t[0]->Ysize - ch) / 2, cw, ch,
                          NULL))
        return -1;
    *out = t[1];
    return 0;
}

static int op_border(op *o, VipsImage *in, VipsImage **out)
{
    double c[3];
    random_colour(o->r, c);
    const int W = in->Xsize, H = in->Ysize;
    const int l = (int)(W * re_rng_uniform(o->r, 0.03, 0.20)),
              rt = (int)(W * re_rng_uniform(o->r, 0.03, 0.20)),
              tp = (int)(H * re_rng_uniform(o->r, 0.03, 0.20)),
              b = (int)(H * re_rng_uniform(o->r, 0.03, 0.20));
    desc_add(o->desc, o->desc_len, "border l%d r%d t%d b%d rgb(%.0f,%.0f,%.0f) ", l, rt, tp, b,
             c[0], c[1], c[2]);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 1);
    VipsArrayDouble *bg = vips_array_double_new(c, 3);
    const int rc = vips_embed(in, &t[0], l, tp, W + l + rt, H + tp + b, "extend",
                              VIPS_EXTEND_BACKGROUND, "background", bg, NULL);
    vips_area_unref(VIPS_AREA(bg));
    *out = t[0];
    return rc;
}

static int op_sticker(op *o, VipsImage *in, VipsImage **out)
{
    const int W = in->Xsize, H = in->Ysize;
    const double a = re_rng_uniform(o->r, 0.03, 0.20);
    double c[3];
    random_colour(o->r, c);
    const int ellipse = re_rng_next(o->r) & 1;
    int x, y, w, h;
    random_box(o->r, W, H, a, &x, &y, &w, &h);
    desc_add(o->desc, o->desc_len, "%s %.0f%% %dx%d+%d+%d ", ellipse ? "ellipse" : "rectangle",
             100 * a, w, h, x, y);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 2);
    VipsImage *mask = NULL;
    if (ellipse) {
        uint8_t *m = malloc((size_t)w * (size_t)h);
        if (!m) return -1;
        for (int j = 0; j < h; j++)
            for (int i = 0; i < w; i++) {
                const double u = (i + 0.5) / w * 2 - 1, v = (j + 0.5) / h * 2 - 1;
                m[(size_t)j * w + i] = u * u + v * v <= 1 ? 255 : 0;
            }
        const int rc = from_memory(o->ctx, m, w, h, 1, VIPS_FORMAT_UCHAR, &mask);
        free(m);
        if (rc) return -1;
    } else {
        const double full = 255;
        if (vips_black(&t[0], w, h, NULL) ||
            vips_linear1(t[0], &t[1], 1.0, full, "uchar", TRUE, NULL))
            return -1;
        mask = t[1];
    }
    return paint_mask(o->ctx, in, mask, x, y, c, 1.0, out);
}

static int op_textband(op *o, VipsImage *in, VipsImage **out)
{
    const int W = in->Xsize, H = in->Ysize, edge = re_rng_int(o->r, 0, 3); /* t, b, l, r */
    const int vertical = edge >= 2;
    const double f = re_rng_uniform(o->r, 0.05, 0.20);
    const int thick = (int)((vertical ? W : H) * f), len = vertical ? H : W;
    double c[3];
    random_colour(o->r, c);
    const double lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    const double ink[3] = {lum < 128 ? 255 : 0, lum < 128 ? 255 : 0, lum < 128 ? 255 : 0};
    const char *text = captions[re_rng_int(o->r, 0, NCAPTIONS - 1)];
    static const char *const edges[] = {"top", "bottom", "left", "right"};
    desc_add(o->desc, o->desc_len, "text band %s %.0f%% \"%s\" ", edges[edge], 100 * f, text);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 4);
    /* the band is made horizontal, then turned for the left and right edges */
    if (solid(o->ctx, len, thick, c, &t[0]) || text_mask(text, len * 8 / 10, thick * 6 / 10, &t[1]))
        return -1;
    VipsImage *band = NULL;
    if (paint_mask(o->ctx, t[0], t[1], (len - t[1]->Xsize) / 2, (thick - t[1]->Ysize) / 2, ink, 1.0,
                   &band))
        return -1;
    t[2] = band;
    if (vertical) {
        if (vips_rot(band, &t[3], edge == 2 ? VIPS_ANGLE_D270 : VIPS_ANGLE_D90, NULL)) return -1;
        band = t[3];
    }
    const int x = edge == 3 ? W - thick : 0, y = edge == 1 ? H - thick : 0;
    VipsImage **u = (VipsImage **)vips_object_local_array(o->ctx, 1);
    if (vips_insert(in, band, &u[0], x, y, NULL)) return -1;
    *out = u[0];
    return 0;
}

static int op_watermark(op *o, VipsImage *in, VipsImage **out)
{
    const int W = in->Xsize, H = in->Ysize;
    const char *text = captions[re_rng_int(o->r, 0, NCAPTIONS - 1)];
    const double wf = re_rng_uniform(o->r, 0.3, 0.8), alpha = re_rng_uniform(o->r, 0.3, 0.7);
    /* the text box covers 4-20% of the picture */
    const double hf = re_rng_uniform(o->r, 0.04, 0.20) / wf;
    const int white = re_rng_next(o->r) & 1;
    const double ink[3] = {white ? 255 : 0, white ? 255 : 0, white ? 255 : 0};
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 1);
    if (text_mask(text, (int)(W * wf), (int)(H * (hf > 1 ? 1 : hf)), &t[0])) return -1;
    const int tw = t[0]->Xsize < W ? t[0]->Xsize : W, th = t[0]->Ysize < H ? t[0]->Ysize : H;
    const int x = re_rng_int(o->r, 0, W - tw), y = re_rng_int(o->r, 0, H - th);
    desc_add(o->desc, o->desc_len, "watermark \"%s\" %dx%d+%d+%d opacity %.2f %s ", text, tw, th, x,
             y, alpha, white ? "white" : "black");
    return paint_mask(o->ctx, in, t[0], x, y, ink, alpha, out);
}

static int op_overlay(op *o, VipsImage *in, VipsImage **out)
{
    switch (re_rng_int(o->r, 0, 2)) {
    case 0:
        return op_sticker(o, in, out);
    case 1:
        return op_textband(o, in, out);
    default:
        return op_watermark(o, in, out);
    }
}

/* Solves the 8x8 system for the homography taking dst[i] to src[i] (h[8] = 1). */
static int homography(const double dst[4][2], const double src[4][2], double h[9])
{
    double a[8][9];
    for (int i = 0; i < 4; i++) {
        const double x = dst[i][0], y = dst[i][1], u = src[i][0], v = src[i][1];
        const double r0[9] = {x, y, 1, 0, 0, 0, -u * x, -u * y, u};
        const double r1[9] = {0, 0, 0, x, y, 1, -v * x, -v * y, v};
        memcpy(a[2 * i], r0, sizeof r0);
        memcpy(a[2 * i + 1], r1, sizeof r1);
    }
    for (int c = 0; c < 8; c++) {
        int p = c;
        for (int rr = c + 1; rr < 8; rr++)
            if (fabs(a[rr][c]) > fabs(a[p][c])) p = rr;
        if (fabs(a[p][c]) < 1e-12) return -1;
        for (int k = 0; k < 9; k++) {
            const double tmp = a[c][k];
            a[c][k] = a[p][k];
            a[p][k] = tmp;
        }
        for (int rr = 0; rr < 8; rr++) {
            if (rr == c) continue;
            const double f = a[rr][c] / a[c][c];
            for (int k = c; k < 9; k++)
                a[rr][k] -= f * a[c][k];
        }
    }
    for (int i = 0; i < 8; i++)
        h[i] = a[i][8] / a[i][i];
    h[8] = 1;
    return 0;
}

/* A photo of a screen showing the picture, taken a little from one side: the picture becomes
 * a trapezoid on a dark bezel, slightly soft and brighter or darker. */
static int op_perspective(op *o, VipsImage *in, VipsImage **out)
{
    const int W = in->Xsize, H = in->Ysize, side = re_rng_int(o->r, 0, 3);
    const double k = re_rng_uniform(o->r, 0.05, 0.15), m = re_rng_uniform(o->r, 0.02, 0.08);
    const double sigma = re_rng_uniform(o->r, 0.5, 1.2), gain = re_rng_uniform(o->r, 0.85, 1.15);
    const double bezel = re_rng_int(o->r, 10, 50);
    /* unit-square corners TL, TR, BR, BL with the far edge (u = 1) shorter by k and pulled in */
    double q[4][2] = {
        {m, m}, {1 - m - k / 2, m + k / 2}, {1 - m - k / 2, 1 - m - k / 2}, {m, 1 - m}};
    double dst[4][2];
    for (int i = 0; i < 4; i++) {
        double u = q[i][0], v = q[i][1];
        if (side == 1) u = 1 - u; /* far edge on the left */
        if (side >= 2) {          /* far edge at the bottom or top */
            const double tmp = u;
            u = v;
            v = side == 2 ? tmp : 1 - tmp;
        }
        dst[i][0] = u * W;
        dst[i][1] = v * H;
    }
    /* The source corners go through the same flips, so the picture is turned, never mirrored. */
    double src[4][2];
    for (int i = 0; i < 4; i++) {
        double u = i == 1 || i == 2, v = i >= 2;
        if (side == 1) u = 1 - u;
        if (side >= 2) {
            const double tmp = u;
            u = v;
            v = side == 2 ? tmp : 1 - tmp;
        }
        src[i][0] = u * W;
        src[i][1] = v * H;
    }
    double h[9];
    if (homography(dst, src, h)) return -1;
    float *map = malloc(sizeof(float) * 2 * (size_t)W * (size_t)H);
    uint8_t *mask = malloc((size_t)W * (size_t)H);
    if (!map || !mask) {
        free(map);
        free(mask);
        return -1;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double d = h[6] * x + h[7] * y + h[8];
            const double sx = (h[0] * x + h[1] * y + h[2]) / d,
                         sy = (h[3] * x + h[4] * y + h[5]) / d;
            const size_t i = (size_t)y * W + x;
            const int inside = d > 0 && sx >= 0 && sy >= 0 && sx <= W - 1 && sy <= H - 1;
            map[2 * i] = inside ? (float)sx : 0;
            map[2 * i + 1] = inside ? (float)sy : 0;
            mask[i] = inside ? 255 : 0;
        }
    VipsImage *vmap = NULL, *vmask = NULL;
    int rc = from_memory(o->ctx, map, W, H, 2, VIPS_FORMAT_FLOAT, &vmap) ||
             from_memory(o->ctx, mask, W, H, 1, VIPS_FORMAT_UCHAR, &vmask);
    free(map);
    free(mask);
    if (rc) return -1;
    static const char *const sides[] = {"right", "left", "bottom", "top"};
    desc_add(o->desc, o->desc_len,
             "perspective far %s keystone %.1f%% margin %.1f%% "
             "blur %.2f gain %.2f ",
             sides[side], 100 * k, 100 * m, sigma, gain);
    const double bz[3] = {bezel, bezel, bezel + 5};
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 5);
    if (vips_mapim(in, &t[0], vmap, NULL) || solid(o->ctx, W, H, bz, &t[1]) ||
        vips_ifthenelse(vmask, t[0], t[1], &t[2], NULL) ||
        vips_gaussblur(t[2], &t[3], sigma, NULL) ||
        vips_linear1(t[3], &t[4], gain, 0.0, "uchar", TRUE, NULL))
        return -1;
    *out = t[4];
    return 0;
}

/* The picture as a phone shows it in an app: scaled into a 1170x2532 canvas, light or dark,
 * with a status bar and a caption above or below. */
static int op_screenshot(op *o, VipsImage *in, VipsImage **out)
{
    const int CW = 1170, CH = 2532, bar = 141, home = 100, dark = re_rng_next(o->r) & 1;
    const int above = re_rng_next(o->r) & 1, cap_h = re_rng_int(o->r, 80, 300);
    const char *text = captions[re_rng_int(o->r, 0, NCAPTIONS - 1)];
    const double bg[3] = {dark ? 0 : 255, dark ? 0 : 255, dark ? 0 : 255};
    const double barc[3] = {dark ? 28 : 242, dark ? 28 : 242, dark ? 30 : 247};
    const double ink[3] = {dark ? 255 : 0, dark ? 255 : 0, dark ? 255 : 0};
    const int room = CH - bar - home - cap_h;
    double s = CW * re_rng_uniform(o->r, 0.9, 1.0) / in->Xsize;
    if (in->Ysize * s > room) s = (double)room / in->Ysize;
    const int iw = (int)(in->Xsize * s), ih = (int)(in->Ysize * s);
    const int slack = room - ih;
    const int gap = re_rng_int(o->r, 0, slack > 0 ? slack : 0);
    const int y_img = bar + (above ? cap_h : 0) + gap;
    const int y_cap = above ? bar + gap : y_img + ih;
    const char *clock = clocks[re_rng_int(o->r, 0, NCLOCKS - 1)];
    desc_add(o->desc, o->desc_len, "screenshot %s image %dx%d at y %d, caption %s %dpx \"%s\" ",
             dark ? "dark" : "light", iw, ih, y_img, above ? "above" : "below", cap_h, text);
    VipsImage **t = (VipsImage **)vips_object_local_array(o->ctx, 11);
    if (vips_resize(in, &t[0], s, NULL) || solid(o->ctx, CW, CH, bg, &t[1]) ||
        vips_insert(t[1], t[0], &t[2], (CW - t[0]->Xsize) / 2, y_img, NULL) ||
        solid(o->ctx, CW, bar, barc, &t[3]) || vips_insert(t[2], t[3], &t[4], 0, 0, NULL) ||
        text_mask(clock, 160, 50, &t[5]) ||
        paint_mask(o->ctx, t[4], t[5], 70, 60, ink, 1.0, &t[6]) ||
        solid(o->ctx, 60, 26, ink, &t[7]) || vips_insert(t[6], t[7], &t[8], CW - 130, 70, NULL) ||
        text_mask(text, CW - 120, cap_h * 5 / 10, &t[9]) ||
        paint_mask(o->ctx, t[8], t[9], 60, y_cap + (cap_h - t[9]->Ysize) / 2, ink, 1.0, &t[10]))
        return -1;
    *out = t[10];
    return 0;
}

static int encode(VipsImage *img, int png, int q, void **buf, size_t *len)
{
    return png ? vips_pngsave_buffer(img, buf, len, "strip", TRUE, "compression", 1, NULL)
               : vips_jpegsave_buffer(img, buf, len, "Q", q, "strip", TRUE, NULL);
}

int re_variant_make(VipsImage *img, int family, re_rng *r, void **buf, size_t *len, char *desc,
                    size_t desc_len)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    op o = {ctx, r, desc, desc_len};
    VipsImage *out = img;
    /* every variant also goes through a JPEG encode of its own quality, so repeated draws of
     * the parameter-free families (mirror, greyscale) are still different files */
    int q = re_rng_int(r, 75, 95), png = 0, bad = 0;
    desc[0] = 0;
    switch (family) {
    case RE_JPEG:
        q = re_rng_int(r, 30, 95);
        break;
    case RE_RESIZE: {
        const double s = re_rng_uniform(r, 0.25, 0.9);
        desc_add(desc, desc_len, "scale %.3f ", s);
        bad = vips_resize(img, &t[0], s, NULL);
        out = t[0];
        break;
    }
    case RE_ROTATE: {
        const int k = re_rng_int(r, 1, 3);
        desc_add(desc, desc_len, "rotate %d ", 90 * k);
        bad = vips_rot(img, &t[0],
                       k == 1   ? VIPS_ANGLE_D90
                       : k == 2 ? VIPS_ANGLE_D180
                                : VIPS_ANGLE_D270,
                       NULL);
        out = t[0];
        break;
    }
    case RE_MIRROR:
        bad = vips_flip(img, &t[0], VIPS_DIRECTION_HORIZONTAL, NULL);
        out = t[0];
        break;
    case RE_TONE: {
        const double g = re_rng_uniform(r, 0.6, 1.5), b = re_rng_uniform(r, -40, 40);
        desc_add(desc, desc_len, "gain %.2f offset %.1f ", g, b);
        bad = vips_linear1(img, &t[0], g, 128 - 128 * g + b, "uchar", TRUE, NULL);
        out = t[0];
        break;
    }
    case RE_GREY:
        bad = vips_colourspace(img, &t[0], VIPS_INTERPRETATION_B_W, NULL);
        out = t[0];
        break;
    case RE_BLUR: {
        const double s = re_rng_uniform(r, 0.5, 3.0);
        desc_add(desc, desc_len, "sigma %.2f ", s);
        bad = vips_gaussblur(img, &t[0], s, NULL);
        out = t[0];
        break;
    }
    case RE_CROP:
        bad = op_crop(&o, img, 0.35, 0.95, &out);
        break;
    case RE_TILT:
    case RE_TILT_CROP:
        bad = op_tilt(&o, img, 15.0, family == RE_TILT_CROP, &out);
        break;
    case RE_PERSPECTIVE:
        bad = op_perspective(&o, img, &out);
        break;
    case RE_BORDER:
        bad = op_border(&o, img, &out);
        break;
    case RE_SCREENSHOT:
        bad = op_screenshot(&o, img, &out);
        png = 1;
        break;
    case RE_STICKER:
        bad = op_sticker(&o, img, &out);
        break;
    case RE_TEXTBAND:
        bad = op_textband(&o, img, &out);
        break;
    case RE_WATERMARK:
        bad = op_watermark(&o, img, &out);
        break;
    case RE_JPEG15: {
        const double s = re_rng_uniform(r, 0.6, 1.0);
        desc_add(desc, desc_len, "scale %.3f ", s);
        bad = vips_resize(img, &t[0], s, NULL);
        out = t[0];
        q = 15;
        break;
    }
    case RE_COMBO: {
        /* 2 or 3 distinct steps out of 5, applied in a fixed, natural order */
        enum { C_CROP = 1, C_TILT = 2, C_OVERLAY = 4, C_BORDER = 8, C_JPEG = 16 };
        int pick = 0;
        const int want = re_rng_int(r, 2, 3);
        for (int have = 0; have < want;) {
            const int bit = 1 << re_rng_int(r, 0, 4);
            if (!(pick & bit)) pick |= bit, have++;
        }
        if (pick & C_CROP) bad = bad || op_crop(&o, out, 0.50, 0.95, &out);
        if (pick & C_TILT) bad = bad || op_tilt(&o, out, 8.0, 0, &out);
        if (pick & C_OVERLAY) bad = bad || op_overlay(&o, out, &out);
        if (pick & C_BORDER) bad = bad || op_border(&o, out, &out);
        if (pick & C_JPEG) q = re_rng_int(r, 30, 60);
        break;
    }
    default:
        bad = 1;
        vips_error("reuse_eval", "unknown family %d", family);
    }
    if (!png) desc_add(desc, desc_len, "q%d", q);
    if (!bad) bad = encode(out, png, q, buf, len);
    g_object_unref(ctx);
    return bad ? -1 : 0;
}

int re_catalog_make(VipsImage *img, re_rng *r, void **buf, size_t *len, char *desc, size_t desc_len)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 3);
    op o = {ctx, r, desc, desc_len};
    desc[0] = 0;
    VipsImage *obj = NULL;
    /* square or 4:5, as shops use */
    const int cw = re_rng_int(r, 1000, 1600), ch = re_rng_next(r) & 1 ? cw : cw * 5 / 4;
    const double grey = re_rng_int(r, 240, 255), fill = re_rng_uniform(r, 0.4, 0.8);
    const double white[3] = {grey, grey, grey};
    int bad = op_crop(&o, img, 0.15, 0.50, &obj);
    if (!bad) {
        double s = fill * cw / obj->Xsize;
        if (obj->Ysize * s > fill * ch) s = fill * ch / obj->Ysize;
        bad = vips_resize(obj, &t[0], s, NULL) || solid(ctx, cw, ch, white, &t[1]);
        if (!bad) {
            const int x = re_rng_int(r, 0, cw - t[0]->Xsize),
                      y = re_rng_int(r, 0, ch - t[0]->Ysize);
            desc_add(desc, desc_len, "on %dx%d grey %.0f at %d,%d scale %.2f", cw, ch, grey, x, y,
                     s);
            bad = vips_insert(t[1], t[0], &t[2], x, y, NULL) ||
                  encode(t[2], 0, re_rng_int(r, 80, 95), buf, len);
        }
    }
    g_object_unref(ctx);
    return bad ? -1 : 0;
}

int re_scene_pair_make(VipsImage *img, re_rng *r, void *buf[2], size_t len[2], char *desc,
                       size_t desc_len)
{
    const int W = img->Xsize, H = img->Ysize, vertical = re_rng_next(r) & 1;
    const double split = re_rng_uniform(r, 0.45, 0.55);
    desc[0] = 0;
    buf[0] = buf[1] = NULL;
    int bad = 0;
    for (int k = 0; k < 2 && !bad; k++) {
        /* each crop stays on its own side of the split line, so they cannot overlap */
        const double half = k == 0 ? split : 1 - split, a = re_rng_uniform(r, 0.25, 0.44);
        const double along = re_rng_uniform(r, 0.8, 1.0) * half; /* across the split line */
        double other = a / along;
        if (other > 1) other = 1;
        int x, y, w, h;
        if (vertical) {
            w = (int)(W * along), h = (int)(H * other);
            const int x0 = k == 0 ? 0 : (int)ceil(W * split);
            x = x0 + re_rng_int(r, 0, (int)(W * half) - w > 0 ? (int)(W * half) - w : 0);
            y = re_rng_int(r, 0, H - h);
        } else {
            h = (int)(H * along), w = (int)(W * other);
            const int y0 = k == 0 ? 0 : (int)ceil(H * split);
            y = y0 + re_rng_int(r, 0, (int)(H * half) - h > 0 ? (int)(H * half) - h : 0);
            x = re_rng_int(r, 0, W - w);
        }
        if (x + w > W) w = W - x;
        if (y + h > H) h = H - y;
        desc_add(desc, desc_len, "%s%dx%d+%d+%d", k ? " / " : "", w, h, x, y);
        VipsImage *c = NULL;
        bad = vips_extract_area(img, &c, x, y, w, h, NULL) ||
              encode(c, 0, re_rng_int(r, 85, 95), &buf[k], &len[k]);
        if (c) g_object_unref(c);
    }
    if (bad) {
        g_free(buf[0]);
        g_free(buf[1]);
        buf[0] = buf[1] = NULL;
    }
    return bad ? -1 : 0;
}

/* ---- adapter: plain PDQ ------------------------------------------------------------------ */

/* The API's whole-image PDQ: the luma box-shrunk to at most 320 a side, all 8 dihedral
 * variants; a pair matches when both have quality >= 50 and some variant of the query is
 * within 31 bits of the stored hash (Meta's rule). The index is a flat scan. */
typedef struct pdq_sig {
    phash_pdq dih[PHASH_DIH_COUNT];
} pdq_sig;

typedef struct pdq_index {
    uint32_t *ids;
    const pdq_sig **sigs;
    size_t n, cap;
} pdq_index;

static void *pdq_sig_new(const float *luma, int w, int h)
{
    const int aw = w > 320 ? 320 : w, ah = h > 320 ? 320 : h;
    float *small = malloc(sizeof(float) * (size_t)aw * (size_t)ah);
    pdq_sig *s = malloc(sizeof *s);
    ex_error e;
    if (!small || !s || phash_luma_resize(luma, w, h, small, aw, ah, PHASH_RESIZE_BOX, &e) ||
        phash_pdq_dihedral(small, aw, ah, s->dih, &e)) {
        free(small);
        free(s);
        return NULL;
    }
    free(small);
    return s;
}

static void *pdq_index_new(void)
{
    return calloc(1, sizeof(pdq_index));
}

static void pdq_index_free(void *p)
{
    pdq_index *ix = p;
    if (!ix) return;
    free(ix->ids);
    free(ix->sigs);
    free(ix);
}

static int pdq_index_add(void *p, uint32_t id, const void *sig)
{
    pdq_index *ix = p;
    if (ix->n == ix->cap) {
        const size_t cap = ix->cap ? 2 * ix->cap : 1024;
        uint32_t *ids = realloc(ix->ids, cap * sizeof *ids);
        if (!ids) return -1;
        ix->ids = ids;
        const pdq_sig **sigs = realloc(ix->sigs, cap * sizeof *sigs);
        if (!sigs) return -1;
        ix->sigs = sigs;
        ix->cap = cap;
    }
    ix->ids[ix->n] = id;
    ix->sigs[ix->n++] = sig;
    return 0;
}

static int pdq_query(const void *p, const void *sig, uint32_t *ids, size_t max)
{
    const pdq_index *ix = p;
    const pdq_sig *q = sig;
    size_t n = 0;
    if (q->dih[0].quality < 50) return 0;
    for (size_t i = 0; i < ix->n && n < max; i++) {
        if (ix->sigs[i]->dih[0].quality < 50) continue;
        for (int d = 0; d < PHASH_DIH_COUNT; d++)
            if (phash_pdq_distance(&q->dih[d], &ix->sigs[i]->dih[0]) <= 31) {
                ids[n++] = ix->ids[i];
                break;
            }
    }
    return (int)n;
}

static const re_detector det_pdq31 = {
    .name = "pdq31",
    .about = "whole-image PDQ, best of 8 dihedral variants, <= 31 bits, quality >= 50",
    .sig = pdq_sig_new,
    .sig_free = free,
    .index_new = pdq_index_new,
    .index_free = pdq_index_free,
    .index_add = pdq_index_add,
    .query = pdq_query,
};

/* ---- adapter: v2 (src/reuse.c, src/matcher.c) --------------------------------------------- */

/* What the server does: reuse_sig_compute, the matcher's two indexes (PDQ keys and visual
 * words) for the shortlist, reuse_match on each candidate. Only the database read of a
 * candidate's signature is replaced by the signature in memory. */
typedef struct v2_index {
    matcher *m;
    const reuse_sig **sigs; /* by id; NULL where no id */
    size_t cap;
} v2_index;

static void *v2_sig(const float *luma, int w, int h)
{
    reuse_sig *s = NULL;
    ex_error e;
    return reuse_sig_compute(luma, w, h, &s, &e) == EX_OK ? s : NULL;
}

static void v2_sig_free(void *s)
{
    reuse_sig_free(s);
}

static void *v2_index_new(void)
{
    v2_index *ix = calloc(1, sizeof *ix);
    ex_error e;
    if (ix && matcher_new(&ix->m, &e)) {
        free(ix);
        return NULL;
    }
    return ix;
}

static void v2_index_free(void *p)
{
    v2_index *ix = p;
    if (!ix) return;
    matcher_free(ix->m);
    free(ix->sigs);
    free(ix);
}

static int v2_index_add(void *p, uint32_t id, const void *sig)
{
    v2_index *ix = p;
    if (id >= ix->cap) {
        size_t cap = ix->cap ? ix->cap : 1024;
        while (cap <= id)
            cap *= 2;
        const reuse_sig **s = realloc(ix->sigs, cap * sizeof *s);
        if (!s) return -1;
        memset(s + ix->cap, 0, (cap - ix->cap) * sizeof *s);
        ix->sigs = s;
        ix->cap = cap;
    }
    ix->sigs[id] = sig;
    ex_error e;
    /* ids are offset by one: the matcher reads 0 as "no image". */
    return matcher_add(ix->m, (int64_t)id + 1, sig, &e) ? -1 : 0;
}

static int v2_query(const void *p, const void *sig, uint32_t *ids, size_t max)
{
    const v2_index *ix = p;
    uint64_t cand[MATCHER_MAX_CANDIDATES];
    size_t nc = 0, n = 0;
    ex_error e;
    if (matcher_candidates(ix->m, sig, 0, cand, &nc, &e)) return -1;
    for (size_t i = 0; i < nc && n < max; i++) {
        const uint64_t id = cand[i] - 1;
        reuse_result r;
        if (id >= ix->cap || !ix->sigs[id]) continue;
        reuse_match(sig, ix->sigs[id], &r);
        if (r.match) ids[n++] = (uint32_t)id;
    }
    return (int)n;
}

static const re_detector det_v2 = {
    .name = "v2",
    .about = "reuse_sig_compute + the matcher's PDQ and visual-word shortlist + reuse_match",
    .sig = v2_sig,
    .sig_free = v2_sig_free,
    .index_new = v2_index_new,
    .index_free = v2_index_free,
    .index_add = v2_index_add,
    .query = v2_query,
};

/* Adding a detector: write sig / sig_free / index_new / index_free / index_add / query over its
 * own API (see the two above; about 40 lines), define a const re_detector and list it here,
 * before the ones it beats, since the first is the default of eval_reuse and the detector the
 * make test slice gates. */
const re_detector *const re_detectors[] = {&det_v2, &det_pdq31, NULL};

const re_detector *re_detector_find(const char *name)
{
    for (int i = 0; re_detectors[i]; i++)
        if (strcmp(re_detectors[i]->name, name) == 0) return re_detectors[i];
    return NULL;
}

/* ---- the run ----------------------------------------------------------------------------- */

/* Images per photo: the original, a catalog image to index and one to query, the two crops of
 * the scene pair (one indexed, one queried), then per_family variants of each family. */
enum { S_ORIG, S_CAT_IX, S_CAT_Q, S_SCENE_IX, S_SCENE_Q, S_VARIANTS };

typedef struct item {
    int ok;   /* decoded by image_process */
    int flat; /* PDQ quality under 50: Meta's "too flat to hash" (originals only matter) */
    void *sig[2];
    char desc[200];
} item;

typedef struct run {
    const re_config *c;
    int nslots, ndet;
    item *items; /* nfiles x nslots */
    void *ix[2];
    long indexed_of_photo_total;
    int *indexed_of_photo; /* per photo */
    int *cat_ix_ok;        /* per photo: its indexed catalog image is in */
    int extra;             /* variant slots per photo also indexed */
    int next;
    long done;
    pthread_mutex_t mu;
    re_result *res;
    double sig_ms[2], query_ms[2];
    long sig_n[2], query_n[2];
    int failed;
} run;

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int slot_family(const run *rn, int slot)
{
    return slot < S_VARIANTS ? -1 : (slot - S_VARIANTS) / rn->c->per_family;
}

/* Families whose first variant is always indexed: captions, stickers and watermarks are drawn
 * from short lists, so different photos carrying the same text meet in the queries (a hard
 * negative: a seller's watermark on two different photos is not a reused photo). */
static int overlay_family(int f)
{
    return f == RE_STICKER || f == RE_TEXTBAND || f == RE_WATERMARK || f == RE_SCREENSHOT;
}

static int slot_indexed(const run *rn, int slot)
{
    if (slot == S_ORIG || slot == S_CAT_IX || slot == S_SCENE_IX) return 1;
    const int f = slot_family(rn, slot);
    return slot >= S_VARIANTS && (slot - S_VARIANTS) % rn->c->per_family == 0 &&
           (overlay_family(f) || f < rn->extra);
}

/* Signs the luma with each detector, timing it. */
/* Meta's rule for an image with no content to recognise, measured with phash alone (not with
 * any detector under test), on the 320 px box-shrunk luma as phash.h prescribes. */
static int too_flat(const image_result *img)
{
    const int w = img->luma_w > 320 ? 320 : img->luma_w, h = img->luma_h > 320 ? 320 : img->luma_h;
    float *small = malloc(sizeof(float) * (size_t)w * (size_t)h);
    phash_pdq pdq = {{0}, 0};
    ex_error e;
    int ok = small &&
             !phash_luma_resize(img->luma, img->luma_w, img->luma_h, small, w, h, PHASH_RESIZE_BOX,
                                &e) &&
             !phash_pdq_compute(small, w, h, &pdq, &e);
    free(small);
    return ok && pdq.quality < 50;
}

static void item_sign(run *rn, item *it, const image_result *img)
{
    it->flat = too_flat(img);
    for (int d = 0; d < rn->ndet; d++) {
        const double t0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        it->sig[d] = rn->c->det[d]->sig(img->luma, img->luma_w, img->luma_h);
        const double ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - t0;
        pthread_mutex_lock(&rn->mu);
        rn->sig_ms[d] += ms;
        rn->sig_n[d]++;
        if (!it->sig[d]) rn->res->errors[d]++;
        pthread_mutex_unlock(&rn->mu);
    }
    it->ok = 1;
}

/* Decodes an encoded image exactly as an upload is decoded, then signs it. */
static void item_fill(run *rn, const void *buf, size_t len, item *it, const char *label)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/eval_reuse.XXXXXX", rn->c->tmpdir);
    const int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot create a temp file in %s: %s\n", label, rn->c->tmpdir,
                strerror(errno));
        return;
    }
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        const ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        left -= (size_t)n;
    }
    close(fd);
    image_result img;
    ex_error e;
    const ex_rc rc = left ? EX_EIO : image_process(path, NULL, &img, &e);
    unlink(path);
    if (rc) {
        fprintf(stderr, "%s: not decoded: %s\n", label, left ? "short write" : e.message);
        return;
    }
    item_sign(rn, it, &img);
    image_result_release(&img);
}

/* The photo as an sRGB 3-band uchar image in memory, at most 1600 px a side like the previews
 * the server signs, turned upright. NULL when it cannot be loaded. */
static VipsImage *load_photo(const char *file)
{
    VipsImage *th = NULL, *srgb = NULL, *flat = NULL, *u8 = NULL, *mem = NULL;
    if (vips_thumbnail(file, &th, IMAGE_PREVIEW_MAX, "size", VIPS_SIZE_DOWN, NULL) ||
        vips_colourspace(th, &srgb, VIPS_INTERPRETATION_sRGB, NULL))
        goto done;
    if (vips_image_hasalpha(srgb)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        const int rc = vips_flatten(srgb, &flat, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (rc) goto done;
    }
    if (vips_cast_uchar(flat ? flat : srgb, &u8, NULL)) goto done;
    mem = vips_image_copy_memory(u8);
done:
    if (th) g_object_unref(th);
    if (srgb) g_object_unref(srgb);
    if (flat) g_object_unref(flat);
    if (u8) g_object_unref(u8);
    if (mem && mem->Bands != 3) {
        g_object_unref(mem);
        mem = NULL;
    }
    return mem;
}

/* Keeps the generated files for a look (--dump). */
static void dump(const char *dir, const char *base, int slot, void *buf[2], size_t len[2])
{
    for (int k = 0; k < 2 && buf[k]; k++) {
        const int png = len[k] > 4 && memcmp(buf[k], "\x89PNG", 4) == 0;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.%03d%s.%s", dir, base, slot, k ? "b" : "",
                 png ? "png" : "jpg");
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf[k], 1, len[k], f) != len[k])
            fprintf(stderr, "%s: cannot write it\n", path);
        if (f) fclose(f);
    }
}

static int next_photo(run *rn)
{
    pthread_mutex_lock(&rn->mu);
    const int p = rn->next < rn->c->nfiles ? rn->next++ : -1;
    pthread_mutex_unlock(&rn->mu);
    return p;
}

static void progress(run *rn, const char *what, long total)
{
    pthread_mutex_lock(&rn->mu);
    const long done = ++rn->done;
    pthread_mutex_unlock(&rn->mu);
    if (rn->c->progress && (done % 10 == 0 || done == total))
        fprintf(stderr, "\r  %s: %ld / %ld", what, done, total);
}

static void *make_worker(void *arg)
{
    run *rn = arg;
    const re_config *c = rn->c;
    const long total = (long)c->nfiles * (rn->nslots - 2); /* progress ticks */
    for (int p; (p = next_photo(rn)) >= 0;) {
        item *its = &rn->items[(size_t)p * rn->nslots];
        const char *file = c->files[p];
        const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        char label[600];
        image_result img;
        ex_error e;
        if (image_process(file, NULL, &img, &e) == EX_OK) {
            item_sign(rn, &its[S_ORIG], &img);
            image_result_release(&img);
        } else
            fprintf(stderr, "%s: not decoded: %s\n", file, e.message);
        VipsImage *photo = its[S_ORIG].ok ? load_photo(file) : NULL;
        if (!photo) {
            if (its[S_ORIG].ok)
                fprintf(stderr, "%s: cannot load it: %s\n", file, vips_error_buffer());
            vips_error_clear();
            pthread_mutex_lock(&rn->mu);
            rn->done += rn->nslots - 2;
            pthread_mutex_unlock(&rn->mu);
            continue;
        }
        snprintf(its[S_ORIG].desc, sizeof its[S_ORIG].desc, "original");
        for (int s = 1; s < rn->nslots; s++) {
            if (s == S_SCENE_Q) continue; /* made with S_SCENE_IX */
            /* Each image's parameters depend on the seed, the photo's name and the slot only,
             * not on the threads or the other photos. */
            re_rng r;
            re_rng_seed(&r, c->seed ^ (fnv1a(base) + 0x9E3779B97F4A7C15ull * (uint64_t)s));
            void *buf[2] = {NULL, NULL};
            size_t len[2] = {0, 0};
            item *it = &its[s];
            int rc;
            if (s == S_CAT_IX || s == S_CAT_Q)
                rc = re_catalog_make(photo, &r, &buf[0], &len[0], it->desc, sizeof it->desc);
            else if (s == S_SCENE_IX) {
                rc = re_scene_pair_make(photo, &r, buf, len, it->desc, sizeof it->desc);
                memcpy(its[S_SCENE_Q].desc, it->desc, sizeof it->desc);
            } else
                rc = re_variant_make(photo, slot_family(rn, s), &r, &buf[0], &len[0], it->desc,
                                     sizeof it->desc);
            snprintf(label, sizeof label, "%s [%s]", base, it->desc);
            if (rc) {
                fprintf(stderr, "%s: not made: %s\n", label, vips_error_buffer());
                vips_error_clear();
            } else {
                if (c->dump_dir) dump(c->dump_dir, base, s, buf, len);
                item_fill(rn, buf[0], len[0], it, label);
                if (s == S_SCENE_IX) item_fill(rn, buf[1], len[1], &its[S_SCENE_Q], label);
            }
            g_free(buf[0]);
            g_free(buf[1]);
            progress(rn, "making, decoding, signing", total);
        }
        g_object_unref(photo);
        vips_error_clear();
        vips_thread_shutdown();
    }
    return NULL;
}

static const char *slot_name(const run *rn, int slot)
{
    switch (slot) {
    case S_ORIG:
        return "original";
    case S_CAT_IX:
    case S_CAT_Q:
        return "catalog";
    case S_SCENE_IX:
    case S_SCENE_Q:
        return "scene crop";
    default:
        return re_families[slot_family(rn, slot)].name;
    }
}

static void *query_worker(void *arg)
{
    run *rn = arg;
    const re_config *c = rn->c;
    const size_t max = (size_t)c->nfiles * rn->nslots;
    uint32_t *ids = malloc(sizeof *ids * (max ? max : 1));
    re_result loc = {0};
    double qms[2] = {0, 0};
    long qn[2] = {0, 0};
    if (!ids) {
        rn->failed = 1;
        return NULL;
    }
    for (int p; (p = next_photo(rn)) >= 0;) {
        const item *its = &rn->items[(size_t)p * rn->nslots];
        if (!its[S_ORIG].ok) continue;
        /* A near-flat photo may neither match nor be matched (the rule): it counts in
         * no recall, but its images are still queried for false matches. */
        const int flat = its[S_ORIG].flat;
        if (flat) {
            pthread_mutex_lock(&rn->mu);
            rn->res->flat_photos++;
            printf("  near-flat (PDQ quality < 50), left out of recall: %s\n", c->files[p]);
            pthread_mutex_unlock(&rn->mu);
        }
        const long others = rn->indexed_of_photo_total - rn->indexed_of_photo[p];
        long cat_others = 0;
        for (int b = 0; b < c->nfiles; b++)
            cat_others += b != p && rn->cat_ix_ok[b];
        for (int s = 0; s < rn->nslots; s++) {
            const item *q = &its[s];
            if (!q->ok) continue;
            const int fam = slot_family(rn, s);
            loc.queries++;
            loc.pairs += others;
            if (fam >= 0 && !flat) loc.n[fam]++;
            if (s == S_CAT_Q) loc.cat_pairs += cat_others;
            if (s == S_SCENE_Q && its[S_SCENE_IX].ok) loc.scene_pairs++;
            for (int d = 0; d < rn->ndet; d++) {
                if (!q->sig[d]) continue;
                const double t0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
                const int n = c->det[d]->query(rn->ix[d], q->sig[d], ids, max);
                qms[d] += clock_ms(CLOCK_THREAD_CPUTIME_ID) - t0;
                qn[d]++;
                if (n < 0) {
                    loc.errors[d]++;
                    continue;
                }
                int found = 0;
                for (int i = 0; i < n; i++) {
                    const int bp = (int)(ids[i] / (uint32_t)rn->nslots),
                              bs = (int)(ids[i] % (uint32_t)rn->nslots);
                    if (bp == p) {
                        found |= bs == S_ORIG;
                        if (s == S_SCENE_Q && bs == S_SCENE_IX) {
                            loc.scene_fm[d]++;
                            printf("  FALSE MATCH (%s, same scene, no overlap): %s [%s]\n",
                                   c->det[d]->name, c->files[p], q->desc);
                        }
                        continue;
                    }
                    loc.fm[d]++;
                    if (s == S_CAT_Q && bs == S_CAT_IX) loc.cat_fm[d]++;
                    printf("  FALSE MATCH (%s): %s %s [%s] ~ %s %s [%s]\n", c->det[d]->name,
                           c->files[p], slot_name(rn, s), q->desc, c->files[bp], slot_name(rn, bs),
                           rn->items[ids[i]].desc);
                }
                if (fam >= 0 && found && !flat) loc.hit[d][fam]++;
                if (fam >= 0 && !found && d == 0 && c->verbose && !its[S_ORIG].flat)
                    printf("  missed (%s): %s %s [%s]\n", c->det[d]->name, c->files[p],
                           re_families[fam].name, q->desc);
            }
        }
        progress(rn, "querying", c->nfiles);
    }
    free(ids);
    pthread_mutex_lock(&rn->mu);
    re_result *g = rn->res;
    g->queries += loc.queries;
    g->pairs += loc.pairs;
    g->cat_pairs += loc.cat_pairs;
    g->scene_pairs += loc.scene_pairs;
    for (int f = 0; f < RE_FAMILIES; f++)
        g->n[f] += loc.n[f];
    for (int d = 0; d < 2; d++) {
        for (int f = 0; f < RE_FAMILIES; f++)
            g->hit[d][f] += loc.hit[d][f];
        g->fm[d] += loc.fm[d];
        g->cat_fm[d] += loc.cat_fm[d];
        g->scene_fm[d] += loc.scene_fm[d];
        g->errors[d] += loc.errors[d];
        rn->query_ms[d] += qms[d];
        rn->query_n[d] += qn[d];
    }
    pthread_mutex_unlock(&rn->mu);
    return NULL;
}

static int run_threads(run *rn, void *(*fn)(void *))
{
    pthread_t th[16];
    int started = 0;
    rn->next = 0;
    rn->done = 0;
    const int n = rn->c->threads < 1 ? 1 : rn->c->threads > 16 ? 16 : rn->c->threads;
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, fn, rn) == 0) started++;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (rn->c->progress) fprintf(stderr, "\n");
    return started ? 0 : -1;
}

int re_run(const re_config *c, re_result *res)
{
    memset(res, 0, sizeof *res);
    const double t_start = clock_ms(CLOCK_MONOTONIC);
    if (c->nfiles < 2 || c->per_family < 1 || !c->det[0] || !c->det[1]) {
        fprintf(stderr, "reuse_eval: need 2 photos, per_family >= 1 and two detectors\n");
        return -1;
    }
    run rn = {.c = c, .res = res};
    rn.nslots = S_VARIANTS + RE_FAMILIES * c->per_family;
    rn.ndet = c->det[1] == c->det[0] ? 1 : 2;
    if ((size_t)c->nfiles * rn.nslots >= UINT32_MAX) return -1;
    pthread_mutex_init(&rn.mu, NULL);
    rn.items = calloc((size_t)c->nfiles * rn.nslots, sizeof *rn.items);
    rn.indexed_of_photo = calloc((size_t)c->nfiles, sizeof *rn.indexed_of_photo);
    rn.cat_ix_ok = calloc((size_t)c->nfiles, sizeof *rn.cat_ix_ok);
    int rc = -1;
    if (!rn.items || !rn.indexed_of_photo || !rn.cat_ix_ok) goto out;
    if (run_threads(&rn, make_worker)) goto out;

    /* Enough indexed images that the different-photo pairs reach min_pairs: the originals,
     * catalog images and scene crops, then the first variant of one family after another. */
    long photos = 0, queries = 0;
    for (int p = 0; p < c->nfiles; p++) {
        const item *its = &rn.items[(size_t)p * rn.nslots];
        if (!its[S_ORIG].ok) continue;
        photos++;
        for (int s = 0; s < rn.nslots; s++)
            queries += its[s].ok;
    }
    res->photos = (int)photos;
    while (rn.extra < RE_FAMILIES && (double)queries * (double)(photos - 1) /
                                             (photos ? photos : 1) * (7 + rn.extra) *
                                             (double)photos <
                                         (double)c->min_pairs)
        rn.extra++;
    res->extra_indexed = rn.extra;
    for (int d = 0; d < rn.ndet; d++)
        if (!(rn.ix[d] = c->det[d]->index_new())) {
            fprintf(stderr, "reuse_eval: %s: index_new failed\n", c->det[d]->name);
            goto out;
        }
    for (int p = 0; p < c->nfiles; p++) {
        item *its = &rn.items[(size_t)p * rn.nslots];
        if (!its[S_ORIG].ok) continue;
        for (int s = 0; s < rn.nslots; s++) {
            if (!its[s].ok || !slot_indexed(&rn, s)) continue;
            rn.indexed_of_photo[p]++;
            rn.indexed_of_photo_total++;
            rn.cat_ix_ok[p] |= s == S_CAT_IX;
            for (int d = 0; d < rn.ndet; d++)
                if (its[s].sig[d] &&
                    c->det[d]->index_add(rn.ix[d], (uint32_t)(p * rn.nslots + s), its[s].sig[d])) {
                    fprintf(stderr, "reuse_eval: %s: index_add failed\n", c->det[d]->name);
                    goto out;
                }
        }
    }
    res->indexed = rn.indexed_of_photo_total;
    if (run_threads(&rn, query_worker) || rn.failed) goto out;
    if (rn.ndet == 1) {
        /* the baseline is the detector under test: same numbers */
        memcpy(res->hit[1], res->hit[0], sizeof res->hit[0]);
        res->fm[1] = res->fm[0];
        res->cat_fm[1] = res->cat_fm[0];
        res->scene_fm[1] = res->scene_fm[0];
        res->errors[1] = res->errors[0];
        rn.sig_ms[1] = rn.sig_ms[0], rn.sig_n[1] = rn.sig_n[0];
        rn.query_ms[1] = rn.query_ms[0], rn.query_n[1] = rn.query_n[0];
    }
    for (int d = 0; d < 2; d++) {
        res->sig_ms[d] = rn.sig_n[d] ? rn.sig_ms[d] / rn.sig_n[d] : 0;
        res->query_ms[d] = rn.query_n[d] ? rn.query_ms[d] / rn.query_n[d] : 0;
    }
    rc = 0;
out:
    for (int d = 0; d < rn.ndet; d++)
        if (rn.ix[d]) c->det[d]->index_free(rn.ix[d]);
    if (rn.items)
        for (size_t i = 0; i < (size_t)c->nfiles * rn.nslots; i++)
            for (int d = 0; d < rn.ndet; d++)
                if (rn.items[i].sig[d]) c->det[d]->sig_free(rn.items[i].sig[d]);
    free(rn.items);
    free(rn.indexed_of_photo);
    free(rn.cat_ix_ok);
    pthread_mutex_destroy(&rn.mu);
    res->elapsed_s = (clock_ms(CLOCK_MONOTONIC) - t_start) / 1e3;
    return rc;
}

void re_wilson(long k, long n, double *lo, double *hi)
{
    if (n <= 0) {
        *lo = 0, *hi = 1;
        return;
    }
    const double z = 1.959964, p = (double)k / n, z2 = z * z;
    const double mid = (p + z2 / (2.0 * n)) / (1 + z2 / n);
    const double half = z * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n);
    *lo = mid - half < 0 ? 0 : mid - half;
    *hi = mid + half > 1 ? 1 : mid + half;
}
