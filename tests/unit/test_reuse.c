/* test_reuse.c - reused-image detection on real photos (tests/data/photos).
 *
 * Every image goes the server's way: bytes in a temp file, image_process, its luma to
 * reuse_sig_compute; candidates from the two indexes the matcher keeps (PDQ keys in a hindex,
 * visual words in a word index), then reuse_match. Edited copies are made here with libvips,
 * with crops and tilts that sit on no grid. The truths checked are known without our code: an
 * edited copy shows the same picture as its source; the photos listed below are different
 * pictures (checked by eye); a uniform frame, an underexposed photo and the smooth gradient of
 * "User Comment Encoding.jpg" carry no picture to recognise (their PDQ quality is under
 * Meta's 50 too, checked below with phash).
 */
#include "exhibit/hindex.h"
#include "exhibit/image.h"
#include "exhibit/reuse.h"
#include "exhibit/wordindex.h"
#include "exhibit/phash.h"
#include "unit.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>
#include <vips/vips.h>

/* Distinct real photos (cameras, scenes, orientations, 320 px to 12 MP). */
static const char *const photos[] = {
    "drewnoakes_Android Depth Map.jpg",
    "drewnoakes_Apple iPhone 4.jpg",
    "drewnoakes_Apple iPhone 5.jpg",
    "drewnoakes_Canon EOS 7D.jpg",
    "drewnoakes_Canon EOS D60.jpg",
    "drewnoakes_Canon EOS REBEL T3i.jpg",
    "drewnoakes_Canon PowerShot A85.jpg",
    "drewnoakes_Casio QV-7000SX.jpg",
    "drewnoakes_FujiFilm FinePixS1Pro (1).jpg",
    "drewnoakes_HP PhotoSmart 735.jpg",
    "drewnoakes_HTC Desire.jpg",
    "drewnoakes_Issue 116.jpg",
    "drewnoakes_Issue 308.jpg",
    "drewnoakes_Kodak DC240.jpg",
    "drewnoakes_Minolta DiMAGE X.jpg",
    "drewnoakes_Nikon D1X.jpg",
    "drewnoakes_Nikon D5000.jpg",
    "drewnoakes_Nikon E995 (iptc).jpg",
    "drewnoakes_Olympus PEN E-P3.jpg",
    "drewnoakes_Ricoh RDC5300.jpg",
    "drewnoakes_Samsung GT-I9000 (Galaxy S).jpg",
    "drewnoakes_Sony DSC-HX5V (2).jpg",
    "ianare_HMD_Nokia_8.3_5G.jpg",
    "recurser_Landscape_0.jpg",
};
enum { NPHOTOS = sizeof photos / sizeof photos[0] };

/* Sources of the edited copies: landscape and portrait, big and small. */
static const char *const sources[] = {
    "drewnoakes_Canon EOS D60.jpg",      "drewnoakes_Nikon D5000.jpg",
    "drewnoakes_Panasonic DMC-LC40.jpg", "drewnoakes_Samsung SM-J327T1.jpg",
    "recurser_Landscape_0.jpg",
};

static reuse_sig *sigs[NPHOTOS];

/* ---- helpers --------------------------------------------------------------------------------- */

/* Path of tests/data/photos/name (static buffer, like unit_data). */
static const char *photo(const char *name)
{
    static char rel[512];
    snprintf(rel, sizeof rel, "photos/%s", name);
    return unit_data(rel);
}

/* Signs the luma image_process makes of a file. NULL (and a failed check) on error. */
static reuse_sig *sign_file(const char *path)
{
    image_result r;
    ex_error e;
    if (image_process(path, NULL, &r, &e) != EX_OK) {
        fprintf(stderr, "  image_process %s: %s\n", path, e.message);
        return NULL;
    }
    reuse_sig *s = NULL;
    if (reuse_sig_compute(r.luma, r.luma_w, r.luma_h, &s, &e) != EX_OK)
        fprintf(stderr, "  reuse_sig_compute %s: %s\n", path, e.message);
    image_result_release(&r);
    return s;
}

/* Signs encoded image bytes as an upload: temp file, image_process, reuse_sig_compute. */
static reuse_sig *sign_bytes(const void *buf, size_t len)
{
    char path[] = "/tmp/test_reuse.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    const int ok = write(fd, buf, len) == (ssize_t)len;
    close(fd);
    reuse_sig *s = ok ? sign_file(path) : NULL;
    unlink(path);
    return s;
}

/* Decodes a file with libvips itself (upright, sRGB, 8 bits): for edits and for inputs that
 * image_process refuses. NULL on error. */
static VipsImage *load_upright(const char *path)
{
    VipsImage *in = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, NULL);
    VipsImage *rot = NULL, *rgb = NULL, *u8 = NULL, *mem = NULL;
    if (in && !vips_autorot(in, &rot, NULL) &&
        !vips_colourspace(rot, &rgb, VIPS_INTERPRETATION_sRGB, NULL) &&
        !vips_cast_uchar(rgb, &u8, NULL))
        mem = vips_image_copy_memory(u8);
    if (u8) g_object_unref(u8);
    if (rgb) g_object_unref(rgb);
    if (rot) g_object_unref(rot);
    if (in) g_object_unref(in);
    if (!mem) vips_error_clear();
    return mem;
}

/* Luma (0.299 R + 0.587 G + 0.114 B, as image_process computes it) of a 3-band image,
 * multiplied by gain. Caller frees. */
static float *luma_of(VipsImage *im, float gain)
{
    size_t n = 0;
    uint8_t *px = vips_image_write_to_memory(im, &n);
    if (!px || im->Bands != 3) {
        g_free(px);
        return NULL;
    }
    const size_t np = (size_t)im->Xsize * (size_t)im->Ysize;
    float *l = malloc(np * sizeof *l);
    for (size_t i = 0; l && i < np; i++)
        l[i] = gain * (0.299f * px[3 * i] + 0.587f * px[3 * i + 1] + 0.114f * px[3 * i + 2]);
    g_free(px);
    return l;
}

enum { E_REENCODE, E_CROP, E_TILT, E_BORDER, E_MIRROR, E_BAND, E_COUNT };
static const char *const edit_names[E_COUNT] = {"JPEG q40 re-encode",
                                                "crop of 42% of the area from near a corner",
                                                "tilt by 12 degrees, black corners",
                                                "8% white border",
                                                "mirror",
                                                "solid text band over the bottom 15%"};

/* Makes edit k of img as JPEG bytes (g_free them). 0 on success. */
static int edit(VipsImage *img, int k, void **buf, size_t *len)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 8);
    const int W = img->Xsize, H = img->Ysize;
    VipsImage *out = img;
    int bad = 0, q = 90;
    switch (k) {
    case E_REENCODE:
        q = 40;
        break;
    case E_CROP: /* 0.7 x 0.6 of the sides, off every grid */
        bad = vips_extract_area(img, &t[0], W * 23 / 100, H * 7 / 100, W * 70 / 100, H * 60 / 100,
                                NULL);
        out = t[0];
        break;
    case E_TILT:
        bad = vips_rotate(img, &t[0], 12.0, NULL);
        out = t[0];
        break;
    case E_BORDER: {
        VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
        bad = vips_embed(img, &t[0], W * 8 / 100, H * 8 / 100, W + 2 * (W * 8 / 100),
                         H + 2 * (H * 8 / 100), "extend", VIPS_EXTEND_BACKGROUND, "background",
                         white, NULL);
        vips_area_unref(VIPS_AREA(white));
        out = t[0];
        break;
    }
    case E_MIRROR:
        bad = vips_flip(img, &t[0], VIPS_DIRECTION_HORIZONTAL, NULL);
        out = t[0];
        break;
    case E_BAND: {
        /* A dark band with white text, as a seller's "SOLD" caption. */
        const int bh = H * 15 / 100;
        double ink[3] = {30, 30, 30}, one[3] = {1, 1, 1}, white[3] = {255, 255, 255};
        bad = vips_black(&t[0], W, bh, "bands", 3, NULL) ||
              vips_linear(t[0], &t[1], one, ink, 3, "uchar", TRUE, NULL) ||
              vips_insert(img, t[1], &t[2], 0, H - bh, NULL) ||
              vips_text(&t[3], "SOLD 2024-05-01 order 48213", "font", "DejaVu Sans Bold", "width",
                        W * 8 / 10, "height", bh / 2, NULL) ||
              vips_embed(t[3], &t[4], (W - t[3]->Xsize) / 2, H - bh + (bh - t[3]->Ysize) / 2, W, H,
                         NULL) ||
              !(t[5] = vips_image_new_from_image(t[2], white, 3)) ||
              vips_ifthenelse(t[4], t[5], t[2], &t[6], "blend", TRUE, NULL);
        out = t[6];
        break;
    }
    default:
        bad = 1;
    }
    if (!bad) bad = vips_jpegsave_buffer(out, buf, len, "Q", q, "strip", TRUE, NULL);
    if (bad) vips_error_clear();
    g_object_unref(ctx);
    return bad ? -1 : 0;
}

/* The matcher's two indexes, over photo numbers. */
typedef struct two_index {
    hindex *pdq;
    widx *words;
} two_index;

static int index_open(two_index *ix)
{
    ix->pdq = hindex_new();
    ix->words = widx_new(FT_WORDS);
    return ix->pdq && ix->words ? 0 : -1;
}

static void index_close(two_index *ix)
{
    hindex_free(ix->pdq);
    widx_free(ix->words);
}

static void index_add(two_index *ix, const reuse_sig *s, uint64_t id)
{
    uint8_t keys[REUSE_MAX_KEYS][32];
    uint32_t words[2 * FT_MAX_FEATS];
    ex_error e;
    const size_t nk = reuse_pdq_keys(s, 0, keys, REUSE_MAX_KEYS);
    for (size_t k = 0; k < nk; k++)
        CHECK(hindex_add(ix->pdq, keys[k], id, &e) == EX_OK);
    const size_t nw = reuse_words(s, 0, words, 2 * FT_MAX_FEATS);
    CHECK(widx_add(ix->words, id, words, nw, &e) == EX_OK);
}

/* Ids whose PDQ lies within the radius of one of q's turns, or among the best word scores. */
static size_t candidates(const two_index *ix, const reuse_sig *q, uint64_t *ids, size_t max)
{
    uint8_t keys[REUSE_MAX_KEYS][32];
    uint32_t words[2 * FT_MAX_FEATS];
    const size_t nk = reuse_pdq_keys(q, 1, keys, REUSE_MAX_KEYS);
    size_t n = 0;
    uint64_t found[96];
    size_t nf = 0;
    for (size_t k = 0; k < nk; k++) {
        hindex_hit hits[64];
        size_t nh = 0;
        ex_error e;
        if (hindex_query(ix->pdq, keys[k], REUSE_PDQ_RADIUS, hits, 64, &nh, &e) != EX_OK) continue;
        for (size_t h = 0; h < nh && nf < 96; h++)
            found[nf++] = hits[h].id;
    }
    widx_hit wh[32];
    const size_t nw = reuse_words(q, 1, words, 2 * FT_MAX_FEATS);
    const int got = widx_query(ix->words, words, nw, 0, 5, wh, 32);
    for (int h = 0; h < got && nf < 96; h++)
        found[nf++] = wh[h].id;
    for (size_t h = 0; h < nf; h++) {
        size_t i = 0;
        while (i < n && ids[i] != found[h])
            i++;
        if (i == n && n < max) ids[n++] = found[h];
    }
    return n;
}

/* reuse_match as a yes/no with its distance and the tier that decided. */
static int same(const reuse_sig *q, const reuse_sig *c, int *dist, const char **why)
{
    reuse_result r;
    reuse_match(q, c, &r);
    if (dist) *dist = r.distance;
    if (why) *why = r.tier;
    return r.match;
}

/* ---- tests ----------------------------------------------------------------------------------- */

TEST(signs_real_photos)
{
    for (int i = 0; i < NPHOTOS; i++) {
        sigs[i] = sign_file(photo(photos[i]));
        CHECKF(sigs[i] != NULL, "%s", photos[i]);
        if (!sigs[i]) continue;
        /* Real pictures get features to find them by, and their mirror image's for queries. */
        const ft_set *f = reuse_sig_features(sigs[i]);
        CHECKF(!reuse_sig_flat(sigs[i]) && f->n >= 30 && f->n <= FT_MAX_FEATS && f->nm == f->n,
               "%s: %zu features", photos[i], f->n);
    }
}

/* The API's PDQ is phash's PDQ of the image box-shrunk to 320x320, and its pHash phash's. */
TEST(api_hashes_are_phash)
{
    VipsImage *img = load_upright(photo("drewnoakes_Nikon D5000.jpg"));
    CHECK(img != NULL);
    if (!img) return;
    float *l = luma_of(img, 1.0f);
    const int w = img->Xsize, h = img->Ysize;
    g_object_unref(img);
    CHECK(l != NULL);
    if (!l) return;
    reuse_sig *s = NULL;
    ex_error e;
    CHECK(reuse_sig_compute(l, w, h, &s, &e) == EX_OK);
    float *small = malloc(sizeof(float) * 320 * 320);
    phash_pdq want, got;
    uint64_t want64 = 0;
    CHECK(small && phash_luma_resize(l, w, h, small, 320, 320, PHASH_RESIZE_BOX, &e) == EX_OK);
    CHECK(phash_pdq_compute(small, 320, 320, &want, &e) == EX_OK);
    CHECK(phash_dct64_compute(l, w, h, &want64, &e) == EX_OK);
    if (s) {
        reuse_sig_pdq(s, &got);
        CHECK(memcmp(got.bits, want.bits, 32) == 0 && got.quality == want.quality);
        CHECKF(phash_dct64_distance(reuse_sig_phash64(s), want64) <= 1, "phash64 %d bits apart",
               phash_dct64_distance(reuse_sig_phash64(s), want64));
    }
    reuse_sig_free(s);
    free(small);
    free(l);
}

/* Edited copies are found through the index and confirmed, in both upload orders. */
TEST(edited_copies_match)
{
    two_index ix;
    CHECK(index_open(&ix) == 0);
    enum { NSRC = sizeof sources / sizeof sources[0] };
    reuse_sig *orig[NSRC] = {0};
    for (size_t i = 0; i < NSRC; i++) {
        orig[i] = sign_file(photo(sources[i]));
        CHECKF(orig[i] != NULL, "%s", sources[i]);
        if (orig[i]) index_add(&ix, orig[i], (uint64_t)i);
    }
    for (size_t i = 0; i < NSRC; i++) {
        VipsImage *img = load_upright(photo(sources[i]));
        CHECKF(img != NULL, "%s", sources[i]);
        if (!img || !orig[i]) {
            if (img) g_object_unref(img);
            continue;
        }
        for (int k = 0; k < E_COUNT; k++) {
            void *buf = NULL;
            size_t len = 0;
            CHECKF(edit(img, k, &buf, &len) == 0, "%s: %s", sources[i], edit_names[k]);
            if (!buf) continue;
            reuse_sig *copy = sign_bytes(buf, len);
            g_free(buf);
            CHECK(copy != NULL);
            if (!copy) continue;
            uint64_t ids[16];
            const size_t nc = candidates(&ix, copy, ids, 16);
            int found = 0;
            for (size_t c = 0; c < nc; c++)
                found |= ids[c] == i;
            int dist = -1;
            const char *why = NULL;
            const int m = same(copy, orig[i], &dist, &why);
            CHECKF(found && m, "%s, %s: candidate %d, match %d (%s)", sources[i], edit_names[k],
                   found, m, why ? why : "");
            CHECKF(dist >= 1 && dist <= 256 && why && *why, "%s, %s: distance %d", sources[i],
                   edit_names[k], dist);
            /* The original uploaded after its copy: the same decision. */
            CHECKF(same(orig[i], copy, NULL, NULL) == 1, "%s, %s: reverse", sources[i],
                   edit_names[k]);
            /* And no other source photo matches the copy. */
            for (size_t c = 0; c < nc; c++)
                if (ids[c] != i)
                    CHECKF(!same(copy, orig[ids[c]], NULL, NULL), "%s, %s matched %s", sources[i],
                           edit_names[k], sources[ids[c]]);
            reuse_sig_free(copy);
        }
        g_object_unref(img);
    }
    for (size_t i = 0; i < NSRC; i++)
        reuse_sig_free(orig[i]);
    index_close(&ix);
}

/* No two different photos match, through the index or by reuse_match on every ordered pair. */
TEST(different_photos_do_not_match)
{
    two_index ix;
    CHECK(index_open(&ix) == 0);
    for (int i = 0; i < NPHOTOS; i++)
        if (sigs[i]) index_add(&ix, sigs[i], (uint64_t)i);
    int pairs = 0;
    for (int a = 0; a < NPHOTOS; a++) {
        if (!sigs[a]) continue;
        /* Each photo finds itself... */
        uint64_t ids[NPHOTOS];
        const size_t nc = candidates(&ix, sigs[a], ids, NPHOTOS);
        int self = 0;
        for (size_t c = 0; c < nc; c++)
            self |= ids[c] == (uint64_t)a;
        CHECKF(self, "%s is not its own candidate", photos[a]);
        int dist = -1;
        CHECKF(same(sigs[a], sigs[a], &dist, NULL) == 1 && dist <= 40, "%s vs itself: %d",
               photos[a], dist);
        /* ...and nothing else. */
        for (int b = 0; b < NPHOTOS; b++) {
            if (b == a || !sigs[b]) continue;
            const char *why = NULL;
            CHECKF(!same(sigs[a], sigs[b], &dist, &why), "%s matched %s (%d, %s)", photos[a],
                   photos[b], dist, why);
            CHECK(dist == 256);
            pairs++;
        }
    }
    CHECKF(pairs >= 20 * 19, "only %d pairs compared", pairs);
    index_close(&ix);
}

/* Near-flat images: no PDQ key, too few features, no matches, even with themselves. */
static void check_flat(const char *what, const float *l, int w, int h)
{
    reuse_sig *s = NULL;
    ex_error e;
    CHECKF(reuse_sig_compute(l, w, h, &s, &e) == EX_OK, "%s", what);
    if (!s) return;
    uint8_t keys[REUSE_MAX_KEYS][32];
    CHECKF(reuse_sig_flat(s) == 1, "%s is not flat", what);
    CHECKF(reuse_pdq_keys(s, 0, keys, REUSE_MAX_KEYS) == 0, "%s has PDQ keys", what);
    const char *why = NULL;
    CHECKF(same(s, s, NULL, &why) == 0, "%s matches itself", what);
    for (int i = 0; i < NPHOTOS; i++)
        if (sigs[i]) CHECKF(same(s, sigs[i], NULL, NULL) == 0, "%s ~ %s", what, photos[i]);
    /* Independent check that these are what Meta calls unhashable. */
    phash_pdq p;
    reuse_sig_pdq(s, &p);
    CHECKF(p.quality < 50, "%s: PDQ quality %d", what, p.quality);
    reuse_sig_free(s);
}

TEST(near_flat_images_never_match)
{
    enum { W = 640, H = 480 };
    float *l = malloc(sizeof(float) * W * H);
    CHECK(l != NULL);
    if (!l) return;
    for (int i = 0; i < W * H; i++)
        l[i] = 128.0f;
    check_flat("a uniform grey frame", l, W, H);
    free(l);

    /* An underexposed real photo: every value divided by 50 (0..5). */
    VipsImage *img = load_upright(photo("drewnoakes_Canon EOS REBEL T3i.jpg"));
    CHECK(img != NULL);
    if (img) {
        float *dark = luma_of(img, 1.0f / 50);
        CHECK(dark != NULL);
        if (dark) check_flat("a photo at 2% exposure", dark, img->Xsize, img->Ysize);
        free(dark);
        g_object_unref(img);
    }

    /* A real upload whose pixels are a smooth grey gradient. The file is truncated, so the
     * server refuses it; decoded leniently (libvips fills the missing rows with one colour)
     * it must still sign as flat. */
    img = load_upright(photo("drewnoakes_User Comment Encoding.jpg"));
    CHECK(img != NULL);
    if (img) {
        float *g = luma_of(img, 1.0f);
        CHECK(g != NULL);
        if (g) check_flat("User Comment Encoding.jpg", g, img->Xsize, img->Ysize);
        free(g);
        g_object_unref(img);
    }
}

TEST(serialize_round_trip)
{
    for (int i = 0; i < NPHOTOS; i++) {
        if (!sigs[i]) continue;
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        ex_error e;
        CHECK(reuse_sig_serialize(sigs[i], &buf, &len, &e) == EX_OK);
        if (!buf) continue;
        CHECKF(len <= REUSE_SIG_MAX_BYTES, "%zu bytes", len);
        reuse_sig *p = NULL;
        CHECK(reuse_sig_parse(buf, len, &p, &e) == EX_OK);
        if (p) {
            CHECK(reuse_sig_serialize(p, &buf2, &len2, &e) == EX_OK);
            CHECK(buf2 && len2 == len && memcmp(buf, buf2, len) == 0);
            int dist = -1;
            CHECK(same(p, sigs[i], &dist, NULL) == 1 && dist <= 40);
            phash_pdq a, b;
            reuse_sig_pdq(p, &a);
            reuse_sig_pdq(sigs[i], &b);
            CHECK(memcmp(a.bits, b.bits, 32) == 0 && a.quality == b.quality);
            CHECK(reuse_sig_phash64(p) == reuse_sig_phash64(sigs[i]));
            uint8_t k1[REUSE_MAX_KEYS][32], k2[REUSE_MAX_KEYS][32];
            static uint32_t w1[FT_MAX_FEATS], w2[FT_MAX_FEATS];
            const size_t n1 = reuse_pdq_keys(p, 0, k1, REUSE_MAX_KEYS);
            const size_t n2 = reuse_pdq_keys(sigs[i], 0, k2, REUSE_MAX_KEYS);
            CHECK(n1 == n2 && memcmp(k1, k2, n1 * 32) == 0);
            const size_t m1 = reuse_words(p, 0, w1, FT_MAX_FEATS);
            const size_t m2 = reuse_words(sigs[i], 0, w2, FT_MAX_FEATS);
            CHECK(m1 == m2 && memcmp(w1, w2, m1 * sizeof *w1) == 0);
            /* The parsed copy decides like the original against the other photos. */
            for (int j = 0; j < NPHOTOS; j++)
                if (j != i && sigs[j])
                    CHECK(same(p, sigs[j], NULL, NULL) == same(sigs[i], sigs[j], NULL, NULL));
        }
        reuse_sig_free(p);
        free(buf);
        free(buf2);
    }
}

TEST(corrupt_signatures_are_refused)
{
    CHECK(sigs[0] != NULL);
    if (!sigs[0]) return;
    uint8_t *buf = NULL;
    size_t len = 0;
    ex_error e;
    CHECK(reuse_sig_serialize(sigs[0], &buf, &len, &e) == EX_OK);
    if (!buf) return;
    uint8_t *copy = malloc(len + 1);
    CHECK(copy != NULL);
    if (!copy) {
        free(buf);
        return;
    }
    reuse_sig *p = NULL;
    int refused = 0, tried = 0;
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        memcpy(copy, buf, n);
        p = NULL;
        memset(&e, 0, sizeof e);
        const ex_rc rc = reuse_sig_parse(copy, n, &p, &e);
        refused += rc == EX_EINVAL && p == NULL && strcmp(e.code, "reuse_sig_corrupt") == 0;
        tried++;
        reuse_sig_free(p);
    }
    /* a byte too many */
    memcpy(copy, buf, len);
    copy[len] = 0;
    p = NULL;
    refused += reuse_sig_parse(copy, len + 1, &p, &e) == EX_EINVAL && !p;
    tried++;
    /* every byte changed, one at a time */
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        p = NULL;
        refused += reuse_sig_parse(copy, len, &p, &e) == EX_EINVAL && !p;
        tried++;
        reuse_sig_free(p);
    }
    CHECKF(refused == tried, "%d of %d damaged signatures refused", refused, tried);
    p = NULL;
    CHECK(reuse_sig_parse(NULL, 10, &p, &e) == EX_EINVAL && !p);
    CHECK(reuse_sig_parse(buf, len, NULL, &e) == EX_EINVAL);
    static const uint8_t junk[] = "EXND\x01 this is not a signature";
    CHECK(reuse_sig_parse(junk, sizeof junk, &p, &e) == EX_EINVAL && !p);
    /* A signature of another version asks for a reindex. */
    memcpy(copy, buf, len);
    copy[4] = 1;
    CHECK(reuse_sig_parse(copy, len, &p, &e) == EX_EINVAL && !p &&
          strcmp(e.code, "reuse_sig_old") == 0);
    free(copy);
    free(buf);
}

TEST(bad_input_is_refused)
{
    reuse_sig *s = NULL;
    ex_error e;
    float px[64];
    for (int i = 0; i < 64; i++)
        px[i] = (float)(i * 3 % 256);
    CHECK(reuse_sig_compute(NULL, 8, 8, &s, &e) == EX_EINVAL && !s);
    CHECK(reuse_sig_compute(px, 0, 8, &s, &e) == EX_EINVAL && !s);
    CHECK(reuse_sig_compute(px, 8, -1, &s, &e) == EX_EINVAL && !s);
    CHECK(reuse_sig_compute(px, 1 << 15, 1 << 15, &s, &e) == EX_EINVAL && !s);
    px[10] = NAN;
    CHECK(reuse_sig_compute(px, 8, 8, &s, &e) == EX_EINVAL && !s &&
          !strcmp(e.code, "reuse_bad_image"));
    px[10] = INFINITY;
    CHECK(reuse_sig_compute(px, 8, 8, &s, &e) == EX_EINVAL && !s);
    /* Tiny but valid: signed, too small to match anything. */
    px[10] = 30.0f;
    CHECK(reuse_sig_compute(px, 8, 8, &s, &e) == EX_OK && s && reuse_sig_flat(s));
    reuse_sig_free(s);
    s = NULL;
    CHECK(reuse_sig_compute(px, 1, 1, &s, &e) == EX_OK && s);
    reuse_sig_free(s);
    reuse_sig_free(NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    ex_error e;
    if (image_global_init(argv[0], &e) != EX_OK) {
        fprintf(stderr, "image_global_init: %s\n", e.message);
        return 1;
    }
    RUN(signs_real_photos);
    RUN(api_hashes_are_phash);
    RUN(edited_copies_match);
    RUN(different_photos_do_not_match);
    RUN(near_flat_images_never_match);
    RUN(serialize_round_trip);
    RUN(corrupt_signatures_are_refused);
    RUN(bad_input_is_refused);
    for (int i = 0; i < NPHOTOS; i++)
        reuse_sig_free(sigs[i]);
    image_global_shutdown();
    UNIT_DONE();
}
