/* neardup.c - signatures, index keys and the match decision for reused-image detection.
 *
 * Everything works on a "work" image: the luma box-shrunk to at most ND_WORK px on its long
 * side, behind a summed-area table so that any rectangle's box average costs four lookups.
 * From it:
 *   - frames, the rectangles regions are cut from: the content (the image with uniform borders,
 *     canvases and thin caption or status bands along an edge trimmed, find_content), the raw
 *     image, and the raw image turned back by +-3 and +-8 degrees about its centre, where a
 *     canvas-expanding rotation puts the original (its size follows from the canvas size);
 *   - keys: PDQ of a region sampled on a 64x64 grid after a contrast stretch (PDQ's bits do
 *     not change under a positive affine map of the values, its quality does, so dark photos
 *     keep their keys), kept at quality >= ND_KEY_QUALITY;
 *   - thumbnails: 64x64 of the content and raw frames, for the second stage.
 * nd_match takes the closest key pairs within ND_INDEX_RADIUS as alignment hypotheses, renders
 * both thumbnails as each pair implies (region, tilt, dihedral variant) and measures how well
 * their edge detail (a light blur minus a heavy one) agrees over +-4% scale and +-3 cells of
 * shift. On 150 real photos x 26 versions (tools/eval_neardup.c) 99% of copies agreed at
 * >= 0.92; unrelated photos, aligned by their closest keys even far beyond the radius, never
 * reached 0.64, and no unrelated pair had keys within the radius at all.
 *
 * Limits: details under ~1/64 of the content do not count; tilts match near +-3 and +-8
 * degrees (about +-1 degree around each); a crop must roughly line up with a stored region
 * (centre 95/90/80%, a side cut by 10 or 15%, a 40% strip); a photo whose contrast edit
 * clips most of it to black is not recognised. Stack use is under 64 KiB.
 */
#include "exhibit/neardup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    ND_WORK = 384,       /* long side of the work image */
    ND_GRID = 64,        /* key input: PDQ's dihedral variants are exact at 64x64 */
    ND_THUMB = 64,       /* verification thumbnails */
    ND_CMP = 32,         /* verification grid */
    ND_SHIFT = 3,        /* +- cells searched around each hypothesis */
    ND_HYPS = 4,         /* hypotheses verified per direction */
    ND_BLOCKS_KEPT = 10, /* of 16 blocks: up to 6 may be covered by a band or watermark */
    ND_KEY_QUALITY = 35,
    ND_MAX_PIXELS = 1 << 28,
    ND_MAX_FRAMES = 6,
    ND_API_SIDE = 320, /* phash.h: box-shrink to 320 before PDQ */
};

#define ND_MAX_GAIN 8.0f   /* contrast stretch cap before hashing a region */
#define ND_LINE_TOL 8.0f   /* a line is uniform when 98% of it is within this of its mean */
#define ND_MIN_DETAIL 0.6f /* RMS edge detail below which an image is near-flat */
#define ND_ACCEPT 0.75     /* edge-detail agreement that confirms a candidate */
#define ND_PI 3.14159265358979323846
#define ND_MAX_VALUE 65536.0f /* |luma| bound accepted (real luma is 0..255) */

/* Regions as fractions of a frame's rectangle. The index holds every region of the content
 * frame and the first ND_RAW_REGIONS of the raw frame (only when trimming changed something). */
typedef struct nd_region {
    float x0, y0, x1, y1;
} nd_region;

static const nd_region nd_regions[] = {
    {0, 0, 1, 1},
    {.025f, .025f, .975f, .975f},
    {.05f, .05f, .95f, .95f},
    {.1f, .1f, .9f, .9f},
    {0, 0, .9f, 1},
    {.1f, 0, 1, 1},
    {0, 0, 1, .9f},
    {0, .1f, 1, 1},
    {0, 0, 1, .85f},
    {0, .15f, 1, 1},
    {0, 0, .85f, 1},
    {.15f, 0, 1, 1},
    {0, 0, 1, .4f},
    {0, .6f, 1, 1},
    {0, 0, .4f, 1},
    {.6f, 0, 1, 1},
};
enum {
    ND_REGIONS = sizeof nd_regions / sizeof nd_regions[0],
    ND_RAW_REGIONS = 8, /* full, centre 95/90/80, the four sides -10% */
};

/* Tilt frames, degrees; each is tried both ways. */
static const float nd_tilts[] = {3.0f, 8.0f};
enum { ND_TILTS = sizeof nd_tilts / sizeof nd_tilts[0] };

enum { FRAME_CONTENT, FRAME_RAW, FRAME_TILT0 };

typedef struct nd_rect {
    float x0, y0, x1, y1; /* work-image pixels (tilted frames: in the turned image) */
} nd_rect;

typedef struct nd_frame {
    float angle; /* radians; frame point p maps to work point c + R(angle) (p - c) */
    nd_rect rect;
} nd_frame;

typedef struct nd_key {
    uint8_t frame, region, dih, quality;
    uint8_t bits[32];
} nd_key;

struct nd_sig {
    phash_pdq pdq;
    uint64_t phash64;
    int work_w, work_h;
    float detail; /* RMS edge detail of the content thumbnail, luma levels */
    int flat, has_raw;
    int nframes;
    nd_frame frames[ND_MAX_FRAMES];
    int nkeys, nindex; /* keys[0..nindex) go into the index, all of them are queried */
    nd_key keys[ND_MAX_KEYS];
    /* Thumbnails of the content and raw frames (identical without has_raw), kept as 8-bit
     * codes over their own range so a parsed signature holds exactly the computed values. */
    float thumb_lo[2], thumb_step[2];
    uint8_t thumb_code[2][ND_THUMB * ND_THUMB];
    float thumb[2][ND_THUMB * ND_THUMB]; /* decoded from the codes */
};

/* ---- resampling ------------------------------------------------------------------------- */

/* Summed-area table of the work image, (w + 1) x (h + 1) doubles: t[y][x] is the sum of the
 * pixels left of x and above y. Any rectangle's area average then costs four lookups, and
 * fractional corners are exact (the integral of a piecewise-constant image is bilinear inside
 * each pixel), so every region and cell below is a true box average at any size. */
typedef struct nd_sat {
    const double *t;
    int w, h;
} nd_sat;

static double sat_at(const nd_sat *a, double x, double y)
{
    x = x < 0 ? 0 : x > a->w ? a->w : x;
    y = y < 0 ? 0 : y > a->h ? a->h : y;
    int i = (int)x, j = (int)y;
    i = i >= a->w ? a->w - 1 : i;
    j = j >= a->h ? a->h - 1 : j;
    const double fx = x - i, fy = y - j;
    const size_t W = (size_t)a->w + 1;
    const double *r0 = a->t + (size_t)j * W + i, *r1 = r0 + W;
    return (r0[0] * (1 - fx) + r0[1] * fx) * (1 - fy) + (r1[0] * (1 - fx) + r1[1] * fx) * fy;
}

/* Mean over [x0,x1) x [y0,y1) intersected with the image; a box outside it takes the mean of
 * the nearest pixel-wide strip (edges extend outwards). */
static float sat_mean(const nd_sat *a, double x0, double y0, double x1, double y1)
{
    x0 = x0 < 0 ? 0 : x0 > a->w - 1 ? a->w - 1 : x0;
    y0 = y0 < 0 ? 0 : y0 > a->h - 1 ? a->h - 1 : y0;
    x1 = x1 > a->w ? a->w : x1 < x0 + 1e-3 ? x0 + 1e-3 : x1;
    y1 = y1 > a->h ? a->h : y1 < y0 + 1e-3 ? y0 + 1e-3 : y1;
    const double sum =
        sat_at(a, x1, y1) - sat_at(a, x0, y1) - sat_at(a, x1, y0) + sat_at(a, x0, y0);
    return (float)(sum / ((x1 - x0) * (y1 - y0)));
}

/* Bilinear sample at (x, y) in pixel units (centres at +0.5), clamped at the edges. */
static float bilinear(const float *img, int w, int h, double x, double y)
{
    x -= 0.5;
    y -= 0.5;
    x = x < 0 ? 0 : x > w - 1 ? w - 1 : x;
    y = y < 0 ? 0 : y > h - 1 ? h - 1 : y;
    const int x0 = (int)x, y0 = (int)y;
    const int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    const double fx = x - x0, fy = y - y0;
    const double a = img[(size_t)y0 * w + x0] * (1 - fx) + img[(size_t)y0 * w + x1] * fx;
    const double b = img[(size_t)y1 * w + x0] * (1 - fx) + img[(size_t)y1 * w + x1] * fx;
    return (float)(a * (1 - fy) + b * fy);
}

/* ---- trimming ----------------------------------------------------------------------------- */

/* Classifies rows y0..y1-1 over columns [x0, x1) (or, with cols, columns x0..x1-1 over rows
 * [y0, y1)): a line is uniform when at most 2% of it lies further than ND_LINE_TOL from its
 * mean, so JPEG ringing or a thin divider does not count. Sweeps memory row by row in both
 * cases. uni/mean are indexed by row (or column) number; acc needs w floats and w ints. */
static void lines_classify(const float *img, int w, int x0, int x1, int y0, int y1, int cols,
                           unsigned char *uni, float *mean, float *acc, int *bad)
{
    if (!cols) {
        const int n = x1 - x0;
        for (int y = y0; y < y1; y++) {
            const float *row = img + (size_t)y * w;
            double m = 0.0;
            for (int x = x0; x < x1; x++)
                m += row[x];
            m = n > 0 ? m / n : 0.0;
            int nb = 0;
            for (int x = x0; x < x1; x++)
                nb += fabs(row[x] - m) > ND_LINE_TOL;
            mean[y] = (float)m;
            uni[y] = nb <= n / 50;
        }
        return;
    }
    const int n = y1 - y0;
    for (int x = x0; x < x1; x++) {
        acc[x] = 0.0f;
        bad[x] = 0;
    }
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            acc[x] += img[(size_t)y * w + x];
    for (int x = x0; x < x1; x++)
        mean[x] = n > 0 ? acc[x] / n : 0.0f;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            bad[x] += fabsf(img[(size_t)y * w + x] - mean[x]) > ND_LINE_TOL;
    for (int x = x0; x < x1; x++)
        uni[x] = bad[x] <= n / 50;
}

static int line_at(int n, int dir, int i)
{
    return dir > 0 ? i : n - 1 - i;
}

/* Lines to strip from one side (dir +1 from the start, -1 from the end) of n lines classified
 * in uni/mean. Strips the uniform run at the edge, then, repeatedly, a band that is thin
 * (<= 12%), has the same uniform colour on both sides (a caption band, a status bar) and is
 * followed by more non-uniform content than itself (so a small subject on a plain background
 * is not taken for a band). The colour of a uniform run may change only within that 12% edge
 * zone: a status bar above a canvas is stripped, the dark foreground of a photo pasted on a
 * white canvas is not. */
static int trim_side(const unsigned char *uni, const float *mean, int n, int dir)
{
    const int thin = n * 12 / 100, gap = n / 100 > 2 ? n / 100 : 2;
    int pos = 0;
    for (;;) {
        int u = 0;
        float ref = pos < n ? mean[line_at(n, dir, pos)] : 0.0f;
        while (pos + u < n && uni[line_at(n, dir, pos + u)]) {
            const float m = mean[line_at(n, dir, pos + u)];
            if (fabsf(m - ref) > 2 * ND_LINE_TOL) {
                if (pos + u > thin) break;
                ref = m;
            }
            u++;
        }
        pos += u;
        if (u == 0 || pos >= n || uni[line_at(n, dir, pos)]) break;
        const float outer = mean[line_at(n, dir, pos - 1)];
        int k = 0;
        while (pos + k < n && !uni[line_at(n, dir, pos + k)])
            k++;
        if (k > thin) break;
        int u2 = 0;
        while (pos + k + u2 < n && uni[line_at(n, dir, pos + k + u2)])
            u2++;
        if (u2 < gap || fabsf(mean[line_at(n, dir, pos + k)] - outer) > 2 * ND_LINE_TOL) break;
        int rest = 0;
        for (int i = pos + k + u2; i < n; i++)
            rest += !uni[line_at(n, dir, i)];
        if (rest < k) break;
        pos += k;
    }
    return pos;
}

/* The content rectangle of a w x h image; the whole image when trimming would leave less than
 * 5% (or 12 px) of a side. scratch: 4 * max(w, h) floats. */
static nd_rect find_content(const float *img, int w, int h, float *scratch)
{
    int x0 = 0, x1 = w, y0 = 0, y1 = h;
    const int nmax = w > h ? w : h;
    float *mean = scratch, *acc = scratch + nmax;
    int *bad = (int *)(scratch + 2 * (size_t)nmax);
    unsigned char *uni = (unsigned char *)(scratch + 3 * (size_t)nmax);
    /* Rows, then columns within the rows kept, then both again: a canvas beside a photo
     * only shows as uniform columns once the status bar rows above it are gone. */
    for (int pass = 0; pass < 2; pass++) {
        lines_classify(img, w, x0, x1, 0, h, 0, uni, mean, acc, bad);
        int a = trim_side(uni, mean, h, 1), b = trim_side(uni, mean, h, -1);
        if (a + b < h) {
            y0 = a;
            y1 = h - b;
        }
        lines_classify(img, w, 0, w, y0, y1, 1, uni, mean, acc, bad);
        a = trim_side(uni, mean, w, 1);
        b = trim_side(uni, mean, w, -1);
        if (a + b < w) {
            x0 = a;
            x1 = w - b;
        }
    }
    if (x1 - x0 < w / 20 || y1 - y0 < h / 20 || x1 - x0 < 12 || y1 - y0 < 12) {
        x0 = y0 = 0;
        x1 = w;
        y1 = h;
    }
    return (nd_rect){(float)x0, (float)y0, (float)x1, (float)y1};
}

/* ---- edge detail ------------------------------------------------------------------------ */

enum { ND_MAXG = ND_CMP + 2 * ND_SHIFT > ND_THUMB ? ND_CMP + 2 * ND_SHIFT : ND_THUMB };

/* k passes of the separable [1 2 1]/4 blur, edges clamped. */
static void blur121(float *g, int w, int h, int k)
{
    float tmp[ND_MAXG * ND_MAXG];
    for (int it = 0; it < k; it++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const float l = g[y * w + (x > 0 ? x - 1 : x)];
                const float r = g[y * w + (x < w - 1 ? x + 1 : x)];
                tmp[y * w + x] = (l + 2 * g[y * w + x] + r) / 4;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const float u = tmp[(y > 0 ? y - 1 : y) * w + x];
                const float d = tmp[(y < h - 1 ? y + 1 : y) * w + x];
                g[y * w + x] = (u + 2 * tmp[y * w + x] + d) / 4;
            }
    }
}

/* Replaces g by its edge detail: a light blur minus a heavy one. Brightness, contrast and
 * smooth gradients drop out; outlines and texture stay. */
static void edge_detail(float *g, int w, int h)
{
    float heavy[ND_MAXG * ND_MAXG];
    memcpy(heavy, g, sizeof(float) * (size_t)(w * h));
    blur121(g, w, h, 1);
    blur121(heavy, w, h, 4);
    for (int i = 0; i < w * h; i++)
        g[i] -= heavy[i];
}

/* ---- signature ---------------------------------------------------------------------------- */

static void frame_to_work(const nd_sig *s, const nd_frame *f, double xp, double yp, double *x,
                          double *y)
{
    const double cx = s->work_w / 2.0, cy = s->work_h / 2.0;
    const double c = cos(f->angle), sn = sin(f->angle);
    *x = cx + c * (xp - cx) - sn * (yp - cy);
    *y = cy + sn * (xp - cx) + c * (yp - cy);
}

static void region_rect(const nd_frame *f, int region, nd_rect *out)
{
    const nd_region *r = &nd_regions[region];
    const float w = f->rect.x1 - f->rect.x0, h = f->rect.y1 - f->rect.y0;
    *out = (nd_rect){f->rect.x0 + r->x0 * w, f->rect.y0 + r->y0 * h, f->rect.x0 + r->x1 * w,
                     f->rect.y0 + r->y1 * h};
}

/* Hashes the 64x64 grid g (modified) as region `region` of frame `frame` and appends the
 * dihedral variants asked for (dmask bit d) whose quality passes. */
static void keys_add(nd_sig *s, float *g, int frame, int region, unsigned dmask)
{
    float lo = g[0], hi = g[0];
    for (int i = 1; i < ND_GRID * ND_GRID; i++) {
        lo = g[i] < lo ? g[i] : lo;
        hi = g[i] > hi ? g[i] : hi;
    }
    float gain = hi > lo ? 255.0f / (hi - lo) : 1.0f;
    gain = gain > ND_MAX_GAIN ? ND_MAX_GAIN : gain;
    if (gain > 1.0f)
        for (int i = 0; i < ND_GRID * ND_GRID; i++)
            g[i] = (g[i] - lo) * gain;
    phash_pdq dh[PHASH_DIH_COUNT];
    /* Values are finite and 64x64: phash cannot fail here; a failure only drops the keys. */
    const ex_rc rc = dmask == 1u ? phash_pdq_compute(g, ND_GRID, ND_GRID, &dh[0], NULL)
                                 : phash_pdq_dihedral(g, ND_GRID, ND_GRID, dh, NULL);
    if (rc != EX_OK) return;
    if (dh[0].quality < ND_KEY_QUALITY) return;
    for (int d = 0; d < PHASH_DIH_COUNT; d++) {
        if (!(dmask >> d & 1) || s->nkeys >= ND_MAX_KEYS) continue;
        nd_key *k = &s->keys[s->nkeys++];
        k->frame = (uint8_t)frame;
        k->region = (uint8_t)region;
        k->dih = (uint8_t)d;
        k->quality = (uint8_t)dh[d].quality;
        memcpy(k->bits, dh[d].bits, 32);
    }
}

/* Samples rectangle r of frame f on an n x n grid: each cell is the box average of a
 * cell-sized upright box around the cell's centre (in a tilted frame the cell itself is turned
 * by a few degrees; the two differ only at its corners). */
static void grid_sample(const nd_sig *s, const nd_sat *sat, const nd_frame *f, const nd_rect *r,
                        float *g, int n)
{
    const double cw = (r->x1 - r->x0) / n, ch = (r->y1 - r->y0) / n;
    if (f->angle == 0.0f) {
        /* Upright: cells share corners, so look the table up once per corner. */
        double xs[ND_GRID + 1], corner[2][ND_GRID + 1];
        for (int j = 0; j <= n; j++)
            xs[j] = r->x0 + j * cw;
        for (int i = 0; i <= n; i++) {
            double *cur = corner[i & 1];
            const double y = r->y0 + i * ch;
            for (int j = 0; j <= n; j++)
                cur[j] = sat_at(sat, xs[j], y);
            if (i == 0) continue;
            const double *prev = corner[(i - 1) & 1];
            /* Areas are clipped to the image like sat_mean's, so cells outside it (never
             * produced by our frames, which lie inside) cannot divide by zero. */
            const double y0 = r->y0 + (i - 1) * ch < 0 ? 0 : r->y0 + (i - 1) * ch;
            const double y1 = y > sat->h ? sat->h : y;
            for (int j = 0; j < n; j++) {
                const double x0 = xs[j] < 0 ? 0 : xs[j],
                             x1 = xs[j + 1] > sat->w ? sat->w : xs[j + 1];
                const double area = (x1 - x0) * (y1 - y0);
                g[(i - 1) * n + j] =
                    area > 1e-9 ? (float)((cur[j + 1] - cur[j] - prev[j + 1] + prev[j]) / area)
                                : sat_mean(sat, xs[j], y - ch, xs[j + 1], y);
            }
        }
        return;
    }
    const double c = cos(f->angle), sn = sin(f->angle);
    const double cx = s->work_w / 2.0, cy = s->work_h / 2.0;
    for (int i = 0; i < n; i++) {
        const double yp = r->y0 + (i + 0.5) * ch - cy;
        for (int j = 0; j < n; j++) {
            const double xp = r->x0 + (j + 0.5) * cw - cx;
            const double x = cx + c * xp - sn * yp, y = cy + sn * xp + c * yp;
            g[i * n + j] = sat_mean(sat, x - cw / 2, y - ch / 2, x + cw / 2, y + ch / 2);
        }
    }
}

static float rms_detail(const float *thumb)
{
    float g[ND_THUMB * ND_THUMB];
    memcpy(g, thumb, sizeof g);
    edge_detail(g, ND_THUMB, ND_THUMB);
    double e = 0.0;
    for (int i = 0; i < ND_THUMB * ND_THUMB; i++)
        e += (double)g[i] * g[i];
    return (float)sqrt(e / (ND_THUMB * ND_THUMB));
}

/* The index keys come first, all as stored (dihedral 0): content regions, raw regions, tilt
 * frames; then the query-only dihedral variants of the whole content and raw frames. Tilts are
 * indexed too, so an upright original uploaded after its tilted copy still finds it. */
static void keys_compute(nd_sig *s, const nd_sat *sat)
{
    float g[ND_GRID * ND_GRID];
    const int nf = s->has_raw ? 2 : 1;
    for (int f = 0; f < nf; f++) {
        const int nr = f == FRAME_CONTENT ? ND_REGIONS : ND_RAW_REGIONS;
        for (int r = 0; r < nr; r++) {
            nd_rect rr;
            region_rect(&s->frames[f], r, &rr);
            grid_sample(s, sat, &s->frames[f], &rr, g, ND_GRID);
            keys_add(s, g, f, r, 1u);
        }
    }
    for (int f = FRAME_TILT0; f < s->nframes; f++) {
        grid_sample(s, sat, &s->frames[f], &s->frames[f].rect, g, ND_GRID);
        keys_add(s, g, f, 0, 1u);
    }
    s->nindex = s->nkeys;
    for (int f = 0; f < nf; f++) {
        grid_sample(s, sat, &s->frames[f], &s->frames[f].rect, g, ND_GRID);
        keys_add(s, g, f, 0, 0xFEu);
    }
}

/* Tilt frames: the raw image turned by -angle about its centre, where a canvas-expanding
 * rotation by angle put the original picture: solving w = W cos + H sin, h = W sin + H cos. */
static void tilts_setup(nd_sig *s)
{
    const double w = s->work_w, h = s->work_h;
    s->nframes = FRAME_TILT0;
    for (int t = 0; t < ND_TILTS; t++)
        for (int sign = -1; sign <= 1; sign += 2) {
            const double a = sign * nd_tilts[t] * ND_PI / 180.0;
            const double c = cos(a), sn = fabs(sin(a)), det = c * c - sn * sn;
            const double W = (w * c - h * sn) / det, H = (h * c - w * sn) / det;
            if (W < 16 || H < 16) continue; /* too thin for this angle */
            nd_frame *f = &s->frames[s->nframes++];
            f->angle = (float)a;
            f->rect = (nd_rect){(float)((w - W) / 2), (float)((h - H) / 2), (float)((w + W) / 2),
                                (float)((h + H) / 2)};
        }
}

/* Quantizes thumbnail t (float values in s->thumb[t]) to codes and decodes them back, so
 * computing and parsing give the same floats. A dark photo keeps its detail: the codes span
 * the thumbnail's own range. */
static void thumb_encode(nd_sig *s, int t)
{
    const float *v = s->thumb[t];
    float lo = v[0], hi = v[0];
    for (int i = 1; i < ND_THUMB * ND_THUMB; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    s->thumb_lo[t] = lo;
    s->thumb_step[t] = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    for (int i = 0; i < ND_THUMB * ND_THUMB; i++) {
        const long q = lroundf((v[i] - lo) / s->thumb_step[t]);
        s->thumb_code[t][i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
    }
}

static void thumb_decode(nd_sig *s, int t)
{
    for (int i = 0; i < ND_THUMB * ND_THUMB; i++)
        s->thumb[t][i] = s->thumb_lo[t] + s->thumb_step[t] * s->thumb_code[t][i];
}

/* Luma is 0..255; far outside it the sums below would lose meaning (and a signature could
 * hold values nd_sig_parse refuses). */
static int all_sane(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(v[i] >= -ND_MAX_VALUE && v[i] <= ND_MAX_VALUE)) return 0;
    return 1;
}

ex_rc nd_sig_compute(const float *luma, int w, int h, nd_sig **out, ex_error *e)
{
    if (!luma || !out || w <= 0 || h <= 0 || (int64_t)w * h > ND_MAX_PIXELS)
        return ex_fail(e, EX_EINVAL, "nd_bad_image", "cannot sign a %dx%d image", w, h);
    nd_sig *s = calloc(1, sizeof *s);
    if (!s) return ex_fail(e, EX_ENOMEM, "nd_no_memory", "no memory for an image signature");
    ex_rc rc = EX_OK;
    float *work = NULL, *tmp = NULL, *api = NULL;
    double *sat_t = NULL;
    const int longest = w > h ? w : h;
    if (longest > ND_WORK) {
        s->work_w = (int)lround((double)w * ND_WORK / longest);
        s->work_h = (int)lround((double)h * ND_WORK / longest);
    } else {
        s->work_w = w;
        s->work_h = h;
    }
    s->work_w = s->work_w < 1 ? 1 : s->work_w;
    s->work_h = s->work_h < 1 ? 1 : s->work_h;
    const size_t wn = (size_t)s->work_w * (size_t)s->work_h;
    const int wl = s->work_w > s->work_h ? s->work_w : s->work_h;
    const size_t tmp_n = 4 * (size_t)wl; /* find_content's line classes */
    const size_t sat_n = ((size_t)s->work_w + 1) * ((size_t)s->work_h + 1);
    work = malloc(wn * sizeof(float));
    tmp = malloc(tmp_n * sizeof(float));
    sat_t = malloc(sat_n * sizeof(double));
    if (!work || !tmp || !sat_t) {
        rc = ex_fail(e, EX_ENOMEM, "nd_no_memory", "no memory for an image signature");
        goto fail;
    }
    if (longest > ND_WORK) {
        rc = phash_luma_resize(luma, w, h, work, s->work_w, s->work_h, PHASH_RESIZE_BOX, e);
        if (rc) goto fail;
    } else {
        memcpy(work, luma, wn * sizeof(float));
    }
    /* Box averages keep NaN and infinity, so checking the small image checks every pixel for
     * those (and bounds the averages). */
    if (!all_sane(work, wn)) {
        rc = ex_fail(e, EX_EINVAL, "nd_not_finite",
                     "the image holds NaN, infinite or out-of-range values (luma is 0..255)");
        goto fail;
    }

    /* API hashes, on the caller's full-size luma as phash.h prescribes. */
    if (w > ND_API_SIDE || h > ND_API_SIDE) {
        const int aw = w > ND_API_SIDE ? ND_API_SIDE : w, ah = h > ND_API_SIDE ? ND_API_SIDE : h;
        if (!(api = malloc((size_t)aw * ah * sizeof(float)))) {
            rc = ex_fail(e, EX_ENOMEM, "nd_no_memory", "no memory for an image signature");
            goto fail;
        }
        rc = phash_luma_resize(luma, w, h, api, aw, ah, PHASH_RESIZE_BOX, e);
        if (!rc) rc = phash_pdq_compute(api, aw, ah, &s->pdq, e);
        /* 32 divides 320: box-shrinking the 320x320 image to 32x32 averages exactly the same
         * pixels as shrinking the luma, and saves a pass over it. */
        if (!rc && aw == ND_API_SIDE && ah == ND_API_SIDE)
            rc = phash_dct64_compute(api, aw, ah, &s->phash64, e);
        else if (!rc)
            rc = phash_dct64_compute(luma, w, h, &s->phash64, e);
    } else {
        rc = phash_pdq_compute(luma, w, h, &s->pdq, e);
        if (!rc) rc = phash_dct64_compute(luma, w, h, &s->phash64, e);
    }
    if (rc) goto fail;

    const size_t sw = (size_t)s->work_w + 1;
    for (size_t x = 0; x < sw; x++)
        sat_t[x] = 0.0;
    for (int y = 0; y < s->work_h; y++) {
        double row = 0.0;
        sat_t[(size_t)(y + 1) * sw] = 0.0;
        for (int x = 0; x < s->work_w; x++) {
            row += work[(size_t)y * s->work_w + x];
            sat_t[(size_t)(y + 1) * sw + x + 1] = sat_t[(size_t)y * sw + x + 1] + row;
        }
    }
    const nd_sat sat = {sat_t, s->work_w, s->work_h};
    s->frames[FRAME_RAW].rect = (nd_rect){0, 0, (float)s->work_w, (float)s->work_h};
    s->frames[FRAME_CONTENT].rect = find_content(work, s->work_w, s->work_h, tmp);
    const nd_rect c = s->frames[FRAME_CONTENT].rect;
    s->has_raw = c.x0 > 0.01f * s->work_w || c.y0 > 0.01f * s->work_h || c.x1 < 0.99f * s->work_w ||
                 c.y1 < 0.99f * s->work_h;
    /* Trimming under 1% of a side is noise: the content is then the raw image. */
    if (!s->has_raw) s->frames[FRAME_CONTENT].rect = s->frames[FRAME_RAW].rect;
    for (int t = 0; t < 2; t++)
        grid_sample(s, &sat, &s->frames[t], &s->frames[t].rect, s->thumb[t], ND_THUMB);
    s->detail = rms_detail(s->thumb[0]);
    for (int t = 0; t < 2; t++) {
        thumb_encode(s, t);
        thumb_decode(s, t);
    }
    tilts_setup(s);
    s->flat = s->detail < ND_MIN_DETAIL || s->work_w < 16 || s->work_h < 16;
    if (!s->flat) keys_compute(s, &sat);
    *out = s;
    s = NULL;
fail:
    free(sat_t);
    free(api);
    free(tmp);
    free(work);
    free(s);
    return rc;
}

void nd_sig_free(nd_sig *s)
{
    free(s);
}

void nd_sig_pdq(const nd_sig *s, phash_pdq *pdq)
{
    *pdq = s->pdq;
}

uint64_t nd_sig_phash64(const nd_sig *s)
{
    return s->phash64;
}

int nd_sig_flat(const nd_sig *s)
{
    return s->flat;
}

size_t nd_sig_index_keys(const nd_sig *s, int for_query, uint8_t (*keys)[32], size_t max)
{
    const size_t n = (size_t)(for_query ? s->nkeys : s->nindex);
    size_t k = 0;
    for (; k < n && k < max; k++)
        memcpy(keys[k], s->keys[k].bits, 32);
    return k;
}

/* ---- verification ----------------------------------------------------------------------- */

/* Source position in an untransformed square of the point (u, v) of dihedral variant d
 * (PHASH_DIH_* order: variant d of an image is the image rotated/mirrored that way). */
static void dihedral_source(int d, double u, double v, double *us, double *vs)
{
    switch (d) {
    case PHASH_DIH_ROT90:
        *us = 1 - v, *vs = u;
        break;
    case PHASH_DIH_ROT180:
        *us = 1 - u, *vs = 1 - v;
        break;
    case PHASH_DIH_ROT270:
        *us = v, *vs = 1 - u;
        break;
    case PHASH_DIH_FLIPX:
        *us = u, *vs = 1 - v;
        break;
    case PHASH_DIH_FLIPY:
        *us = 1 - u, *vs = v;
        break;
    case PHASH_DIH_FLIP_PLUS1:
        *us = v, *vs = u;
        break;
    case PHASH_DIH_FLIP_MINUS1:
        *us = 1 - v, *vs = 1 - u;
        break;
    default:
        *us = u, *vs = v;
        break;
    }
}

/* Renders key k's region of s, as key k's dihedral variant sees it, scaled by sc about its
 * centre, on an (n + 2m)^2 grid whose inner n x n cells cover the region. */
static void render(const nd_sig *s, const nd_key *k, double sc, int n, int m, float *out)
{
    const nd_frame *f = &s->frames[k->frame];
    nd_rect rr;
    region_rect(f, k->region, &rr);
    const int ti = k->frame == FRAME_CONTENT ? 0 : 1; /* tilts lie inside the raw image */
    const nd_rect *t = &s->frames[ti].rect;
    const double tw = t->x1 - t->x0, th = t->y1 - t->y0;
    const int bw = n + 2 * m;
    for (int i = 0; i < bw; i++)
        for (int j = 0; j < bw; j++) {
            const double u = 0.5 + (((j - m) + 0.5) / n - 0.5) * sc;
            const double v = 0.5 + (((i - m) + 0.5) / n - 0.5) * sc;
            double us, vs, x, y;
            dihedral_source(k->dih, u, v, &us, &vs);
            frame_to_work(s, f, rr.x0 + us * (rr.x1 - rr.x0), rr.y0 + vs * (rr.y1 - rr.y0), &x, &y);
            out[i * bw + j] = bilinear(s->thumb[ti], ND_THUMB, ND_THUMB,
                                       (x - t->x0) / tw * ND_THUMB, (y - t->y0) / th * ND_THUMB);
        }
}

static double corr(double sa, double sb, double saa, double sbb, double sab, double cnt)
{
    const double va = saa - sa * sa / cnt, vb = sbb - sb * sb / cnt, cv = sab - sa * sb / cnt;
    return va > 1e-9 && vb > 1e-9 ? cv / sqrt(va * vb) : 0.0;
}

/* Agreement of a (n x n) with the n x n window of b (bw wide) at (ox, oy): the smaller of
 * the normalised cross-correlation over the whole window and the mean correlation of the
 * best ND_BLOCKS_KEPT of its 4x4 blocks. The whole-window term needs the detail to agree
 * everywhere at once (a text band or watermark lowers it, so it is not alone); the block
 * term needs agreement spread over most of the picture, which one shared straight edge (a
 * horizon, the border of a pasted photo) between unrelated pictures does not give. */
static double agreement(const float *a, int n, const float *b, int bw, int ox, int oy)
{
    enum { NB = 4 };
    const int bs = n / NB;
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, blk[NB * NB];
    for (int by = 0; by < NB; by++)
        for (int bx = 0; bx < NB; bx++) {
            double a1 = 0, b1 = 0, aa = 0, bb = 0, ab = 0;
            for (int y = by * bs; y < (by + 1) * bs; y++) {
                const float *pa = a + y * n + bx * bs, *pb = b + (y + oy) * bw + ox + bx * bs;
                for (int x = 0; x < bs; x++) {
                    a1 += pa[x];
                    b1 += pb[x];
                    aa += (double)pa[x] * pa[x];
                    bb += (double)pb[x] * pb[x];
                    ab += (double)pa[x] * pb[x];
                }
            }
            blk[by * NB + bx] = corr(a1, b1, aa, bb, ab, (double)bs * bs);
            sa += a1;
            sb += b1;
            saa += aa;
            sbb += bb;
            sab += ab;
        }
    /* partial selection sort: the best ND_BLOCKS_KEPT first */
    double kept = 0.0;
    for (int i = 0; i < ND_BLOCKS_KEPT; i++) {
        int top = i;
        for (int j = i + 1; j < NB * NB; j++)
            top = blk[j] > blk[top] ? j : top;
        const double t = blk[i];
        blk[i] = blk[top];
        blk[top] = t;
        kept += blk[i];
    }
    kept /= ND_BLOCKS_KEPT;
    const double whole = corr(sa, sb, saa, sbb, sab, (double)n * n);
    return whole < kept ? whole : kept;
}

/* Best agreement of query key qk's view of q with stored key sk's view of s. */
static double verify(const nd_sig *q, const nd_key *qk, const nd_sig *s, const nd_key *sk)
{
    static const double scales[] = {1.0, 0.96, 1.04};
    const int n = ND_CMP, m = ND_SHIFT, bw = n + 2 * m;
    float a[ND_CMP * ND_CMP], b[ND_MAXG * ND_MAXG];
    render(q, qk, 1.0, n, 0, a);
    edge_detail(a, n, n);
    double best = -1.0;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        render(s, sk, scales[si], n, m, b);
        edge_detail(b, bw, bw);
        for (int oy = 0; oy <= 2 * m; oy++)
            for (int ox = 0; ox <= 2 * m; ox++) {
                const double c = agreement(a, n, b, bw, ox, oy);
                best = c > best ? c : best;
            }
    }
    return best;
}

typedef struct nd_hyp {
    int dist;
    const nd_key *q, *s;
} nd_hyp;

/* A short reason from the geometry of the pair that was confirmed (best effort: a re-encode
 * can be confirmed on a part when that part's keys happen to be the closest). */
static const char *hyp_reason(const nd_hyp *h)
{
    if (h->q->frame >= FRAME_TILT0 || h->s->frame >= FRAME_TILT0) return "slightly rotated copy";
    if (h->q->dih != 0) return "rotated or mirrored copy";
    if (h->q->region != h->s->region) {
        if (h->q->region == 0 || h->s->region == 0) return "cropped copy";
        return "cropped or partly covered copy";
    }
    if (h->q->frame != h->s->frame) return "framed copy (border, canvas or screenshot)";
    if (h->q->region != 0) return "same picture, partly covered or cropped";
    return "same picture";
}

/* The ND_HYPS closest pairs of q's keys (all) with s's index keys within radius, closest first,
 * into hs; returns how many. */
static int closest_pairs(const nd_sig *q, const nd_sig *s, int radius, nd_hyp *hs)
{
    int nh = 0;
    for (int i = 0; i < q->nkeys; i++)
        for (int j = 0; j < s->nindex; j++) {
            const int d = phash_bits_distance(q->keys[i].bits, s->keys[j].bits);
            if (d > radius) continue;
            /* Keep the ND_HYPS closest distinct ones by insertion; duplicates of a view
             * (same query and stored region/frame/dihedral) add nothing. */
            nd_hyp h = {d, &q->keys[i], &s->keys[j]};
            int pos = nh;
            while (pos > 0 && hs[pos - 1].dist > d)
                pos--;
            if (pos >= ND_HYPS) continue;
            if (nh < ND_HYPS) nh++;
            memmove(&hs[pos + 1], &hs[pos], sizeof *hs * (size_t)(nh - 1 - pos));
            hs[pos] = h;
        }
    return nh;
}

/* Tries the closest key pairs of q against s's index keys, best first. Returns the first
 * hypothesis that verifies (its agreement in *score), or NULL. */
static const nd_hyp *match_dir(const nd_sig *q, const nd_sig *s, nd_hyp *hs, double *score)
{
    const int nh = closest_pairs(q, s, ND_INDEX_RADIUS, hs);
    for (int i = 0; i < nh; i++) {
        const double sc = verify(q, hs[i].q, s, hs[i].s);
        if (sc >= ND_ACCEPT) {
            *score = sc;
            return &hs[i];
        }
    }
    return NULL;
}

static int sig_equal(const nd_sig *a, const nd_sig *b)
{
    return a->nkeys == b->nkeys && a->work_w == b->work_w && a->work_h == b->work_h &&
           memcmp(a->pdq.bits, b->pdq.bits, 32) == 0 && a->phash64 == b->phash64 &&
           memcmp(a->keys, b->keys, sizeof(nd_key) * (size_t)a->nkeys) == 0 &&
           memcmp(a->thumb_code, b->thumb_code, sizeof a->thumb_code) == 0;
}

int nd_match(const nd_sig *query, const nd_sig *candidate, int *distance, const char **why)
{
    int dist = 256;
    const char *reason = "different pictures";
    int same = 0;
    if (!query || !candidate) {
        reason = "no signature";
    } else if (query->flat || candidate->flat) {
        reason = "near-flat image: too little detail to compare";
    } else if (sig_equal(query, candidate)) {
        same = 1;
        dist = 0;
        reason = "identical picture";
    } else {
        nd_hyp hs[ND_HYPS + 1];
        double sc = 0.0;
        const nd_hyp *h = match_dir(query, candidate, hs, &sc);
        if (!h) h = match_dir(candidate, query, hs, &sc);
        if (h) {
            same = 1;
            /* The keys' distance plus how far the detail is from a perfect correlation, so a
             * re-encode ranks before a crop; never 0 for different signatures. */
            dist = h->dist + (int)lround((1.0 - sc) * 64.0);
            dist = dist < 1 ? 1 : dist > 256 ? 256 : dist;
            reason = hyp_reason(h);
        }
    }
    if (distance) *distance = dist;
    if (why) *why = reason;
    return same;
}

void nd_explain_pair(const nd_sig *query, const nd_sig *candidate, nd_explain *out)
{
    out->key_distance = 256;
    out->score = -1.0;
    if (!query || !candidate || query->flat || candidate->flat) return;
    for (int dir = 0; dir < 2; dir++) {
        const nd_sig *q = dir ? candidate : query, *s = dir ? query : candidate;
        nd_hyp hs[ND_HYPS + 1];
        const int nh = closest_pairs(q, s, 256, hs);
        for (int i = 0; i < nh; i++) {
            out->key_distance = hs[i].dist < out->key_distance ? hs[i].dist : out->key_distance;
            const double sc = verify(q, hs[i].q, s, hs[i].s);
            out->score = sc > out->score ? sc : out->score;
        }
    }
}

/* ---- serialization ---------------------------------------------------------------------- */

/* Layout, little-endian: "EXND", version 1, flags (bit 0 flat, bit 1 has_raw), work w, h
 * (u16), detail (f32), PDQ bits (32) and quality (u8), phash64 (u64), frame count (u8) and per
 * frame angle + rect (5 x f32), key count and index key count (u8 each), keys (36 bytes each),
 * per thumbnail (1, or 2 with has_raw): low value and step (f32) and 64x64 codes; last, a
 * 64-bit FNV-1a of everything before it, since a flipped bit in a thumbnail or key would
 * otherwise parse as a valid, different signature. */
enum { ND_VERSION = 1, ND_KEY_BYTES = 36, ND_SUM_BYTES = 8 };

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
static const uint8_t nd_magic[4] = {'E', 'X', 'N', 'D'};

typedef struct wbuf {
    uint8_t *p;
    size_t n;
} wbuf;

static void put_u8(wbuf *w, unsigned v)
{
    w->p[w->n++] = (uint8_t)v;
}
static void put_u16(wbuf *w, unsigned v)
{
    put_u8(w, v & 0xFF);
    put_u8(w, (v >> 8) & 0xFF);
}
static void put_u32(wbuf *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        put_u8(w, (v >> (8 * i)) & 0xFF);
}
static void put_f32(wbuf *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}
static void put_bytes(wbuf *w, const void *p, size_t n)
{
    memcpy(w->p + w->n, p, n);
    w->n += n;
}

typedef struct rbuf {
    const uint8_t *p;
    size_t n, at;
    int bad;
} rbuf;

static const uint8_t *take(rbuf *r, size_t n)
{
    if (r->bad || r->n - r->at < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}
static unsigned get_u8(rbuf *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}
static unsigned get_u16(rbuf *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (unsigned)p[0] | (unsigned)p[1] << 8 : 0;
}
static float get_f32(rbuf *r)
{
    const uint8_t *p = take(r, 4);
    if (!p) return 0.0f;
    const uint32_t v =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static void put_thumb(wbuf *w, const nd_sig *s, int t)
{
    put_f32(w, s->thumb_lo[t]);
    put_f32(w, s->thumb_step[t]);
    put_bytes(w, s->thumb_code[t], ND_THUMB * ND_THUMB);
}

static int get_thumb(rbuf *r, nd_sig *s, int t)
{
    s->thumb_lo[t] = get_f32(r);
    s->thumb_step[t] = get_f32(r);
    const uint8_t *p = take(r, ND_THUMB * ND_THUMB);
    if (!p || !isfinite(s->thumb_lo[t]) || !isfinite(s->thumb_step[t]) ||
        s->thumb_step[t] <= 0.0f || fabsf(s->thumb_lo[t]) > 1e6f || s->thumb_step[t] > 1e6f)
        return -1;
    memcpy(s->thumb_code[t], p, ND_THUMB * ND_THUMB);
    thumb_decode(s, t);
    return 0;
}

static size_t sig_bytes(const nd_sig *s)
{
    return 4 + 1 + 1 + 2 + 2 + 4 + 32 + 1 + 8 + 1 + (size_t)s->nframes * 20 + 2 +
           (size_t)s->nkeys * ND_KEY_BYTES +
           (size_t)(s->has_raw ? 2 : 1) * (8 + ND_THUMB * ND_THUMB) + ND_SUM_BYTES;
}

ex_rc nd_sig_serialize(const nd_sig *s, uint8_t **buf, size_t *len, ex_error *e)
{
    if (!s || !buf || !len)
        return ex_fail(e, EX_EINVAL, "nd_bad_args", "nd_sig_serialize needs a signature");
    const size_t n = sig_bytes(s);
    wbuf w = {malloc(n), 0};
    if (!w.p) return ex_fail(e, EX_ENOMEM, "nd_no_memory", "no memory to serialize a signature");
    put_bytes(&w, nd_magic, 4);
    put_u8(&w, ND_VERSION);
    put_u8(&w, (unsigned)(s->flat ? 1 : 0) | (unsigned)(s->has_raw ? 2 : 0));
    put_u16(&w, (unsigned)s->work_w);
    put_u16(&w, (unsigned)s->work_h);
    put_f32(&w, s->detail);
    put_bytes(&w, s->pdq.bits, 32);
    put_u8(&w, (unsigned)s->pdq.quality);
    for (int i = 0; i < 8; i++)
        put_u8(&w, (unsigned)(s->phash64 >> (8 * i)) & 0xFF);
    put_u8(&w, (unsigned)s->nframes);
    for (int f = 0; f < s->nframes; f++) {
        put_f32(&w, s->frames[f].angle);
        put_f32(&w, s->frames[f].rect.x0);
        put_f32(&w, s->frames[f].rect.y0);
        put_f32(&w, s->frames[f].rect.x1);
        put_f32(&w, s->frames[f].rect.y1);
    }
    put_u8(&w, (unsigned)s->nkeys);
    put_u8(&w, (unsigned)s->nindex);
    for (int k = 0; k < s->nkeys; k++) {
        const nd_key *key = &s->keys[k];
        put_u8(&w, key->frame);
        put_u8(&w, key->region);
        put_u8(&w, key->dih);
        put_u8(&w, key->quality);
        put_bytes(&w, key->bits, 32);
    }
    put_thumb(&w, s, 0);
    if (s->has_raw) put_thumb(&w, s, 1);
    const uint64_t sum = fnv1a(w.p, w.n);
    for (int i = 0; i < 8; i++)
        put_u8(&w, (unsigned)(sum >> (8 * i)) & 0xFF);
    *buf = w.p;
    *len = w.n;
    return EX_OK;
}

static int rect_ok(const nd_rect *r, int w, int h)
{
    const float v[4] = {r->x0, r->y0, r->x1, r->y1};
    for (int i = 0; i < 4; i++)
        if (!isfinite(v[i]) || fabsf(v[i]) > 4.0f * ND_WORK) return 0;
    return r->x1 - r->x0 >= 1.0f && r->y1 - r->y0 >= 1.0f && (w > 0 && h > 0);
}

ex_rc nd_sig_parse(const uint8_t *buf, size_t len, nd_sig **out, ex_error *e)
{
    if (!buf || !out) return ex_fail(e, EX_EINVAL, "nd_bad_args", "nd_sig_parse needs a buffer");
    nd_sig *s = calloc(1, sizeof *s);
    if (!s) return ex_fail(e, EX_ENOMEM, "nd_no_memory", "no memory for an image signature");
    /* The checksum first: nothing else is read from bytes that were damaged. */
    int summed = len > ND_SUM_BYTES;
    if (summed) {
        uint64_t sum = 0;
        for (int i = 0; i < 8; i++)
            sum |= (uint64_t)buf[len - ND_SUM_BYTES + i] << (8 * i);
        summed = sum == fnv1a(buf, len - ND_SUM_BYTES);
    }
    rbuf r = {buf, summed ? len - ND_SUM_BYTES : 0, 0, !summed};
    const uint8_t *magic = take(&r, 4);
    int ok = magic && memcmp(magic, nd_magic, 4) == 0 && get_u8(&r) == ND_VERSION;
    const unsigned flags = get_u8(&r);
    ok = ok && flags <= 3;
    s->flat = (flags & 1) != 0;
    s->has_raw = (flags & 2) != 0;
    s->work_w = (int)get_u16(&r);
    s->work_h = (int)get_u16(&r);
    ok = ok && s->work_w >= 1 && s->work_w <= ND_WORK && s->work_h >= 1 && s->work_h <= ND_WORK;
    s->detail = get_f32(&r);
    ok = ok && isfinite(s->detail) && s->detail >= 0.0f;
    const uint8_t *bits = take(&r, 32);
    if (bits) memcpy(s->pdq.bits, bits, 32);
    s->pdq.quality = (int)get_u8(&r);
    ok = ok && s->pdq.quality <= 100;
    for (int i = 0; i < 8; i++)
        s->phash64 |= (uint64_t)get_u8(&r) << (8 * i);
    s->nframes = (int)get_u8(&r);
    ok = ok && s->nframes >= FRAME_TILT0 && s->nframes <= ND_MAX_FRAMES;
    for (int f = 0; ok && f < s->nframes; f++) {
        s->frames[f].angle = get_f32(&r);
        s->frames[f].rect.x0 = get_f32(&r);
        s->frames[f].rect.y0 = get_f32(&r);
        s->frames[f].rect.x1 = get_f32(&r);
        s->frames[f].rect.y1 = get_f32(&r);
        ok = isfinite(s->frames[f].angle) && fabsf(s->frames[f].angle) < 1.0f &&
             rect_ok(&s->frames[f].rect, s->work_w, s->work_h);
    }
    s->nkeys = (int)get_u8(&r);
    s->nindex = (int)get_u8(&r);
    ok = ok && s->nkeys <= ND_MAX_KEYS && s->nindex <= s->nkeys && (!s->flat || s->nkeys == 0);
    for (int k = 0; ok && k < s->nkeys; k++) {
        nd_key *key = &s->keys[k];
        key->frame = (uint8_t)get_u8(&r);
        key->region = (uint8_t)get_u8(&r);
        key->dih = (uint8_t)get_u8(&r);
        key->quality = (uint8_t)get_u8(&r);
        bits = take(&r, 32);
        if (bits) memcpy(key->bits, bits, 32);
        /* Index keys are views as stored (dihedral 0); a raw-frame key needs a raw frame;
         * a tilt frame has only its whole rectangle. */
        const int index = k < s->nindex;
        ok = key->frame < s->nframes && key->region < ND_REGIONS && key->dih < PHASH_DIH_COUNT &&
             key->quality >= ND_KEY_QUALITY && key->quality <= 100 && (!index || key->dih == 0) &&
             (key->frame != FRAME_RAW || s->has_raw) &&
             (key->frame < FRAME_TILT0 || key->region == 0);
    }
    ok = ok && get_thumb(&r, s, 0) == 0;
    if (ok && s->has_raw) {
        ok = get_thumb(&r, s, 1) == 0;
    } else if (ok) {
        s->thumb_lo[1] = s->thumb_lo[0];
        s->thumb_step[1] = s->thumb_step[0];
        memcpy(s->thumb_code[1], s->thumb_code[0], sizeof s->thumb_code[0]);
        thumb_decode(s, 1);
    }
    ok = ok && !r.bad && r.at == r.n;
    if (!ok) {
        free(s);
        return ex_fail(e, EX_EINVAL, "nd_sig_corrupt",
                       "the stored image signature is damaged or from another version; "
                       "recompute it from the image");
    }
    *out = s;
    return EX_OK;
}
