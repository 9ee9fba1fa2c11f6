/* eval_neardup.c - measures reused-image detection on a folder of real photos.
 *
 *   eval_neardup [DIR] [--threads N] [--limit N] [--verbose]
 *
 * DIR defaults to ../shared/testdata/neardup (150 photos); when it is absent the tool says so
 * and exits 0 ("skipped"). For every photo it makes the variants below with libvips, in
 * memory, writes each (and the original) to a temp file and decodes it with image_process, so
 * the luma is exactly what the server sees; then nd_sig_compute. The originals' index keys go
 * into one hindex (id = photo number). Each original and variant is then decided as the
 * server decides an upload: hindex_query of every query key at ND_INDEX_RADIUS, nd_match on
 * each candidate photo. Printed:
 *   - recall per variant (the variant finds its own original), for our detector, for plain
 *     PDQ <= 31 (whole-image PDQ of the API, best of its 8 dihedral variants, Meta's quality
 *     rule >= 50 on both sides) and for the 64-bit DCT hash <= 8 bits; also ours in the
 *     reverse direction (the original uploaded after the variant: its query keys against an
 *     index holding the variant);
 *   - false matches over all pairs of different photos: each variant or original of photo A
 *     against every original of photo B != A, for the same three detectors, and for nd_match
 *     alone on every pair (as if the index let everything through);
 *   - time per nd_sig_compute and per nd_match, keys per image, signature sizes.
 * Variant definitions: "centre crop p%" keeps the central (100-p)% of width and height; the
 * one-side crop cuts 10% off the left, right, top or bottom (by photo number); the text band is
 * a solid band (3 colours in turn) over the bottom 15% with white text; the watermark is white
 * text at 60% opacity, 70% of the width, centred; the border adds 8% of each side in white; the
 * screenshot scales the photo into a 1170x2532 canvas (black or white in turn) under a status
 * bar with the time and a battery, saved as PNG; the tilts use vips_rotate (black corners).
 *
 * Exit status: 0 when it ran (targets missed are printed, not failures), 1 on a setup error.
 */
#include "exhibit/hindex.h"
#include "exhibit/image.h"
#include "exhibit/neardup.h"
#include "exhibit/phash.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

enum { G_ORIG, G_BENIGN, G_FRAUD, G_OTHER };

enum {
    V_ORIG,
    V_Q30,
    V_Q50,
    V_Q75,
    V_Q95,
    V_RESIZE50,
    V_RESIZE25,
    V_CROP5,
    V_CROP10,
    V_CROP20,
    V_CROPSIDE,
    V_ROT90,
    V_ROT180,
    V_ROT270,
    V_MIRROR,
    V_BRIGHT,
    V_CONTRAST,
    V_GRAY,
    V_BLUR,
    V_BAND,
    V_WATERMARK,
    V_BORDER,
    V_SCREENSHOT,
    V_PNG60,
    V_ROT3,
    V_ROT8,
    V_COUNT
};

/* group: benign variants must reach 0.99, fraud edits 0.90 (targets of issue 4) */
static const struct {
    const char *name;
    int group;
} variants[V_COUNT] = {
    [V_ORIG] = {"original, re-saved q90", G_ORIG},
    [V_Q30] = {"jpeg q30", G_BENIGN},
    [V_Q50] = {"jpeg q50", G_BENIGN},
    [V_Q75] = {"jpeg q75", G_BENIGN},
    [V_Q95] = {"jpeg q95", G_BENIGN},
    [V_RESIZE50] = {"resize 50%", G_BENIGN},
    [V_RESIZE25] = {"resize 25%", G_BENIGN},
    [V_CROP5] = {"centre crop 5%", G_FRAUD},
    [V_CROP10] = {"centre crop 10%", G_FRAUD},
    [V_CROP20] = {"centre crop 20%", G_OTHER},
    [V_CROPSIDE] = {"one-side crop 10%", G_FRAUD},
    [V_ROT90] = {"rotate 90", G_BENIGN},
    [V_ROT180] = {"rotate 180", G_BENIGN},
    [V_ROT270] = {"rotate 270", G_BENIGN},
    [V_MIRROR] = {"mirror", G_BENIGN},
    [V_BRIGHT] = {"brightness +25%", G_BENIGN},
    [V_CONTRAST] = {"contrast +40%", G_BENIGN},
    [V_GRAY] = {"grayscale", G_BENIGN},
    [V_BLUR] = {"blur (sigma 3)", G_BENIGN},
    [V_BAND] = {"text band 15%", G_FRAUD},
    [V_WATERMARK] = {"watermark", G_FRAUD},
    [V_BORDER] = {"white border 8%", G_FRAUD},
    [V_SCREENSHOT] = {"phone screenshot (png)", G_FRAUD},
    [V_PNG60] = {"rescale 60% (png)", G_BENIGN},
    [V_ROT3] = {"rotate 3 deg", G_FRAUD},
    [V_ROT8] = {"rotate 8 deg", G_OTHER},
};

/* ---- variants -------------------------------------------------------------------------------- */

/* Text fitted into bw x bh as a 1-band 0..255 mask (DejaVu is installed by tools/deps.sh). */
static int text_mask(const char *text, int bw, int bh, VipsImage **out)
{
    return vips_text(out, text, "font", "DejaVu Sans Bold", "width", bw, "height", bh, NULL);
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

/* Variant v of img (sRGB, 3 bands, uchar), encoded (JPEG q90 unless the variant says
 * otherwise; PNG for the screenshot and the 60% rescale) into *buf (g_free it). photo picks
 * the per-photo choices. Returns 0 or -1 (vips error buffer set). */
static int variant_make(VipsImage *img, int v, int photo, void **buf, size_t *len)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 12);
    const int W = img->Xsize, H = img->Ysize;
    static const double white[3] = {255, 255, 255};
    VipsImage *out = img;
    int q = 90, png = 0, bad = 0;
    switch (v) {
    case V_ORIG:
        break;
    case V_Q30:
    case V_Q50:
    case V_Q75:
    case V_Q95:
        q = v == V_Q30 ? 30 : v == V_Q50 ? 50 : v == V_Q75 ? 75 : 95;
        break;
    case V_RESIZE50:
    case V_RESIZE25:
    case V_PNG60:
        bad = vips_resize(img, &t[0], v == V_RESIZE50 ? 0.5 : v == V_RESIZE25 ? 0.25 : 0.6, NULL);
        out = t[0];
        png = v == V_PNG60;
        break;
    case V_CROP5:
    case V_CROP10:
    case V_CROP20: {
        const double f = v == V_CROP5 ? 0.05 : v == V_CROP10 ? 0.10 : 0.20;
        const int cw = (int)(W * (1 - f) + 0.5), ch = (int)(H * (1 - f) + 0.5);
        bad = vips_extract_area(img, &t[0], (W - cw) / 2, (H - ch) / 2, cw, ch, NULL);
        out = t[0];
        break;
    }
    case V_CROPSIDE: {
        const int side = photo % 4, dw = W / 10, dh = H / 10; /* left, right, top, bottom */
        bad = vips_extract_area(img, &t[0], side == 0 ? dw : 0, side == 2 ? dh : 0,
                                side < 2 ? W - dw : W, side >= 2 ? H - dh : H, NULL);
        out = t[0];
        break;
    }
    case V_ROT90:
    case V_ROT180:
    case V_ROT270:
        bad = vips_rot(img, &t[0],
                       v == V_ROT90    ? VIPS_ANGLE_D90
                       : v == V_ROT180 ? VIPS_ANGLE_D180
                                       : VIPS_ANGLE_D270,
                       NULL);
        out = t[0];
        break;
    case V_MIRROR:
        bad = vips_flip(img, &t[0], VIPS_DIRECTION_HORIZONTAL, NULL);
        out = t[0];
        break;
    case V_BRIGHT:
        bad = vips_linear1(img, &t[0], 1.25, 0.0, "uchar", TRUE, NULL);
        out = t[0];
        break;
    case V_CONTRAST:
        bad = vips_linear1(img, &t[0], 1.4, 128.0 - 1.4 * 128.0, "uchar", TRUE, NULL);
        out = t[0];
        break;
    case V_GRAY:
        bad = vips_colourspace(img, &t[0], VIPS_INTERPRETATION_B_W, NULL);
        out = t[0];
        break;
    case V_BLUR:
        bad = vips_gaussblur(img, &t[0], 3.0, NULL);
        out = t[0];
        break;
    case V_BAND: {
        static const double inks[3][3] = {{20, 20, 20}, {200, 30, 30}, {30, 60, 160}};
        const int bh = H * 15 / 100;
        bad = solid(ctx, W, bh, inks[photo % 3], &t[0]) ||
              vips_insert(img, t[0], &t[1], 0, H - bh, NULL) ||
              text_mask("SOLD  order #48213  2024-05-01", W * 8 / 10, bh * 6 / 10, &t[2]) ||
              paint_mask(ctx, t[1], t[2], (W - t[2]->Xsize) / 2, H - bh + (bh - t[2]->Ysize) / 2,
                         white, 1.0, &t[3]);
        out = t[3];
        break;
    }
    case V_WATERMARK:
        bad = text_mask("(c) SAMPLE", W * 7 / 10, H / 4, &t[0]) ||
              paint_mask(ctx, img, t[0], (W - t[0]->Xsize) / 2, (H - t[0]->Ysize) / 2, white, 0.6,
                         &t[1]);
        out = t[1];
        break;
    case V_BORDER: {
        const int bx = W * 8 / 100, by = H * 8 / 100;
        VipsArrayDouble *bg = vips_array_double_new(white, 3);
        bad = vips_embed(img, &t[0], bx, by, W + 2 * bx, H + 2 * by, "extend",
                         VIPS_EXTEND_BACKGROUND, "background", bg, NULL);
        vips_area_unref(VIPS_AREA(bg));
        out = t[0];
        break;
    }
    case V_SCREENSHOT: {
        const int CW = 1170, CH = 2532, bar = 141, dark = photo % 2 == 0;
        const double bg[3] = {dark ? 0 : 255, dark ? 0 : 255, dark ? 0 : 255};
        const double barc[3] = {dark ? 28 : 242, dark ? 28 : 242, dark ? 30 : 247};
        const double ink[3] = {dark ? 255 : 0, dark ? 255 : 0, dark ? 255 : 0};
        double s = (double)CW / W;
        if (H * s > CH - 2 * bar) s = (double)(CH - 2 * bar) / H;
        bad =
            vips_resize(img, &t[0], s, NULL) || solid(ctx, CW, CH, bg, &t[1]) ||
            vips_insert(t[1], t[0], &t[2], (CW - t[0]->Xsize) / 2, (CH - t[0]->Ysize) / 2, NULL) ||
            solid(ctx, CW, bar, barc, &t[3]) || vips_insert(t[2], t[3], &t[4], 0, 0, NULL) ||
            text_mask("9:41", 160, 50, &t[5]) ||
            paint_mask(ctx, t[4], t[5], 70, 60, ink, 1.0, &t[6]) ||
            solid(ctx, 60, 26, ink, &t[7]) || vips_insert(t[6], t[7], &t[8], CW - 130, 70, NULL);
        out = t[8];
        png = 1;
        break;
    }
    case V_ROT3:
    case V_ROT8:
        bad = vips_rotate(img, &t[0], v == V_ROT3 ? 3.0 : 8.0, NULL);
        out = t[0];
        break;
    default:
        bad = 1;
    }
    if (!bad)
        bad = png ? vips_pngsave_buffer(out, buf, len, "strip", TRUE, "compression", 1, NULL)
                  : vips_jpegsave_buffer(out, buf, len, "Q", q, "strip", TRUE, NULL);
    g_object_unref(ctx);
    return bad ? -1 : 0;
}

/* ---- per-image results --------------------------------------------------------------------- */

typedef struct item {
    int ok;
    nd_sig *sig;
    phash_pdq dih[PHASH_DIH_COUNT]; /* PDQ of the API's 320 box image, 8 variants */
    uint64_t p64;
    size_t sig_bytes;
    double sig_ms;
} item;

typedef struct eval {
    char **files;
    int nfiles;
    item *items; /* nfiles x V_COUNT */
    int next;
    int done_images;
    int verbose;
    pthread_mutex_t mu;
    const char *tmpdir;
} eval;

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Decodes buf like an upload and fills it. Returns 0 or -1 (reason printed). */
static int item_fill(eval *ev, const void *buf, size_t len, item *it, const char *label)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/eval_neardup.XXXXXX", ev->tmpdir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "\n%s: cannot create a temp file in %s: %s\n", label, ev->tmpdir,
                strerror(errno));
        return -1;
    }
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            unlink(path);
            fprintf(stderr, "\n%s: cannot write a temp file\n", label);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    close(fd);
    image_result r;
    ex_error e;
    ex_rc rc = image_process(path, NULL, &r, &e);
    unlink(path);
    if (rc) {
        fprintf(stderr, "\n%s: image_process refused it: %s (%s)\n", label, e.message, e.code);
        return -1;
    }
    const double t0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
    rc = nd_sig_compute(r.luma, r.luma_w, r.luma_h, &it->sig, &e);
    it->sig_ms = clock_ms(CLOCK_THREAD_CPUTIME_ID) - t0;
    if (!rc) {
        /* Baseline PDQ: the same 320 box image the signature's API PDQ is made from. */
        const int aw = r.luma_w > 320 ? 320 : r.luma_w, ah = r.luma_h > 320 ? 320 : r.luma_h;
        float *small = malloc(sizeof(float) * (size_t)aw * (size_t)ah);
        if (!small) rc = EX_ENOMEM;
        if (!rc)
            rc = phash_luma_resize(r.luma, r.luma_w, r.luma_h, small, aw, ah, PHASH_RESIZE_BOX, &e);
        if (!rc) rc = phash_pdq_dihedral(small, aw, ah, it->dih, &e);
        free(small);
    }
    image_result_release(&r);
    if (rc) {
        fprintf(stderr, "\n%s: signature failed: %s\n", label, e.message);
        nd_sig_free(it->sig);
        it->sig = NULL;
        return -1;
    }
    phash_pdq api;
    nd_sig_pdq(it->sig, &api);
    if (memcmp(api.bits, it->dih[0].bits, 32) != 0)
        fprintf(stderr, "\n%s: BUG: the signature's PDQ differs from phash's\n", label);
    it->p64 = nd_sig_phash64(it->sig);
    uint8_t *ser = NULL;
    if (nd_sig_serialize(it->sig, &ser, &it->sig_bytes, &e) == EX_OK) free(ser);
    it->ok = 1;
    return 0;
}

static void *worker(void *arg)
{
    eval *ev = arg;
    for (;;) {
        pthread_mutex_lock(&ev->mu);
        const int p = ev->next++;
        pthread_mutex_unlock(&ev->mu);
        if (p >= ev->nfiles) break;
        VipsImage *in = vips_image_new_from_file(ev->files[p], "access", VIPS_ACCESS_RANDOM, NULL);
        VipsImage *srgb = NULL, *mem = NULL;
        if (in && !vips_colourspace(in, &srgb, VIPS_INTERPRETATION_sRGB, NULL)) {
            VipsImage *flat = NULL, *u8 = NULL;
            if (vips_image_hasalpha(srgb)) {
                VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
                if (!vips_flatten(srgb, &flat, "background", white, NULL)) {
                    g_object_unref(srgb);
                    srgb = flat;
                }
                vips_area_unref(VIPS_AREA(white));
            }
            if (!vips_cast_uchar(srgb, &u8, NULL)) {
                mem = vips_image_copy_memory(u8);
                g_object_unref(u8);
            }
        }
        if (srgb) g_object_unref(srgb);
        if (in) g_object_unref(in);
        if (!mem || mem->Bands != 3) {
            fprintf(stderr, "\n%s: cannot load it as an sRGB photo: %s\n", ev->files[p],
                    vips_error_buffer());
            vips_error_clear();
            if (mem) g_object_unref(mem);
            continue;
        }
        for (int v = 0; v < V_COUNT; v++) {
            void *buf = NULL;
            size_t len = 0;
            char label[4200];
            snprintf(label, sizeof label, "%s [%s]", ev->files[p], variants[v].name);
            if (variant_make(mem, v, p, &buf, &len)) {
                fprintf(stderr, "\n%s: making the variant failed: %s\n", label,
                        vips_error_buffer());
                vips_error_clear();
                continue;
            }
            item_fill(ev, buf, len, &ev->items[(size_t)p * V_COUNT + v], label);
            g_free(buf);
            pthread_mutex_lock(&ev->mu);
            const int done = ++ev->done_images;
            pthread_mutex_unlock(&ev->mu);
            if (done % 10 == 0 || done == ev->nfiles * V_COUNT)
                fprintf(stderr, "\r  decoding and signing: %d / %d images", done,
                        ev->nfiles * V_COUNT);
        }
        g_object_unref(mem);
        vips_error_clear();
        vips_thread_shutdown();
    }
    return NULL;
}

/* ---- matching -------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int has_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *const ok[] = {".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(dot, ok[i]) == 0) return 1;
    return 0;
}

static int pdq_match(const item *q, const item *s)
{
    if (q->dih[0].quality < 50 || s->dih[0].quality < 50) return 0;
    for (int d = 0; d < PHASH_DIH_COUNT; d++)
        if (phash_pdq_distance(&q->dih[d], &s->dih[0]) <= 31) return 1;
    return 0;
}

static int p64_match(const item *q, const item *s)
{
    return phash_dct64_distance(q->p64, s->p64) <= 8;
}

/* Does any query key of q lie within the radius of an index key of s? (What hindex answers,
 * for one pair; used for the reverse direction, where the index would hold the variant.) */
static int keys_meet(const nd_sig *q, const nd_sig *s)
{
    uint8_t qk[ND_MAX_KEYS][32], sk[ND_MAX_KEYS][32];
    const size_t nq = nd_sig_index_keys(q, 1, qk, ND_MAX_KEYS);
    const size_t ns = nd_sig_index_keys(s, 0, sk, ND_MAX_KEYS);
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < ns; j++) {
            phash_pdq a, b;
            memcpy(a.bits, qk[i], 32);
            memcpy(b.bits, sk[j], 32);
            if (phash_pdq_distance(&a, &b) <= ND_INDEX_RADIUS) return 1;
        }
    return 0;
}

static const char *verdict(double v, double target)
{
    return v >= target ? "met" : "MISSED";
}

int main(int argc, char **argv)
{
    const char *dir = "../shared/testdata/neardup";
    int threads = 2, limit = 1 << 30, verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = atoi(argv[++i]);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: eval_neardup [DIR] [--threads N] [--limit N] [--verbose]\n");
            return 2;
        } else
            dir = argv[i];
    }
    threads = threads < 1 ? 1 : threads > 16 ? 16 : threads;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("eval_neardup: %s is absent: skipped\n", dir);
        return 0;
    }
    ex_error e;
    if (image_global_init(argv[0], &e)) {
        fprintf(stderr, "eval_neardup: %s\n", e.message);
        return 1;
    }
    eval ev = {.verbose = verbose};
    pthread_mutex_init(&ev.mu, NULL);
    ev.tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    DIR *d = opendir(dir);
    if (!d) {
        printf("eval_neardup: cannot read %s: skipped\n", dir);
        return 0;
    }
    size_t cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || !has_ext(de->d_name)) continue;
        if ((size_t)ev.nfiles == cap) {
            cap = cap ? 2 * cap : 256;
            char **nf = realloc(ev.files, cap * sizeof *nf);
            if (!nf) return 1;
            ev.files = nf;
        }
        const size_t n = strlen(dir) + strlen(de->d_name) + 2;
        if (!(ev.files[ev.nfiles] = malloc(n))) return 1;
        snprintf(ev.files[ev.nfiles++], n, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (ev.nfiles < 2) {
        printf("eval_neardup: fewer than 2 photos in %s: skipped\n", dir);
        return 0;
    }
    qsort(ev.files, (size_t)ev.nfiles, sizeof *ev.files, cmp_str);
    const int listed = ev.nfiles;
    if (ev.nfiles > limit) ev.nfiles = limit < 2 ? 2 : limit;
    const int N = ev.nfiles;
    ev.items = calloc((size_t)N * V_COUNT, sizeof *ev.items);
    if (!ev.items) return 1;

    printf("eval_neardup: %d photos in %s, %d variants each + the original, %d threads\n", N, dir,
           V_COUNT - 1, threads);
    fflush(stdout);
    const double t_start = clock_ms(CLOCK_MONOTONIC);
    pthread_t th[16];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, &ev);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "\n");
    const double t_decoded = clock_ms(CLOCK_MONOTONIC);
#define IT(p, v) (&ev.items[(size_t)(p)*V_COUNT + (v)])

    /* The index: every original's index keys under its photo number. */
    hindex *ix = hindex_new();
    if (!ix) return 1;
    size_t entries = 0, flat = 0, sig_max = 0, sig_sum = 0, qkeys = 0, nsig = 0;
    for (int p = 0; p < N; p++) {
        const item *o = IT(p, V_ORIG);
        if (!o->ok) continue;
        uint8_t keys[ND_MAX_KEYS][32];
        const size_t n = nd_sig_index_keys(o->sig, 0, keys, ND_MAX_KEYS);
        for (size_t k = 0; k < n; k++)
            if (hindex_add(ix, keys[k], (uint64_t)p, &e)) {
                fprintf(stderr, "hindex_add: %s\n", e.message);
                return 1;
            }
        entries += n;
        flat += nd_sig_flat(o->sig) != 0;
        if (nd_sig_flat(o->sig) && verbose) printf("  near-flat (no keys): %s\n", ev.files[p]);
    }
    for (int p = 0; p < N; p++)
        for (int v = 0; v < V_COUNT; v++)
            if (IT(p, v)->ok) {
                sig_sum += IT(p, v)->sig_bytes;
                sig_max = IT(p, v)->sig_bytes > sig_max ? IT(p, v)->sig_bytes : sig_max;
                uint8_t keys[ND_MAX_KEYS][32];
                qkeys += nd_sig_index_keys(IT(p, v)->sig, 1, keys, ND_MAX_KEYS);
                nsig++;
            }

    /* Decide every upload as the server does. */
    long hit[V_COUNT] = {0}, n_v[V_COUNT] = {0}, pdq_hit[V_COUNT] = {0}, p64_hit[V_COUNT] = {0};
    long hit_h[V_COUNT] = {0}, n_h[V_COUNT] = {0}; /* photos whose original is not near-flat */
    long rev_hit[V_COUNT] = {0};
    long pairs = 0, fm = 0, fm_pdq = 0, fm_p64 = 0, fm_alone = 0, cands = 0, cands_other = 0;
    double match_ms = 0.0, query_ms = 0.0, alone_ms = 0.0;
    long nqueries = 0, alone_n = 0;
    char *is_cand = calloc((size_t)N, 1);
    hindex_hit *hits = malloc(sizeof *hits * (size_t)N);
    if (!is_cand || !hits) return 1;
    for (int a = 0; a < N; a++) {
        for (int v = 0; v < V_COUNT; v++) {
            const item *q = IT(a, v);
            if (!q->ok || !IT(a, V_ORIG)->ok) continue;
            n_v[v]++;
            memset(is_cand, 0, (size_t)N);
            uint8_t keys[ND_MAX_KEYS][32];
            const size_t nk = nd_sig_index_keys(q->sig, 1, keys, ND_MAX_KEYS);
            const double tq = clock_ms(CLOCK_THREAD_CPUTIME_ID);
            for (size_t k = 0; k < nk; k++) {
                size_t nh = 0;
                if (hindex_query(ix, keys[k], ND_INDEX_RADIUS, hits, (size_t)N, &nh, &e)) {
                    fprintf(stderr, "hindex_query: %s\n", e.message);
                    return 1;
                }
                for (size_t h = 0; h < nh; h++)
                    is_cand[hits[h].id] = 1;
            }
            query_ms += clock_ms(CLOCK_THREAD_CPUTIME_ID) - tq;
            nqueries++;
            for (int b = 0; b < N; b++) {
                const item *s = IT(b, V_ORIG);
                if (!s->ok) continue;
                int ours = 0, dist = 0;
                const char *why = "";
                if (is_cand[b]) {
                    cands++;
                    cands_other += b != a;
                    const double tm = clock_ms(CLOCK_THREAD_CPUTIME_ID);
                    ours = nd_match(q->sig, s->sig, &dist, &why);
                    match_ms += clock_ms(CLOCK_THREAD_CPUTIME_ID) - tm;
                }
                if (b == a) {
                    hit[v] += ours;
                    if (!nd_sig_flat(s->sig)) {
                        n_h[v]++;
                        hit_h[v] += ours;
                    }
                    pdq_hit[v] += pdq_match(q, s);
                    p64_hit[v] += p64_match(q, s);
                    if (!ours && verbose)
                        printf("  missed: %s [%s]%s\n", ev.files[a], variants[v].name,
                               is_cand[b] ? " (candidate, not confirmed)" : " (no candidate)");
                    /* reverse: the original arrives after the variant */
                    if (v != V_ORIG && keys_meet(s->sig, q->sig))
                        rev_hit[v] += nd_match(s->sig, q->sig, NULL, NULL);
                    else if (v == V_ORIG)
                        rev_hit[v] += ours;
                    continue;
                }
                pairs++;
                fm += ours;
                fm_pdq += pdq_match(q, s);
                fm_p64 += p64_match(q, s);
                if (ours)
                    printf("  FALSE MATCH: %s [%s] ~ %s (%d, %s)\n", ev.files[a], variants[v].name,
                           ev.files[b], dist, why);
                const double tm = clock_ms(CLOCK_THREAD_CPUTIME_ID);
                const int alone = nd_match(q->sig, s->sig, NULL, NULL);
                alone_ms += clock_ms(CLOCK_THREAD_CPUTIME_ID) - tm;
                alone_n++;
                fm_alone += alone;
                if (alone && !ours && verbose)
                    printf("  nd_match alone would match: %s [%s] ~ %s\n", ev.files[a],
                           variants[v].name, ev.files[b]);
            }
        }
        fprintf(stderr, "\r  matching: %d / %d photos", a + 1, N);
    }
    fprintf(stderr, "\n");

    /* Margins: how close each stage came, whatever the decision (nd_explain_pair verifies the
     * closest key pairs even beyond the radius). Same photo: every image against its original.
     * Different photos: every image of A against the originals of the next EXPLAIN_OTHERS
     * photos, a sample, since this is ~1 ms per pair. */
    enum { EXPLAIN_OTHERS = 8 };
    double true_min = 2.0, unrel_max = -2.0;
    int true_kd_max = 0, unrel_kd_min = 256;
    long true_n = 0, unrel_n = 0, unrel_over = 0;
    double *true_scores = malloc(sizeof(double) * (size_t)N * V_COUNT);
    if (!true_scores) return 1;
    for (int a = 0; a < N; a++) {
        const item *o = IT(a, V_ORIG);
        if (!o->ok || nd_sig_flat(o->sig)) continue;
        for (int v = 0; v < V_COUNT; v++) {
            const item *q = IT(a, v);
            if (!q->ok) continue;
            nd_explain x;
            nd_explain_pair(q->sig, o->sig, &x);
            true_scores[true_n++] = x.score;
            true_min = x.score < true_min ? x.score : true_min;
            true_kd_max = x.key_distance > true_kd_max ? x.key_distance : true_kd_max;
            for (int k = 1; k <= EXPLAIN_OTHERS && k < N; k++) {
                const item *s = IT((a + k) % N, V_ORIG);
                if (!s->ok) continue;
                nd_explain_pair(q->sig, s->sig, &x);
                unrel_n++;
                unrel_max = x.score > unrel_max ? x.score : unrel_max;
                unrel_kd_min = x.key_distance < unrel_kd_min ? x.key_distance : unrel_kd_min;
                unrel_over += x.score >= 0.75;
                if (x.score >= 0.6 && verbose)
                    printf("  close unrelated: %s [%s] ~ %s: keys %d, agreement %.3f\n",
                           ev.files[a], variants[v].name, ev.files[(a + k) % N], x.key_distance,
                           x.score);
            }
        }
        fprintf(stderr, "\r  margins: %d / %d photos", a + 1, N);
    }
    fprintf(stderr, "\n");
    qsort(true_scores, (size_t)true_n, sizeof *true_scores, cmp_double);
    const double t_end = clock_ms(CLOCK_MONOTONIC);

    printf("\n%-24s %5s  %8s %8s %8s  %8s\n", "variant", "n", "ours", "PDQ<=31", "pHash<=8",
           "ours rev");
    double sum[3] = {0, 0, 0}, sum_rev = 0;
    long total = 0;
    double worst_benign = 1.0, worst_fraud = 1.0;
    const char *wb = "all", *wf = "all";
    for (int v = 0; v < V_COUNT; v++) {
        if (!n_v[v]) continue;
        const double r = (double)hit[v] / n_v[v], rp = (double)pdq_hit[v] / n_v[v];
        const double r6 = (double)p64_hit[v] / n_v[v], rr = (double)rev_hit[v] / n_v[v];
        printf("%-24s %5ld  %8.3f %8.3f %8.3f  %8.3f%s\n", variants[v].name, n_v[v], r, rp, r6, rr,
               variants[v].group == G_BENIGN  ? "   (target 0.99)"
               : variants[v].group == G_FRAUD ? "   (target 0.90)"
                                              : "");
        if (v == V_ORIG) continue;
        sum[0] += hit[v];
        sum[1] += pdq_hit[v];
        sum[2] += p64_hit[v];
        sum_rev += rev_hit[v];
        total += n_v[v];
        if (variants[v].group == G_BENIGN && r < worst_benign)
            worst_benign = r, wb = variants[v].name;
        if (variants[v].group == G_FRAUD && r < worst_fraud) worst_fraud = r, wf = variants[v].name;
    }
    printf("%-24s %5ld  %8.3f %8.3f %8.3f  %8.3f   (target 0.95)\n", "overall (variants)", total,
           sum[0] / total, sum[1] / total, sum[2] / total, sum_rev / total);
    printf("\nfalse matches, pairs of different photos (each variant or original of A vs every "
           "original of B != A)\n");
    printf("  pairs tested            %ld (%d photos x %d images x %d others; %ld independent "
           "photo pairs)\n",
           pairs, N, V_COUNT, N - 1, (long)N * (N - 1) / 2);
    printf("  ours (index + nd_match) %ld   rate %.2e\n", fm, pairs ? (double)fm / pairs : 0.0);
    printf("  PDQ <= 31               %ld   rate %.2e\n", fm_pdq,
           pairs ? (double)fm_pdq / pairs : 0.0);
    printf("  pHash64 <= 8            %ld   rate %.2e\n", fm_p64,
           pairs ? (double)fm_p64 / pairs : 0.0);
    printf("  nd_match alone, every pair (no index filter): %ld\n", fm_alone);
    printf("  candidates from the index: %ld for %ld uploads, %ld of them another photo\n", cands,
           nqueries, cands_other);

    printf("\nmargins (nd_explain_pair: closest keys, and edge-detail agreement of the closest "
           "key pairs even beyond the radius; accepted at >= 0.75)\n");
    printf("  same photo              %ld pairs (hashable photos): lowest agreement %.3f, 1st "
           "percentile %.3f; farthest closest-key %d\n",
           true_n, true_min, true_n ? true_scores[true_n / 100] : 0.0, true_kd_max);
    printf("  different photos        %ld pairs (sample): highest agreement %.3f, %ld >= 0.75; "
           "closest key %d (radius %d)\n",
           unrel_n, unrel_max, unrel_over, unrel_kd_min, ND_INDEX_RADIUS);
    free(true_scores);

    double *ms = malloc(sizeof(double) * (nsig ? nsig : 1));
    size_t nms = 0;
    for (int p = 0; p < N; p++)
        for (int v = 0; v < V_COUNT; v++)
            if (IT(p, v)->ok) ms[nms++] = IT(p, v)->sig_ms;
    qsort(ms, nms, sizeof *ms, cmp_double);
    printf("\ncost (thread CPU time; the machine may be shared)\n");
    if (nms)
        printf("  nd_sig_compute          median %.2f ms, p99 %.2f ms (%zu images, 1600 px "
               "previews)\n",
               ms[nms / 2], ms[nms * 99 / 100], nms);
    printf("  nd_match, candidate     %.3f ms mean (%ld calls, verification included)\n",
           cands ? match_ms / cands : 0.0, cands);
    printf("  nd_match, any pair      %.4f ms mean (%ld calls, most end at the key check)\n",
           alone_n ? alone_ms / alone_n : 0.0, alone_n);
    printf("  index queries           %.3f ms per upload (%zu keys on average; index of %zu "
           "entries)\n",
           nqueries ? query_ms / nqueries : 0.0, nsig ? qkeys / nsig : 0, entries);
    printf("  index entries per image %.1f (originals; %zu near-flat with none)\n",
           N ? (double)entries / N : 0.0, flat);
    printf("  signature               %.0f bytes mean, %zu max\n",
           nsig ? (double)sig_sum / nsig : 0.0, sig_max);
    printf("  wall time               %.0f s decoding + signing, %.0f s matching and margins\n",
           (t_decoded - t_start) / 1e3, (t_end - t_decoded) / 1e3);

    printf("\ntargets\n");
    printf("  benign >= 0.99 each     worst %.3f (%s): %s\n", worst_benign, wb,
           verdict(worst_benign, 0.99));
    printf("  fraud edits >= 0.90     worst %.3f (%s): %s\n", worst_fraud, wf,
           verdict(worst_fraud, 0.90));
    printf("  overall >= 0.95         %.3f: %s\n", sum[0] / total, verdict(sum[0] / total, 0.95));
    /* Near-flat photos must not match (issue 4), so they cap every row; the same targets over
     * the others: */
    double wbh = 1.0, wfh = 1.0;
    for (int v = 1; v < V_COUNT; v++) {
        if (!n_h[v]) continue;
        const double r = (double)hit_h[v] / n_h[v];
        if (variants[v].group == G_BENIGN && r < wbh) wbh = r;
        if (variants[v].group == G_FRAUD && r < wfh) wfh = r;
    }
    printf("  same, without the %zu near-flat photo(s): benign worst %.3f (%s), fraud worst %.3f "
           "(%s)\n",
           flat, wbh, verdict(wbh, 0.99), wfh, verdict(wfh, 0.90));
    printf("  false <= 1e-5           %ld in %ld: %s\n", fm, pairs,
           (double)fm <= 1e-5 * (double)pairs ? "met" : "MISSED");

    free(ms);
    free(hits);
    free(is_cand);
    hindex_free(ix);
    for (int p = 0; p < N; p++) {
        for (int v = 0; v < V_COUNT; v++)
            nd_sig_free(IT(p, v)->sig);
        free(ev.files[p]);
    }
    for (int p = N; p < listed; p++)
        free(ev.files[p]);
    free(ev.files);
    free(ev.items);
    image_global_shutdown();
    return 0;
}
