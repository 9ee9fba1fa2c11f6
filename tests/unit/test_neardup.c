/* test_neardup.c - reused-image detection on real photos (tests/data/photos).
 *
 * Every image goes the server's way: bytes in a temp file, image_process, its luma to
 * nd_sig_compute, index keys in a hindex, candidates from hindex_query at ND_INDEX_RADIUS,
 * nd_match. Edited copies are made here with libvips. The truths checked are known without
 * our code: an edited copy shows the same picture as its source; the photos listed below are
 * different pictures (checked by eye); a uniform frame, an underexposed photo and the smooth
 * gradient of "User Comment Encoding.jpg" carry no picture to recognise (their PDQ quality is
 * under Meta's 50 too, checked below with phash).
 */
#include "exhibit/hindex.h"
#include "exhibit/image.h"
#include "exhibit/neardup.h"
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

static nd_sig *sigs[NPHOTOS];

/* ---- helpers --------------------------------------------------------------------------------- */

/* Path of tests/data/photos/name (static buffer, like unit_data). */
static const char *photo(const char *name)
{
    static char rel[512];
    snprintf(rel, sizeof rel, "photos/%s", name);
    return unit_data(rel);
}

/* Signs the luma image_process makes of a file. NULL (and a failed check) on error. */
static nd_sig *sign_file(const char *path)
{
    image_result r;
    ex_error e;
    if (image_process(path, NULL, &r, &e) != EX_OK) {
        fprintf(stderr, "  image_process %s: %s\n", path, e.message);
        return NULL;
    }
    nd_sig *s = NULL;
    if (nd_sig_compute(r.luma, r.luma_w, r.luma_h, &s, &e) != EX_OK)
        fprintf(stderr, "  nd_sig_compute %s: %s\n", path, e.message);
    image_result_release(&r);
    return s;
}

/* Signs encoded image bytes as an upload: temp file, image_process, nd_sig_compute. */
static nd_sig *sign_bytes(const void *buf, size_t len)
{
    char path[] = "/tmp/test_neardup.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    const int ok = write(fd, buf, len) == (ssize_t)len;
    close(fd);
    nd_sig *s = ok ? sign_file(path) : NULL;
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

enum { E_REENCODE, E_CROP10, E_BORDER, E_MIRROR, E_BAND, E_COUNT };
static const char *const edit_names[E_COUNT] = {"JPEG q40 re-encode", "centre crop 10%",
                                                "8% white border", "mirror",
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
    case E_CROP10:
        bad = vips_extract_area(img, &t[0], W / 20, H / 20, W - W / 10, H - H / 10, NULL);
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

/* Ids (photo numbers) whose index keys lie within the radius of q's query keys. */
static size_t candidates(const hindex *ix, const nd_sig *q, uint64_t *ids, size_t max)
{
    uint8_t keys[ND_MAX_KEYS][32];
    const size_t nk = nd_sig_index_keys(q, 1, keys, ND_MAX_KEYS);
    size_t n = 0;
    for (size_t k = 0; k < nk; k++) {
        hindex_hit hits[64];
        size_t nh = 0;
        ex_error e;
        if (hindex_query(ix, keys[k], ND_INDEX_RADIUS, hits, 64, &nh, &e) != EX_OK) continue;
        for (size_t h = 0; h < nh; h++) {
            size_t i = 0;
            while (i < n && ids[i] != hits[h].id)
                i++;
            if (i == n && n < max) ids[n++] = hits[h].id;
        }
    }
    return n;
}

/* ---- tests ----------------------------------------------------------------------------------- */

TEST(signs_real_photos)
{
    for (int i = 0; i < NPHOTOS; i++) {
        sigs[i] = sign_file(photo(photos[i]));
        CHECKF(sigs[i] != NULL, "%s", photos[i]);
        if (!sigs[i]) continue;
        /* Real pictures get keys to find them by; the index holds at most 28 per image. */
        uint8_t keys[ND_MAX_KEYS][32];
        const size_t ni = nd_sig_index_keys(sigs[i], 0, keys, ND_MAX_KEYS);
        const size_t nq = nd_sig_index_keys(sigs[i], 1, keys, ND_MAX_KEYS);
        CHECKF(!nd_sig_flat(sigs[i]) && ni >= 1 && ni <= 28 && nq >= ni, "%s: %zu/%zu keys",
               photos[i], ni, nq);
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
    nd_sig *s = NULL;
    ex_error e;
    CHECK(nd_sig_compute(l, w, h, &s, &e) == EX_OK);
    float *small = malloc(sizeof(float) * 320 * 320);
    phash_pdq want, got;
    uint64_t want64 = 0;
    CHECK(small && phash_luma_resize(l, w, h, small, 320, 320, PHASH_RESIZE_BOX, &e) == EX_OK);
    CHECK(phash_pdq_compute(small, 320, 320, &want, &e) == EX_OK);
    CHECK(phash_dct64_compute(l, w, h, &want64, &e) == EX_OK);
    if (s) {
        nd_sig_pdq(s, &got);
        CHECK(memcmp(got.bits, want.bits, 32) == 0 && got.quality == want.quality);
        CHECKF(phash_dct64_distance(nd_sig_phash64(s), want64) <= 1, "phash64 %d bits apart",
               phash_dct64_distance(nd_sig_phash64(s), want64));
    }
    nd_sig_free(s);
    free(small);
    free(l);
}

/* Edited copies are found through the index and confirmed, in both upload orders. */
TEST(edited_copies_match)
{
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    enum { NSRC = sizeof sources / sizeof sources[0] };
    nd_sig *orig[NSRC] = {0};
    for (size_t i = 0; i < NSRC; i++) {
        orig[i] = sign_file(photo(sources[i]));
        CHECKF(orig[i] != NULL, "%s", sources[i]);
        if (!orig[i]) continue;
        uint8_t keys[ND_MAX_KEYS][32];
        const size_t n = nd_sig_index_keys(orig[i], 0, keys, ND_MAX_KEYS);
        ex_error e;
        for (size_t k = 0; k < n; k++)
            CHECK(hindex_add(ix, keys[k], (uint64_t)i, &e) == EX_OK);
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
            nd_sig *copy = sign_bytes(buf, len);
            g_free(buf);
            CHECK(copy != NULL);
            if (!copy) continue;
            uint64_t ids[16];
            const size_t nc = candidates(ix, copy, ids, 16);
            int found = 0;
            for (size_t c = 0; c < nc; c++)
                found |= ids[c] == i;
            int dist = -1;
            const char *why = NULL;
            const int m = nd_match(copy, orig[i], &dist, &why);
            CHECKF(found && m, "%s, %s: candidate %d, match %d (%s)", sources[i], edit_names[k],
                   found, m, why ? why : "");
            CHECKF(dist >= 1 && dist <= 256 && why && *why, "%s, %s: distance %d", sources[i],
                   edit_names[k], dist);
            /* The original uploaded after its copy: the same decision. */
            CHECKF(nd_match(orig[i], copy, NULL, NULL) == 1, "%s, %s: reverse", sources[i],
                   edit_names[k]);
            /* And no other source photo matches the copy. */
            for (size_t c = 0; c < nc; c++)
                if (ids[c] != i)
                    CHECKF(!nd_match(copy, orig[ids[c]], NULL, NULL), "%s, %s matched %s",
                           sources[i], edit_names[k], sources[ids[c]]);
            nd_sig_free(copy);
        }
        g_object_unref(img);
    }
    for (size_t i = 0; i < NSRC; i++)
        nd_sig_free(orig[i]);
    hindex_free(ix);
}

/* No two different photos match, through the index or by nd_match on every ordered pair. */
TEST(different_photos_do_not_match)
{
    hindex *ix = hindex_new();
    CHECK(ix != NULL);
    if (!ix) return;
    for (int i = 0; i < NPHOTOS; i++) {
        if (!sigs[i]) continue;
        uint8_t keys[ND_MAX_KEYS][32];
        const size_t n = nd_sig_index_keys(sigs[i], 0, keys, ND_MAX_KEYS);
        ex_error e;
        for (size_t k = 0; k < n; k++)
            CHECK(hindex_add(ix, keys[k], (uint64_t)i, &e) == EX_OK);
    }
    int pairs = 0;
    for (int a = 0; a < NPHOTOS; a++) {
        if (!sigs[a]) continue;
        /* Each photo finds itself... */
        uint64_t ids[NPHOTOS];
        const size_t nc = candidates(ix, sigs[a], ids, NPHOTOS);
        int self = 0;
        for (size_t c = 0; c < nc; c++)
            self |= ids[c] == (uint64_t)a;
        CHECKF(self, "%s is not its own candidate", photos[a]);
        int dist = -1;
        CHECKF(nd_match(sigs[a], sigs[a], &dist, NULL) == 1 && dist == 0, "%s vs itself: %d",
               photos[a], dist);
        /* ...and nothing else. */
        for (int b = 0; b < NPHOTOS; b++) {
            if (b == a || !sigs[b]) continue;
            const char *why = NULL;
            CHECKF(!nd_match(sigs[a], sigs[b], &dist, &why), "%s matched %s (%d, %s)", photos[a],
                   photos[b], dist, why);
            CHECK(dist == 256);
            pairs++;
        }
    }
    CHECKF(pairs >= 20 * 19, "only %d pairs compared", pairs);
    hindex_free(ix);
}

/* Near-flat images: no keys, no matches, even with themselves. */
static void check_flat(const char *what, const float *l, int w, int h)
{
    nd_sig *s = NULL;
    ex_error e;
    CHECKF(nd_sig_compute(l, w, h, &s, &e) == EX_OK, "%s", what);
    if (!s) return;
    uint8_t keys[ND_MAX_KEYS][32];
    CHECKF(nd_sig_flat(s) == 1, "%s is not flat", what);
    CHECKF(nd_sig_index_keys(s, 0, keys, ND_MAX_KEYS) == 0, "%s has index keys", what);
    CHECKF(nd_sig_index_keys(s, 1, keys, ND_MAX_KEYS) == 0, "%s has query keys", what);
    const char *why = NULL;
    CHECKF(nd_match(s, s, NULL, &why) == 0, "%s matches itself", what);
    for (int i = 0; i < NPHOTOS; i++)
        if (sigs[i]) CHECKF(nd_match(s, sigs[i], NULL, NULL) == 0, "%s ~ %s", what, photos[i]);
    /* Independent check that these are what Meta calls unhashable. */
    phash_pdq p;
    nd_sig_pdq(s, &p);
    CHECKF(p.quality < 50, "%s: PDQ quality %d", what, p.quality);
    nd_sig_free(s);
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
        CHECK(nd_sig_serialize(sigs[i], &buf, &len, &e) == EX_OK);
        if (!buf) continue;
        CHECKF(len <= ND_SIG_MAX_BYTES, "%zu bytes", len);
        nd_sig *p = NULL;
        CHECK(nd_sig_parse(buf, len, &p, &e) == EX_OK);
        if (p) {
            CHECK(nd_sig_serialize(p, &buf2, &len2, &e) == EX_OK);
            CHECK(buf2 && len2 == len && memcmp(buf, buf2, len) == 0);
            int dist = -1;
            CHECK(nd_match(p, sigs[i], &dist, NULL) == 1 && dist == 0);
            phash_pdq a, b;
            nd_sig_pdq(p, &a);
            nd_sig_pdq(sigs[i], &b);
            CHECK(memcmp(a.bits, b.bits, 32) == 0 && a.quality == b.quality);
            CHECK(nd_sig_phash64(p) == nd_sig_phash64(sigs[i]));
            uint8_t k1[ND_MAX_KEYS][32], k2[ND_MAX_KEYS][32];
            const size_t n1 = nd_sig_index_keys(p, 1, k1, ND_MAX_KEYS);
            const size_t n2 = nd_sig_index_keys(sigs[i], 1, k2, ND_MAX_KEYS);
            CHECK(n1 == n2 && memcmp(k1, k2, n1 * 32) == 0);
            /* The parsed copy decides like the original against the other photos. */
            for (int j = 0; j < NPHOTOS; j++)
                if (j != i && sigs[j])
                    CHECK(nd_match(p, sigs[j], NULL, NULL) ==
                          nd_match(sigs[i], sigs[j], NULL, NULL));
        }
        nd_sig_free(p);
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
    CHECK(nd_sig_serialize(sigs[0], &buf, &len, &e) == EX_OK);
    if (!buf) return;
    uint8_t *copy = malloc(len + 1);
    CHECK(copy != NULL);
    if (!copy) {
        free(buf);
        return;
    }
    nd_sig *p = NULL;
    int refused = 0, tried = 0;
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        memcpy(copy, buf, n);
        p = NULL;
        memset(&e, 0, sizeof e);
        const ex_rc rc = nd_sig_parse(copy, n, &p, &e);
        refused += rc == EX_EINVAL && p == NULL && strcmp(e.code, "nd_sig_corrupt") == 0;
        tried++;
        nd_sig_free(p);
    }
    /* a byte too many */
    memcpy(copy, buf, len);
    copy[len] = 0;
    p = NULL;
    refused += nd_sig_parse(copy, len + 1, &p, &e) == EX_EINVAL && !p;
    tried++;
    /* every byte changed, one at a time */
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        p = NULL;
        refused += nd_sig_parse(copy, len, &p, &e) == EX_EINVAL && !p;
        tried++;
        nd_sig_free(p);
    }
    CHECKF(refused == tried, "%d of %d damaged signatures refused", refused, tried);
    p = NULL;
    CHECK(nd_sig_parse(NULL, 10, &p, &e) == EX_EINVAL && !p);
    CHECK(nd_sig_parse(buf, len, NULL, &e) == EX_EINVAL);
    static const uint8_t junk[] = "EXND\x01 this is not a signature";
    CHECK(nd_sig_parse(junk, sizeof junk, &p, &e) == EX_EINVAL && !p);
    free(copy);
    free(buf);
}

TEST(bad_input_is_refused)
{
    nd_sig *s = NULL;
    ex_error e;
    float px[64];
    for (int i = 0; i < 64; i++)
        px[i] = (float)(i * 3 % 256);
    CHECK(nd_sig_compute(NULL, 8, 8, &s, &e) == EX_EINVAL && !s);
    CHECK(nd_sig_compute(px, 0, 8, &s, &e) == EX_EINVAL && !s);
    CHECK(nd_sig_compute(px, 8, -1, &s, &e) == EX_EINVAL && !s);
    CHECK(nd_sig_compute(px, 1 << 15, 1 << 15, &s, &e) == EX_EINVAL && !s);
    px[10] = NAN;
    CHECK(nd_sig_compute(px, 8, 8, &s, &e) == EX_EINVAL && !s && !strcmp(e.code, "nd_not_finite"));
    px[10] = INFINITY;
    CHECK(nd_sig_compute(px, 8, 8, &s, &e) == EX_EINVAL && !s);
    /* Tiny but valid: signed, too small to match anything. */
    px[10] = 30.0f;
    CHECK(nd_sig_compute(px, 8, 8, &s, &e) == EX_OK && s && nd_sig_flat(s));
    nd_sig_free(s);
    s = NULL;
    CHECK(nd_sig_compute(px, 1, 1, &s, &e) == EX_OK && s);
    nd_sig_free(s);
    CHECK(nd_match(NULL, NULL, NULL, NULL) == 0);
    nd_sig_free(NULL);
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
        nd_sig_free(sigs[i]);
    image_global_shutdown();
    UNIT_DONE();
}
