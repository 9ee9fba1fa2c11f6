/* test_image.c - image module against real photos (tests/data/photos, tests/data/pdq) and the
 * edge files in tests/data/edge (see its README). References are independent of our code:
 * expected.tsv / exiftool for sizes and metadata, exiftool over every derivative for metadata
 * leaks, libvips' own vips_autorot / heifload of the original for pixel orientation, and the
 * same photo stored in other colour modes (pdq/modes) for colour handling.
 * Large generated inputs (200 MP JPEG, alpha and ICC variants) go to /tmp and are removed.
 */
#include "exhibit/image.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

static char g_tmp[] = "/tmp/exhibit_image_XXXXXX"; /* derivatives for the exiftool pass */
static int g_nderiv;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static const char *data_path(const char *rel, char *buf, size_t n)
{
    snprintf(buf, n, "%s", unit_data(rel));
    return buf;
}

/* ---- pixel helpers (libvips as the independent reference) -------------------------------- */

/* Grey samples of in, resized to exactly w x h, as doubles. 0 on success. */
static int grey_of(VipsImage *in, int w, int h, double *out)
{
    VipsImage *g = NULL, *s = NULL;
    void *mem = NULL;
    int rc = -1;
    size_t n = 0;
    if (vips_colourspace(in, &g, VIPS_INTERPRETATION_B_W, NULL) ||
        vips_thumbnail_image(g, &s, w, "height", h, "size", VIPS_SIZE_FORCE, "no_rotate", TRUE,
                             NULL))
        goto done;
    VipsImage *c = NULL;
    if (vips_cast_uchar(s, &c, NULL)) goto done;
    mem = vips_image_write_to_memory(c, &n);
    int bands = vips_image_get_bands(c);
    g_object_unref(c);
    if (!mem || n != (size_t)w * h * bands) goto done;
    for (int i = 0; i < w * h; i++)
        out[i] = ((uint8_t *)mem)[i * bands];
    rc = 0;
done:
    g_free(mem);
    if (g) g_object_unref(g);
    if (s) g_object_unref(s);
    vips_error_clear();
    return rc;
}

static int grey_of_jpeg(const uint8_t *buf, size_t len, int w, int h, double *out)
{
    VipsImage *im = NULL;
    if (vips_jpegload_buffer((void *)buf, len, &im, NULL)) return -1;
    int rc = grey_of(im, w, h, out);
    g_object_unref(im);
    return rc;
}

static double pearson(const double *a, const double *b, int n)
{
    double ma = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= n;
    mb /= n;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/* Decodes a JPEG derivative to RGB uchar (caller g_free's). */
static uint8_t *rgb_of_jpeg(const uint8_t *buf, size_t len, int *w, int *h)
{
    VipsImage *im = NULL;
    if (vips_jpegload_buffer((void *)buf, len, &im, NULL)) return NULL;
    size_t n = 0;
    uint8_t *mem = vips_image_write_to_memory(im, &n);
    *w = im->Xsize;
    *h = im->Ysize;
    int ok = mem && im->Bands == 3 && n == (size_t)*w * *h * 3;
    g_object_unref(im);
    if (!ok) {
        g_free(mem);
        return NULL;
    }
    return mem;
}

/* Mean absolute difference per channel value between two RGB previews of equal size. */
static double rgb_mad(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs((double)a[i] - b[i]);
    return s / n;
}

static int process_ok(const char *rel, image_result *r)
{
    char p[4096];
    ex_error e = {0};
    ex_rc rc = image_process(data_path(rel, p, sizeof p), NULL, r, &e);
    CHECKF(rc == EX_OK, "%s: rc=%d %s: %s", rel, rc, e.code, e.message);
    return rc == EX_OK;
}

/* ---- derivative checks -------------------------------------------------------------------- */

static void save_derivative(const char *label, const char *kind, const uint8_t *buf, size_t len)
{
    char name[512], path[600];
    snprintf(name, sizeof name, "%03d_%s_%s.jpg", g_nderiv, kind, label);
    for (char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            *c = '_';
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot write %s", path);
    if (!f) return;
    CHECK(fwrite(buf, 1, len, f) == len);
    fclose(f);
    g_nderiv++;
}

/* A derivative must be a JPEG that libvips decodes to w x h, 3 bands, long side <= max_side,
 * with no metadata field at all once reloaded. */
static void check_derivative(const char *file, const char *kind, const uint8_t *buf, size_t len,
                             int w, int h, int max_side)
{
    CHECKF(buf && len > 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF,
           "%s %s is not a JPEG", file, kind);
    if (!buf || len < 4) return;
    VipsImage *im = NULL;
    if (vips_jpegload_buffer((void *)buf, len, &im, "fail_on", VIPS_FAIL_ON_WARNING, NULL)) {
        CHECKF(0, "%s %s does not decode: %s", file, kind, vips_error_buffer());
        vips_error_clear();
        return;
    }
    CHECKF(im->Xsize == w && im->Ysize == h, "%s %s is %dx%d, result says %dx%d", file, kind,
           im->Xsize, im->Ysize, w, h);
    CHECKF(w >= 1 && h >= 1 && w <= max_side && h <= max_side, "%s %s is %dx%d, max %d", file, kind,
           w, h, max_side);
    CHECKF(im->Bands == 3 && im->BandFmt == VIPS_FORMAT_UCHAR, "%s %s: %d bands", file, kind,
           im->Bands);
    gchar **fields = vips_image_get_fields(im);
    for (gchar **f = fields; f && *f; f++) {
        int leak = vips_isprefix("exif-", *f) || vips_isprefix("xmp", *f) ||
                   vips_isprefix("iptc", *f) || vips_isprefix("icc", *f) ||
                   vips_isprefix("photoshop", *f) || vips_isprefix("jpeg-thumbnail", *f) ||
                   strcmp(*f, "orientation") == 0;
        CHECKF(!leak, "%s %s carries %s", file, kind, *f);
    }
    g_strfreev(fields);
    g_object_unref(im);
}

/* Checks both derivatives and the luma of a result whose upright size is uw x uh. */
static void check_result_shape(const char *file, const image_result *r, int uw, int uh)
{
    int longest = uw > uh ? uw : uh;
    if (longest <= IMAGE_PREVIEW_MAX) {
        CHECKF(r->preview_w == uw && r->preview_h == uh, "%s preview %dx%d, upright %dx%d", file,
               r->preview_w, r->preview_h, uw, uh);
    } else {
        int pl = r->preview_w > r->preview_h ? r->preview_w : r->preview_h;
        double ratio_in = (double)uw / uh, ratio_out = (double)r->preview_w / r->preview_h;
        CHECKF(pl == IMAGE_PREVIEW_MAX, "%s preview long side %d", file, pl);
        CHECKF(fabs(ratio_in - ratio_out) < 0.01 * ratio_in + 1.0 / IMAGE_PREVIEW_MAX * 2,
               "%s preview %dx%d vs upright %dx%d", file, r->preview_w, r->preview_h, uw, uh);
    }
    int pl = r->preview_w > r->preview_h ? r->preview_w : r->preview_h;
    int tl = r->thumb_w > r->thumb_h ? r->thumb_w : r->thumb_h;
    CHECKF(tl == (pl < IMAGE_THUMB_MAX ? pl : IMAGE_THUMB_MAX), "%s thumb %dx%d from %dx%d", file,
           r->thumb_w, r->thumb_h, r->preview_w, r->preview_h);
    CHECKF((r->thumb_w >= r->thumb_h) == (r->preview_w >= r->preview_h) || r->thumb_w == r->thumb_h,
           "%s thumb %dx%d flips the preview's orientation %dx%d", file, r->thumb_w, r->thumb_h,
           r->preview_w, r->preview_h);
    check_derivative(file, "preview", r->preview, r->preview_len, r->preview_w, r->preview_h,
                     IMAGE_PREVIEW_MAX);
    check_derivative(file, "thumb", r->thumb, r->thumb_len, r->thumb_w, r->thumb_h,
                     IMAGE_THUMB_MAX);
    CHECKF(r->luma && r->luma_w == r->preview_w && r->luma_h == r->preview_h, "%s luma %dx%d", file,
           r->luma_w, r->luma_h);
}

/* ---- sniffing ----------------------------------------------------------------------------- */

TEST(test_sniff_table)
{
    static const struct {
        const char *bytes;
        size_t n;
        image_type want;
    } cases[] = {
        {"\xFF\xD8\xFF\xE0", 4, IMAGE_JPEG},
        {"\xFF\xD8\xFF", 3, IMAGE_JPEG},
        {"\xFF\xD8", 2, IMAGE_UNKNOWN},
        {"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16, IMAGE_PNG},
        {"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDX", 16, IMAGE_UNKNOWN},
        {"\x89PNG\r\n\x1a\n", 8, IMAGE_UNKNOWN},
        {"RIFF\x10\0\0\0WEBPVP8 ", 16, IMAGE_WEBP},
        {"RIFF\x10\0\0\0WEBPVP8L", 16, IMAGE_WEBP},
        {"RIFF\x10\0\0\0WEBPVP8X", 16, IMAGE_WEBP},
        {"RIFF\x10\0\0\0WAVEfmt ", 16, IMAGE_UNKNOWN},
        {"\0\0\0\x18"
         "ftypheic\0\0\0\0mif1heic",
         24, IMAGE_HEIC},
        {"\0\0\0\x18"
         "ftypmif1\0\0\0\0mif1heic",
         24, IMAGE_HEIC},
        {"\0\0\0\x18"
         "ftypmif1\0\0\0\0mif1avif",
         24, IMAGE_AVIF},
        {"\0\0\0\x14"
         "ftypavif\0\0\0\0mif1",
         20, IMAGE_AVIF},
        {"\0\0\0\x18"
         "ftypmif1\0\0\0\0mif1miaf",
         24, IMAGE_UNKNOWN},
        {"\0\0\0\x18"
         "ftypisom\0\0\0\0isomiso2",
         24, IMAGE_UNKNOWN},
        {"\0\0\0\x18"
         "ftypqt  \0\0\0\0qt  heic",
         24, IMAGE_HEIC}, /* compatible brand wins */
        {"\0\0\0\x0c"
         "ftypheic",
         12, IMAGE_UNKNOWN}, /* box too small */
        {"\0\0\0\x19"
         "ftypmif1\0\0\0\0mif1heic",
         24, IMAGE_UNKNOWN}, /* size not 4-aligned */
        {"\xff\xff\xff\xf0"
         "ftypmif1\0\0\0\0mif1heic",
         24, IMAGE_UNKNOWN},
        {"GIF89a\x08\0\x08\0\0\0\0\0\0\0", 16, IMAGE_UNKNOWN},
        {"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0", 16, IMAGE_UNKNOWN},
        {"MM\0*\0\0\0\x08\0\0\0\0\0\0\0\0", 16, IMAGE_UNKNOWN},
        {"BM\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, IMAGE_UNKNOWN},
        {"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0", 16, IMAGE_UNKNOWN},
        {"<svg xmlns=\"http", 16, IMAGE_UNKNOWN},
        {"P6\n2 2\n255\n\0\0\0\0\0", 16, IMAGE_UNKNOWN},
        {"", 0, IMAGE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        image_type got = image_sniff((const uint8_t *)cases[i].bytes, cases[i].n);
        CHECKF(got == cases[i].want, "case %zu: got %d want %d", i, got, cases[i].want);
    }
    CHECK(image_sniff(NULL, 0) == IMAGE_UNKNOWN);
    CHECK(image_sniff(NULL, 16) == IMAGE_UNKNOWN);
    CHECK(strcmp(image_media_type(IMAGE_JPEG), "image/jpeg") == 0);
    CHECK(strcmp(image_media_type(IMAGE_PNG), "image/png") == 0);
    CHECK(strcmp(image_media_type(IMAGE_WEBP), "image/webp") == 0);
    CHECK(strcmp(image_media_type(IMAGE_HEIC), "image/heic") == 0);
    CHECK(strcmp(image_media_type(IMAGE_AVIF), "image/avif") == 0);
    CHECK(strcmp(image_media_type(IMAGE_UNKNOWN), "application/octet-stream") == 0);
    CHECK(strcmp(image_media_type((image_type)99), "application/octet-stream") == 0);
}

/* Type expected from the photo's name (the extensions in tests/data/photos are honest). */
static image_type type_from_name(const char *f)
{
    const char *dot = strrchr(f, '.');
    if (!dot) return IMAGE_UNKNOWN;
    if (!strcmp(dot, ".jpg")) return IMAGE_JPEG;
    if (!strcmp(dot, ".png")) return IMAGE_PNG;
    if (!strcmp(dot, ".webp")) return IMAGE_WEBP;
    if (!strcmp(dot, ".heic") || !strcmp(dot, ".heif")) /* the .heif one is mif1 + heic */
        return IMAGE_HEIC;
    if (!strcmp(dot, ".avif")) return IMAGE_AVIF;
    return IMAGE_UNKNOWN; /* tif, tiff, gif, fuzzed (a TIFF) */
}

/* ---- every photo in expected.tsv ---------------------------------------------------------- */

static const struct {
    const char *file;
    ex_rc rc;
    const char *code;
    const char *why;
} photo_refusals[] = {
    {"drewnoakes_Epson PerfectionV800.tiff", EX_EMEDIA, "unsupported_media_type", "TIFF"},
    {"drewnoakes_Issue 151.tif", EX_EMEDIA, "unsupported_media_type", "TIFF"},
    {"exiftool_ExifTool.tif", EX_EMEDIA, "unsupported_media_type", "TIFF"},
    {"exiftool_GIF.gif", EX_EMEDIA, "unsupported_media_type", "GIF"},
    {"drewnoakes_crash-101cc3460e0fd2904d442080e96617d2fe01b29f.fuzzed", EX_EMEDIA,
     "unsupported_media_type", "a fuzzed TIFF (ImageMagick would be the one to try it)"},
    {"drewnoakes_IllegalArgumentException.HeifReader.processBoxes.heif", EX_EREFUSED,
     "image_undecodable", "HEIF container without a meta box (libheif: No 'meta' box)"},
    {"drewnoakes_User Comment Encoding.jpg", EX_EREFUSED, "image_undecodable",
     "entropy-coded data truncated, no EOI (fail_on=error)"},
    {"drewnoakes_beach.jpg", EX_EREFUSED, "image_undecodable",
     "DNL marker, which libjpeg cannot decode"},
};

/* Where libvips 8.14 and exiftool disagree on metadata presence, and why. */
static const struct {
    const char *file;
    const char *field;
} meta_gaps[] = {
    {"drewnoakes_Canon EOS D60.jpg", "iptc"},      /* APP13 block with no IPTC-IIM record */
    {"drewnoakes_Sony Cybershot (3).jpg", "iptc"}, /* same */
    {"drewnoakes_Issue 280 (dotnet).png", "iptc"}, /* IPTC in a PNG text chunk */
    {"exiftool_PNG.png", "xmp"},                   /* XMP chunk after IDAT */
};

static int is_gap(const char *file, const char *field)
{
    for (size_t i = 0; i < sizeof meta_gaps / sizeof meta_gaps[0]; i++)
        if (!strcmp(meta_gaps[i].file, file) && !strcmp(meta_gaps[i].field, field)) return 1;
    return 0;
}

TEST(test_photos_expected)
{
    char path[4096], line[8192];
    FILE *f = fopen(data_path("photos/expected.tsv", path, sizeof path), "r");
    CHECKF(f != NULL, "cannot open expected.tsv");
    if (!f) return;
    int processed = 0, refused = 0, rows = 0;
    CHECK(fgets(line, sizeof line, f) != NULL); /* header */
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *cols[16] = {0}, *p = line;
        int nc = 0;
        while (p && nc < 16)
            cols[nc++] = strsep(&p, "\t");
        CHECKF(nc == 14, "expected.tsv row with %d columns", nc);
        if (nc != 14) continue;
        rows++;
        const char *file = cols[0];
        char rel[1024];
        snprintf(rel, sizeof rel, "photos/%s", file);
        data_path(rel, path, sizeof path);

        /* The sniff must agree with the honest extensions of the reference set. */
        uint8_t head[IMAGE_SNIFF_BYTES];
        FILE *hf = fopen(path, "rb");
        size_t hn = hf ? fread(head, 1, sizeof head, hf) : 0;
        if (hf) fclose(hf);
        CHECKF(image_sniff(head, hn) == type_from_name(file), "%s sniffed as %d", file,
               image_sniff(head, hn));

        size_t ri = 0;
        while (ri < sizeof photo_refusals / sizeof photo_refusals[0] &&
               strcmp(photo_refusals[ri].file, file) != 0)
            ri++;
        image_result r;
        ex_error e = {0};
        ex_rc rc = image_process(path, NULL, &r, &e);
        if (ri < sizeof photo_refusals / sizeof photo_refusals[0]) {
            CHECKF(rc == photo_refusals[ri].rc && !strcmp(e.code, photo_refusals[ri].code),
                   "%s should be refused with %s (%s), got rc=%d %s", file, photo_refusals[ri].code,
                   photo_refusals[ri].why, rc, e.code);
            CHECKF(e.message[0] != 0, "%s: empty message", file);
            if (rc == EX_OK) image_result_release(&r);
            refused++;
            continue;
        }
        CHECKF(rc == EX_OK, "%s: rc=%d %s: %s", file, rc, e.code, e.message);
        if (rc != EX_OK) continue;
        processed++;
        const int heif = r.type == IMAGE_HEIC || r.type == IMAGE_AVIF;
        CHECKF(r.type == type_from_name(file), "%s type %d", file, r.type);
        if (cols[2][0])
            CHECKF(r.width == atoi(cols[2]) && r.height == atoi(cols[3]),
                   "%s is %dx%d, expected %sx%s", file, r.width, r.height, cols[2], cols[3]);
        int want_o = cols[4][0] ? atoi(cols[4]) : 1;
        if (want_o < 1 || want_o > 8 || heif)
            want_o = 1; /* 0 is invalid (Landscape_0); HEIF pixels are already upright */
        CHECKF(r.orientation == want_o, "%s orientation %d, expected %d", file, r.orientation,
               want_o);
        int uw = r.orientation >= 5 ? r.height : r.width;
        int uh = r.orientation >= 5 ? r.width : r.height;
        check_result_shape(file, &r, uw, uh);

        int want_xmp = atoi(cols[11]), want_iptc = atoi(cols[12]), want_icc = atoi(cols[13]);
        CHECKF((r.xmp != NULL) == want_xmp || is_gap(file, "xmp"), "%s has_xmp %d, exiftool %d",
               file, r.xmp != NULL, want_xmp);
        CHECKF(r.has_iptc == want_iptc || is_gap(file, "iptc"), "%s has_iptc %d, exiftool %d", file,
               r.has_iptc, want_iptc);
        CHECKF(r.has_icc == want_icc, "%s has_icc %d, exiftool %d", file, r.has_icc, want_icc);
        /* Not always a full packet: UTF-16 (exiftool_XMP.jpg), old x:xapmeta (Canon D60), or
         * just the ExtendedXMP chunk (exiftool_ExtendedXMP.jpg): libvips keeps the last APP1. */
        CHECKF(!r.xmp || (r.xmp_len > 0 && r.xmp[r.xmp_len] == 0), "%s xmp %zu bytes", file,
               r.xmp_len);
        CHECKF((r.exif == NULL) == (r.exif_len == 0), "%s exif %p/%zu", file, (void *)r.exif,
               r.exif_len);

        save_derivative(file, "preview", r.preview, r.preview_len);
        save_derivative(file, "thumb", r.thumb, r.thumb_len);
        image_result_release(&r);
    }
    fclose(f);
    CHECKF(rows == 77, "expected.tsv has %d rows", rows);
    CHECKF(refused == (int)(sizeof photo_refusals / sizeof photo_refusals[0]),
           "%d refusals matched the table", refused);
    CHECKF(processed == rows - refused, "%d processed", processed);
    fprintf(stderr, "  photos: %d processed, %d refused as expected\n", processed, refused);
}

/* The exiftool pass runs after every test that saved derivatives into g_tmp. Only the groups
 * a bare JPEG has may appear; anything else (EXIF IFDs, GPS, XMP-*, IPTC, ICC_Profile,
 * Photoshop, MakerNotes, MPF...) is a leak. */
static int exiftool_groups(const char *target, int *files, int *leaks, int report)
{
    static const char *const allowed[] = {"ExifTool", "System", "File", "Composite", "JFIF", NULL};
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "exiftool -G1 -a -s -u '%s' 2>&1", target);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[4096], current[4096] = "";
    int lines = 0;
    *files = 0;
    *leaks = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = 0;
        lines++;
        if (!strncmp(line, "======== ", 9)) {
            snprintf(current, sizeof current, "%s", line + 9);
            (*files)++;
            continue;
        }
        if (line[0] != '[') continue;
        char group[64] = "";
        size_t gl = strcspn(line + 1, "]");
        if (gl >= sizeof group) gl = sizeof group - 1;
        memcpy(group, line + 1, gl);
        group[gl] = 0;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(group, *a);
        if (!ok) {
            if (report && *leaks < 20) fprintf(stderr, "  exiftool: %s: %s\n", current, line);
            (*leaks)++;
        }
    }
    int st = pclose(p);
    if (*files == 0 && lines > 0) /* a single-file run prints no ======== header */
        *files = 1;
    return st;
}

TEST(test_exiftool_derivatives_clean)
{
    int files = 0, leaks = 0;
    char orig[4096];
    /* The check must be able to fail: on an original full of metadata it finds plenty. */
    int st = exiftool_groups(data_path("edge/huge_exif.jpg", orig, sizeof orig), &files, &leaks, 0);
    CHECKF(st == 0 && leaks > 20, "exiftool on huge_exif.jpg: status %d, %d metadata lines", st,
           leaks);
    st = exiftool_groups(g_tmp, &files, &leaks, 1);
    CHECKF(st == 0, "exiftool exit status %d", st);
    CHECKF(files == g_nderiv && files > 100, "exiftool read %d files of %d", files, g_nderiv);
    CHECKF(leaks == 0, "%d metadata lines in derivatives", leaks);
    fprintf(stderr, "  exiftool: %d derivatives, %d metadata lines\n", files, leaks);
}

/* ---- edge files --------------------------------------------------------------------------- */

TEST(test_edge_files)
{
    static const struct {
        const char *file;
        ex_rc rc;
        const char *code;
    } cases[] = {
        {"edge/empty.jpg", EX_EMEDIA, "unsupported_media_type"},
        {"edge/tiny.ppm", EX_EMEDIA, "unsupported_media_type"},
        {"edge/drawing.svg", EX_EMEDIA, "unsupported_media_type"},
        {"edge/doc.pdf", EX_EMEDIA, "unsupported_media_type"},
        {"edge/video_isom.heic", EX_EMEDIA, "unsupported_media_type"},
        {"edge/claims_20000x20000.png", EX_EREFUSED, "image_too_large"},
        {"edge/bomb_24000x24000.png", EX_EREFUSED, "image_too_large"},
        {"edge/truncated.jpg", EX_EREFUSED, "image_undecodable"},
        {"edge/truncated.png", EX_EREFUSED, "image_undecodable"},
        {"edge/truncated.webp", EX_EREFUSED, "image_undecodable"},
        {"edge/magic_then_garbage.jpg", EX_EREFUSED, "image_undecodable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[4096];
        image_result r, before;
        memset(&r, 0xA5, sizeof r);
        before = r;
        ex_error e = {0};
        ex_rc rc = image_process(data_path(cases[i].file, p, sizeof p), NULL, &r, &e);
        CHECKF(rc == cases[i].rc && !strcmp(e.code, cases[i].code), "%s: rc=%d %s (%s)",
               cases[i].file, rc, e.code, e.message);
        CHECKF(memcmp(&r, &before, sizeof r) == 0, "%s: output written on failure", cases[i].file);
        if (rc == EX_OK) image_result_release(&r);
    }
}

/* The truncated JPEG's header is fine (libvips opens it), so only a strict full decode can
 * refuse it; the default, permissive vips_thumbnail() is the trap NOTES describes. */
TEST(test_truncated_refused_not_grey_filled)
{
    char p[4096];
    data_path("edge/truncated.jpg", p, sizeof p);
    VipsImage *hdr = NULL;
    CHECKF(vips_jpegload(p, &hdr, NULL) == 0, "header of truncated.jpg should load");
    if (hdr) {
        CHECK(hdr->Xsize == 640 && hdr->Ysize == 480);
        g_object_unref(hdr);
    }
    VipsImage *lax = NULL;
    if (vips_thumbnail(p, &lax, 256, NULL) == 0) {
        void *m = NULL;
        size_t n;
        m = vips_image_write_to_memory(lax, &n);
        fprintf(stderr, "  note: permissive vips_thumbnail %s the truncated JPEG\n",
                m ? "still renders" : "refuses");
        g_free(m);
        g_object_unref(lax);
    }
    vips_error_clear();
    image_result r;
    ex_error e = {0};
    CHECK(image_process(p, NULL, &r, &e) == EX_EREFUSED);
    CHECK(!strcmp(e.code, "image_undecodable"));
    /* The untruncated original processes: the refusal is about the missing bytes. */
    if (process_ok("photos/drewnoakes_Sanyo SR6.jpg", &r)) image_result_release(&r);
}

/* A header claiming 20000x20000 is refused on the header: with the limits lifted the same file
 * reaches the decoder and fails differently, so the default refusal cannot have come from
 * decoding. */
TEST(test_header_checked_before_decode)
{
    char p[4096];
    data_path("edge/claims_20000x20000.png", p, sizeof p);
    image_result r;
    ex_error e = {0};
    double t0 = now_ms();
    CHECK(image_process(p, NULL, &r, &e) == EX_EREFUSED);
    double dt = now_ms() - t0;
    CHECKF(!strcmp(e.code, "image_too_large"), "%s", e.code);
    CHECKF(strstr(e.message, "20000x20000") != NULL, "%s", e.message);
    image_limits lim;
    image_limits_default(&lim);
    lim.max_width = lim.max_height = 1 << 20;
    lim.max_pixels = lim.max_pixels_buffered = UINT64_MAX;
    memset(&e, 0, sizeof e);
    ex_rc rc = image_process(p, &lim, &r, &e);
    CHECKF(rc == EX_EREFUSED && !strcmp(e.code, "image_undecodable"), "lifted limits: rc=%d %s", rc,
           e.code);
    if (rc == EX_OK) image_result_release(&r);
    fprintf(stderr, "  20000x20000 PNG refused in %.2f ms\n", dt);
}

/* Limits are inclusive and each one bites on its own (a real 4032x3024 JPEG). */
TEST(test_limits_boundaries)
{
    char p[4096];
    data_path("photos/drewnoakes_Issue 525.jpg", p, sizeof p);
    struct stat st;
    CHECK(stat(p, &st) == 0);
    const uint64_t px = 4032ull * 3024ull;
    static const struct {
        int field; /* 0 bytes, 1 width, 2 height, 3 pixels, 4 buffered */
        int delta; /* 0: exactly at the limit (accepted), -1: one below (refused) */
        int ok;
    } cases[] = {{0, 0, 1},  {0, -1, 0}, {1, 0, 1},  {1, -1, 0}, {2, 0, 1},
                 {2, -1, 0}, {3, 0, 1},  {3, -1, 0}, {4, -1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        image_limits lim;
        image_limits_default(&lim);
        switch (cases[i].field) {
        case 0:
            lim.max_bytes = (uint64_t)st.st_size + cases[i].delta;
            break;
        case 1:
            lim.max_width = 4032 + cases[i].delta;
            break;
        case 2:
            lim.max_height = 3024 + cases[i].delta;
            break;
        case 3:
            lim.max_pixels = px + cases[i].delta;
            break;
        case 4:
            lim.max_pixels_buffered = 1000;
            break; /* baseline JPEG streams: not buffered */
        }
        image_result r;
        ex_error e = {0};
        ex_rc rc = image_process(p, &lim, &r, &e);
        if (cases[i].ok) {
            CHECKF(rc == EX_OK, "case %zu: rc=%d %s", i, rc, e.message);
        } else {
            CHECKF(rc == EX_EREFUSED && !strcmp(e.code, "image_too_large"), "case %zu: rc=%d %s", i,
                   rc, e.code);
        }
        if (rc == EX_OK) image_result_release(&r);
    }
}

/* Progressive JPEG, interlaced PNG and HEIF decode whole: their own pixel budget applies. */
TEST(test_buffered_budget)
{
    char p[4096];
    image_limits lim;
    image_result r;
    ex_error e;
    ex_rc rc;

    /* drewnoakes_Issue 116.jpg is the one progressive JPEG in the set: 800x346. */
    data_path("photos/drewnoakes_Issue 116.jpg", p, sizeof p);
    image_limits_default(&lim);
    lim.max_pixels_buffered = 800 * 346;
    rc = image_process(p, &lim, &r, &e);
    CHECKF(rc == EX_OK, "progressive at budget: %d", rc);
    if (rc == EX_OK) image_result_release(&r);
    lim.max_pixels_buffered = 800 * 346 - 1;
    rc = image_process(p, &lim, &r, &e);
    CHECKF(rc == EX_EREFUSED && !strcmp(e.code, "image_too_large"), "progressive: %d", rc);

    data_path("photos/drewnoakes_exif-at-eof.heic", p, sizeof p);
    lim.max_pixels_buffered = 12000000; /* the HEIC is 3024x4032 = 12.19 MP */
    double t0 = now_ms();
    rc = image_process(p, &lim, &r, &e);
    CHECKF(rc == EX_EREFUSED && !strcmp(e.code, "image_too_large"), "heic: %d", rc);
    CHECKF(now_ms() - t0 < 500, "HEIC refusal took %.0f ms: it decoded first?", now_ms() - t0);

    /* Interlaced PNG made from a real photo. */
    char png[] = "/tmp/exhibit_interlaced_XXXXXX.png";
    int fd = mkstemps(png, 4);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    VipsImage *src = NULL;
    CHECK(vips_jpegload(data_path("pdq/modes/RGB.jpg", p, sizeof p), &src, NULL) == 0);
    CHECK(src && vips_pngsave(src, png, "interlace", TRUE, "compression", 1, NULL) == 0);
    if (src) g_object_unref(src);
    image_limits_default(&lim);
    lim.max_pixels_buffered = 1000000; /* 1600x1004 */
    rc = image_process(png, &lim, &r, &e);
    CHECKF(rc == EX_EREFUSED && !strcmp(e.code, "image_too_large"), "interlaced png: %d", rc);
    rc = image_process(png, NULL, &r, &e);
    CHECKF(rc == EX_OK, "interlaced png default limits: %d %s", rc, e.message);
    if (rc == EX_OK) {
        CHECK(r.preview_w == 1600 && r.preview_h == 1004);
        image_result_release(&r);
    }
    unlink(png);
}

/* ---- orientation --------------------------------------------------------------------------- */

/* recurser_Landscape_0..8: one landscape photo stored in all 8 EXIF orientations (and the
 * invalid 0). Every preview must be the same upright picture. */
TEST(test_landscapes_all_alike)
{
    enum { W = 48, H = 32 };
    static double ref[W * H], cur[W * H];
    image_result r;
    CHECK(process_ok("photos/recurser_Landscape_1.jpg", &r));
    CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, ref) == 0);
    image_result_release(&r);
    for (int i = 0; i <= 8; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "photos/recurser_Landscape_%d.jpg", i);
        if (!process_ok(rel, &r)) continue;
        CHECKF(r.preview_w == 1600 && r.preview_h == 1067, "%s preview %dx%d", rel, r.preview_w,
               r.preview_h);
        CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, cur) == 0);
        double c = pearson(ref, cur, W * H);
        CHECKF(c > 0.97, "%s correlates %.3f with Landscape_1", rel, c);
        image_result_release(&r);
    }
    /* The metric can tell: the mirror image of the upright photo does not pass. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            cur[y * W + x] = ref[y * W + (W - 1 - x)];
    double c = pearson(ref, cur, W * H);
    CHECKF(c < 0.9, "mirror correlates %.3f", c);
}

/* Orientation 6 (a test chart and a real Samsung phone photo): our preview against libvips'
 * vips_autorot of the original, and against the unrotated original. */
TEST(test_orientation6_upright)
{
    static const char *files[] = {"photos/recurser_Portrait_6.jpg",
                                  "photos/drewnoakes_Samsung SM-J327T1.jpg",
                                  "photos/recurser_Portrait_8.jpg"};
    enum { W = 32, H = 48 };
    static double ours[W * H], want[W * H], raw[W * H];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        image_result r;
        if (!process_ok(files[i], &r)) continue;
        CHECKF(r.preview_h > r.preview_w, "%s preview %dx%d is not portrait", files[i], r.preview_w,
               r.preview_h);
        char p[4096];
        VipsImage *orig = NULL, *rot = NULL;
        CHECK(vips_jpegload(data_path(files[i], p, sizeof p), &orig, NULL) == 0);
        CHECK(orig && vips_autorot(orig, &rot, NULL) == 0);
        if (rot) {
            CHECK(rot->Xsize == orig->Ysize && rot->Ysize == orig->Xsize);
            CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, ours) == 0);
            CHECK(grey_of(rot, W, H, want) == 0);
            CHECK(grey_of(orig, W, H, raw) == 0); /* squashed into portrait, unrotated */
            double good = pearson(ours, want, W * H), bad = pearson(ours, raw, W * H);
            CHECKF(good > 0.98 && bad < good - 0.1, "%s: autorot %.3f, unrotated %.3f", files[i],
                   good, bad);
            g_object_unref(rot);
        }
        if (orig) g_object_unref(orig);
        image_result_release(&r);
    }
}

/* libheif already rotated the HEIC (its EXIF still says 6); rotating again would make it
 * landscape. */
TEST(test_heic_not_double_rotated)
{
    image_result r;
    double t0 = now_ms();
    if (!process_ok("photos/drewnoakes_Issue 263 dotnet.heic", &r)) return;
    fprintf(stderr, "  timing: 12 MP HEIC %.0f ms\n", now_ms() - t0);
    CHECK(r.type == IMAGE_HEIC);
    CHECK(r.width == 3024 && r.height == 4032);
    CHECK(r.orientation == 1);
    CHECKF(r.preview_w == 1200 && r.preview_h == 1600, "preview %dx%d", r.preview_w, r.preview_h);
    CHECKF(r.thumb_w == 192 && r.thumb_h == 256, "thumb %dx%d", r.thumb_w, r.thumb_h);
    /* The EXIF blob really does say 6: find the Orientation tag (0x0112) in it. */
    int exif_o = 0;
    for (size_t i = 0; r.exif && i + 10 <= r.exif_len && !exif_o; i++) {
        const uint8_t *q = r.exif + i;
        if (q[0] == 0x01 && q[1] == 0x12 && q[2] == 0x00 && q[3] == 0x03)
            exif_o = q[9]; /* MM: type SHORT, count 1, value in the high bytes */
    }
    CHECKF(exif_o == 6, "EXIF orientation in the HEIC blob: %d", exif_o);

    enum { W = 30, H = 40 };
    static double ours[W * H], dec[W * H], rot[W * H];
    char p[4096];
    VipsImage *im = NULL, *r90 = NULL;
    CHECK(vips_heifload(data_path("photos/drewnoakes_Issue 263 dotnet.heic", p, sizeof p), &im,
                        NULL) == 0);
    if (im) {
        CHECK(vips_rot90(im, &r90, NULL) == 0);
        CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, ours) == 0);
        CHECK(grey_of(im, W, H, dec) == 0);
        CHECK(r90 && grey_of(r90, W, H, rot) == 0);
        double good = pearson(ours, dec, W * H), bad = pearson(ours, rot, W * H);
        CHECKF(good > 0.98 && bad < good - 0.1, "as decoded %.3f, rotated again %.3f", good, bad);
        if (r90) g_object_unref(r90);
        g_object_unref(im);
    }
    image_result_release(&r);
}

/* ---- colour -------------------------------------------------------------------------------- */

/* pdq/modes: one photo in many colour modes (CMYK JPEG, grey, 1-bit, palette, alpha, Lab and
 * HSV WebP...). Every preview is the same 1600x1004 picture as the RGB one. */
TEST(test_modes_alike)
{
    static const char *modes[] = {"1.png",    "CMYK.jpg",  "F.webp",      "HSV.webp", "I.webp",
                                  "L.png",    "LA.png",    "LAB.webp",    "P.png",    "PA.webp",
                                  "RGBA.png", "YCbCr.jpg", "original.jpg"};
    enum { W = 64, H = 40 };
    static double ref[W * H], cur[W * H];
    image_result r;
    if (!process_ok("pdq/modes/RGB.jpg", &r)) return;
    CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, ref) == 0);
    image_result_release(&r);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "pdq/modes/%s", modes[i]);
        if (!process_ok(rel, &r)) continue;
        check_result_shape(rel, &r, 1600, 1004);
        CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, cur) == 0);
        double c = pearson(ref, cur, W * H);
        CHECKF(c > 0.95, "%s correlates %.3f with RGB.jpg", rel, c);
        save_derivative(rel, "preview", r.preview, r.preview_len);
        save_derivative(rel, "thumb", r.thumb, r.thumb_len);
        image_result_release(&r);
    }
}

/* Alpha is flattened onto white: the left half of a real photo made fully transparent, as an
 * 8-bit and as a 16-bit RGBA PNG. */
static void alpha_case(int sixteen)
{
    char p[4096], png[] = "/tmp/exhibit_alpha_XXXXXX.png";
    int fd = mkstemps(png, 4);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    VipsImage *src = NULL, *xy = NULL, *x = NULL, *a = NULL, *rgba = NULL, *l = NULL, *u = NULL,
              *out = NULL;
    int ok = vips_jpegload(data_path("pdq/modes/RGB.jpg", p, sizeof p), &src, NULL) == 0 &&
             vips_xyz(&xy, src->Xsize, src->Ysize, NULL) == 0 &&
             vips_extract_band(xy, &x, 0, NULL) == 0 &&
             vips_moreeq_const1(x, &a, src->Xsize / 2, NULL) == 0 &&
             vips_bandjoin2(src, a, &rgba, NULL) == 0;
    if (ok && sixteen)
        ok = vips_linear1(rgba, &l, 257.0, 0.0, NULL) == 0 &&
             vips_cast(l, &u, VIPS_FORMAT_USHORT, NULL) == 0 &&
             vips_copy(u, &out, "interpretation", VIPS_INTERPRETATION_RGB16, NULL) == 0;
    else if (ok)
        ok = vips_copy(rgba, &out, NULL) == 0;
    ok = ok && vips_pngsave(out, png, "compression", 1, NULL) == 0;
    CHECKF(ok, "making the RGBA test file: %s", vips_error_buffer());
    if (ok) {
        VipsImage *chk = NULL;
        CHECK(vips_pngload(png, &chk, NULL) == 0 && chk->Bands == 4 &&
              chk->BandFmt == (sixteen ? VIPS_FORMAT_USHORT : VIPS_FORMAT_UCHAR));
        VIPS_UNREF(chk);
    }
    VIPS_UNREF(out);
    VIPS_UNREF(u);
    VIPS_UNREF(l);
    VIPS_UNREF(rgba);
    VIPS_UNREF(a);
    VIPS_UNREF(x);
    VIPS_UNREF(xy);
    VIPS_UNREF(src);
    image_result r;
    ex_error e = {0};
    if (ok && image_process(png, NULL, &r, &e) == EX_OK) {
        int w, h;
        uint8_t *rgb = rgb_of_jpeg(r.preview, r.preview_len, &w, &h);
        CHECK(rgb && w == 1600 && h == 1004);
        if (rgb) {
            double left = 0, right = 0;
            int minl = 255;
            for (int yy = 0; yy < h; yy++)
                for (int xx = 0; xx < w; xx++)
                    for (int c = 0; c < 3; c++) {
                        int v = rgb[((size_t)yy * w + xx) * 3 + c];
                        if (xx < w / 2 - 8) {
                            left += v;
                            minl = v < minl ? v : minl;
                        } else if (xx > w / 2 + 8) {
                            right += v;
                        }
                    }
            left /= (double)h * (w / 2 - 8) * 3;
            right /= (double)h * (w / 2 - 9) * 3;
            CHECKF(left > 253 && minl >= 245, "%d-bit transparent half: mean %.1f min %d",
                   sixteen ? 16 : 8, left, minl);
            CHECKF(right > 30 && right < 200, "%d-bit opaque half: mean %.1f (not the photo)",
                   sixteen ? 16 : 8, right);
            g_free(rgb);
        }
        image_result_release(&r);
    } else {
        CHECKF(0, "%d-bit RGBA png: %s", sixteen ? 16 : 8, e.message);
    }
    unlink(png);
}

TEST(test_alpha_onto_white)
{
    alpha_case(0);
    alpha_case(1);
}

/* A real photo converted into a wide-gamut space with its profile embedded must come back to
 * the same sRGB colours; read without the transform (what strip alone would give) it does not. */
TEST(test_icc_converted_to_srgb)
{
    char profile[4096], p[4096], jpg[] = "/tmp/exhibit_icc_XXXXXX.jpg";
    data_path("icc/wide_rgb.icc", profile, sizeof profile); /* ProPhoto primaries: far from sRGB */
    int fd = mkstemps(jpg, 4);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    VipsImage *src = NULL, *wide = NULL;
    int ok = vips_jpegload(data_path("pdq/modes/RGB.jpg", p, sizeof p), &src, NULL) == 0 &&
             vips_icc_transform(src, &wide, profile, "input_profile", "srgb", "embedded", FALSE,
                                NULL) == 0 &&
             vips_jpegsave(wide, jpg, "Q", 95, NULL) == 0;
    CHECKF(ok, "making the wide-gamut file: %s", vips_error_buffer());
    VIPS_UNREF(wide);
    VIPS_UNREF(src);
    image_result ref, r;
    if (ok && process_ok("pdq/modes/RGB.jpg", &ref)) {
        ex_error e = {0};
        ex_rc rc = image_process(jpg, NULL, &r, &e);
        CHECKF(rc == EX_OK, "%s", e.message);
        if (rc == EX_OK) {
            CHECK(r.has_icc);
            int w1, h1, w2, h2;
            uint8_t *a = rgb_of_jpeg(ref.preview, ref.preview_len, &w1, &h1);
            uint8_t *b = rgb_of_jpeg(r.preview, r.preview_len, &w2, &h2);
            /* The naive reading: the wide-gamut numbers taken as sRGB. */
            VipsImage *raw = NULL;
            void *nb = NULL;
            size_t nn = 0;
            if (vips_jpegload(jpg, &raw, NULL) == 0) {
                nb = vips_image_write_to_memory(raw, &nn);
                g_object_unref(raw);
            }
            CHECK(a && b && nb && w1 == w2 && h1 == h2 && nn == (size_t)w1 * h1 * 3);
            if (a && b && nb && w1 == w2 && h1 == h2 && nn == (size_t)w1 * h1 * 3) {
                double good = rgb_mad(a, b, nn), naive = rgb_mad(a, nb, nn);
                CHECKF(good < 3.0 && naive > 2 * good + 2,
                       "%s: converted differs by %.2f, naive by %.2f", profile, good, naive);
                fprintf(stderr, "  ICC (%s): converted differs by %.2f, unconverted by %.2f\n",
                        profile, good, naive);
            }
            g_free(a);
            g_free(b);
            g_free(nb);
            image_result_release(&r);
        }
        image_result_release(&ref);
    }
    unlink(jpg);
}

/* Inserts an APP2 ICC_PROFILE segment holding icc right after the SOI of a real JPEG. */
static int jpeg_with_icc(const char *src, const char *dst, const uint8_t *icc, size_t n)
{
    static uint8_t in[1 << 20];
    FILE *f = fopen(src, "rb");
    if (!f) return -1;
    size_t len = fread(in, 1, sizeof in, f);
    fclose(f);
    if (len < 4 || len == sizeof in || n > 60000) return -1;
    size_t seg = 2 + 12 + 2 + n;
    uint8_t hdr[18] = {0xFF, 0xD8, 0xFF, 0xE2, (uint8_t)(seg >> 8), (uint8_t)seg};
    memcpy(hdr + 6, "ICC_PROFILE", 12);
    f = fopen(dst, "wb");
    if (!f) return -1;
    int ok = fwrite(hdr, 1, 18, f) == 18 && fputc(1, f) != EOF && fputc(1, f) != EOF &&
             fwrite(icc, 1, n, f) == n && fwrite(in + 2, 1, len - 2, f) == len - 2;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A grey profile attached to an RGB photo: libvips 8.14 would apply it and return a washed-out
 * grey picture; browsers ignore it. The preview must keep the photo's colours. */
TEST(test_mismatched_icc_ignored)
{
    static uint8_t icc[65536];
    char p[4096], jpg[] = "/tmp/exhibit_grayicc_XXXXXX.jpg";
    FILE *f = fopen(data_path("icc/gray.icc", p, sizeof p), "rb");
    CHECKF(f != NULL, "cannot open %s", p);
    if (!f) return;
    size_t n = fread(icc, 1, sizeof icc, f);
    fclose(f);
    int fd = mkstemps(jpg, 4);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    CHECK(n > 128 && !memcmp(icc + 16, "GRAY", 4));
    CHECK(jpeg_with_icc(data_path("photos/drewnoakes_Sanyo SR6.jpg", p, sizeof p), jpg, icc, n) ==
          0);
    image_result ref, r;
    ex_error e = {0};
    if (process_ok("photos/drewnoakes_Sanyo SR6.jpg", &ref)) {
        ex_rc rc = image_process(jpg, NULL, &r, &e);
        CHECKF(rc == EX_OK, "%s", e.message);
        if (rc == EX_OK) {
            CHECK(r.has_icc);
            int w1, h1, w2, h2;
            uint8_t *a = rgb_of_jpeg(ref.preview, ref.preview_len, &w1, &h1);
            uint8_t *b = rgb_of_jpeg(r.preview, r.preview_len, &w2, &h2);
            CHECK(a && b && w1 == w2 && h1 == h2);
            if (a && b && w1 == w2 && h1 == h2) {
                double d = rgb_mad(a, b, (size_t)w1 * h1 * 3);
                CHECKF(d < 1.0, "preview differs from the photo by %.2f per channel", d);
            }
            g_free(a);
            g_free(b);
            image_result_release(&r);
        }
        image_result_release(&ref);
    }
    unlink(jpg);
}

/* CMYK JPEG whose embedded profile does not fit the image: the fallback profile is used. */
TEST(test_cmyk_with_bad_profile)
{
    image_result r;
    if (!process_ok("photos/drewnoakes_Multiple ICC segments.jpg", &r)) return;
    CHECK(r.has_icc && r.preview_w == 140 && r.preview_h == 140);
    int w, h;
    uint8_t *rgb = rgb_of_jpeg(r.preview, r.preview_len, &w, &h);
    CHECK(rgb != NULL);
    if (rgb) {
        /* A logo on white: the corners are white once CMYK is converted properly. */
        const size_t corners[] = {0, (size_t)(w - 1) * 3, (size_t)(h - 1) * w * 3,
                                  ((size_t)h * w - 1) * 3};
        for (int i = 0; i < 4; i++)
            CHECKF(rgb[corners[i]] > 240 && rgb[corners[i] + 1] > 240 && rgb[corners[i] + 2] > 240,
                   "corner %d is %d,%d,%d", i, rgb[corners[i]], rgb[corners[i] + 1],
                   rgb[corners[i] + 2]);
        g_free(rgb);
    }
    image_result_release(&r);
}

/* Luma is Y = .299R + .587G + .114B of the preview pixels (compared with the decoded JPEG,
 * so within JPEG error). */
TEST(test_luma_matches_preview)
{
    image_result r;
    if (!process_ok("photos/drewnoakes_Nikon D5000.jpg", &r)) return;
    int w, h;
    uint8_t *rgb = rgb_of_jpeg(r.preview, r.preview_len, &w, &h);
    CHECK(rgb && w == r.luma_w && h == r.luma_h);
    if (rgb && w == r.luma_w && h == r.luma_h) {
        double mad = 0, lo = 1e9, hi = -1e9, mean_ours = 0, mean_ref = 0;
        size_t n = (size_t)w * h;
        for (size_t i = 0; i < n; i++) {
            double y = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
            mad += fabs(y - r.luma[i]);
            mean_ours += r.luma[i];
            mean_ref += y;
            lo = r.luma[i] < lo ? r.luma[i] : lo;
            hi = r.luma[i] > hi ? r.luma[i] : hi;
        }
        mad /= n;
        CHECKF(mad < 3.5, "luma differs from the decoded preview by %.2f", mad);
        CHECKF(fabs(mean_ours - mean_ref) / n < 1.0, "mean luma %.2f vs %.2f", mean_ours / n,
               mean_ref / n);
        CHECKF(lo >= 0 && hi <= 255 && hi - lo > 100, "luma range %.1f..%.1f", lo, hi);
        g_free(rgb);
    }
    image_result_release(&r);
}

/* The largest EXIF a JPEG can carry (60 KB, GPS, orientation 6) plus XMP GPS, IPTC and ICC:
 * recorded in the result, gone from the derivatives. */
TEST(test_huge_exif)
{
    image_result r;
    if (!process_ok("edge/huge_exif.jpg", &r)) return;
    CHECKF(r.exif_len > 60000, "exif %zu bytes", r.exif_len);
    CHECK(r.xmp && strstr(r.xmp, "GPSLatitude"));
    CHECK(r.has_iptc && r.has_icc);
    CHECK(r.orientation == 6 && r.width == 320 && r.height == 240);
    check_result_shape("huge_exif.jpg", &r, 240, 320);
    save_derivative("huge_exif", "preview", r.preview, r.preview_len);
    save_derivative("huge_exif", "thumb", r.thumb, r.thumb_len);
    image_result_release(&r);
}

/* ---- process-wide behaviour --------------------------------------------------------------- */

TEST(test_global_settings)
{
    ex_error e = {0};
    CHECK(image_global_init("again", &e) == EX_OK); /* idempotent */
    CHECK(vips_cache_get_max() == 0);
    /* libvips itself now refuses loaders outside our allow-list, even when asked to guess:
     * the PPM that ImageMagick/ppmload would parse, the GIF, the SVG, the PDF. */
    static const char *others[] = {"edge/tiny.ppm", "photos/exiftool_GIF.gif", "edge/drawing.svg",
                                   "edge/doc.pdf", "photos/drewnoakes_Issue 151.tif"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char p[4096];
        VipsImage *im = vips_image_new_from_file(data_path(others[i], p, sizeof p), NULL);
        CHECKF(im == NULL, "libvips still loads %s", others[i]);
        if (im) g_object_unref(im);
        vips_error_clear();
    }
}

TEST(test_bad_arguments_and_paths)
{
    image_result r;
    ex_error e = {0};
    CHECK(image_process(NULL, NULL, &r, &e) == EX_EINVAL);
    CHECK(image_process("/nonexistent", NULL, NULL, &e) == EX_EINVAL);
    CHECK(image_process("/nonexistent/exhibit.jpg", NULL, &r, &e) == EX_EIO);
    CHECK(!strcmp(e.code, "image_unreadable"));
    char p[4096];
    CHECK(image_process(data_path("edge", p, sizeof p), NULL, &r, &e) == EX_EIO);
    /* A FIFO must not hang the request thread. */
    char fifo[] = "/tmp/exhibit_fifo_XXXXXX";
    int fd = mkstemp(fifo);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
        unlink(fifo);
        CHECK(mkfifo(fifo, 0600) == 0);
        double t0 = now_ms();
        CHECK(image_process(fifo, NULL, &r, &e) == EX_EIO);
        CHECK(now_ms() - t0 < 1000);
        unlink(fifo);
    }
    image_result_release(NULL);
    memset(&r, 0, sizeof r);
    image_result_release(&r);
    image_result_release(&r);
    /* NULL ex_error is allowed. */
    CHECK(image_process("/nonexistent/exhibit.jpg", NULL, &r, NULL) == EX_EIO);
}

/* ---- concurrency --------------------------------------------------------------------------- */

static const char *const thread_files[] = {
    "photos/drewnoakes_Issue 525.jpg",
    "photos/drewnoakes_HTC Desire.webp",
    "photos/drewnoakes_Issue 280 (dotnet).png",
    "edge/truncated.jpg",
    "photos/recurser_Portrait_6.jpg",
    "edge/truncated.png",
    "pdq/modes/CMYK.jpg",
};
enum { NTF = sizeof thread_files / sizeof thread_files[0], NTHREADS = 4, ROUNDS = 1 };
static struct {
    ex_rc rc;
    uint8_t *preview;
    size_t len;
} thread_ref[NTF];
static int thread_bad[NTHREADS];

static void *thread_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < NTF; k++) {
            int i = (k + id * 3 + round) % NTF;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s",
                     getenv("EXHIBIT_TESTDATA") ? getenv("EXHIBIT_TESTDATA") : "tests/data",
                     thread_files[i]);
            image_result r;
            ex_error e;
            ex_rc rc = image_process(p, NULL, &r, &e);
            if (rc != thread_ref[i].rc) thread_bad[id]++;
            if (rc == EX_OK) {
                if (r.preview_len != thread_ref[i].len ||
                    memcmp(r.preview, thread_ref[i].preview, r.preview_len) != 0)
                    thread_bad[id]++;
                image_result_release(&r);
            }
        }
    return NULL;
}

TEST(test_threads_agree_with_sequential)
{
    for (int i = 0; i < NTF; i++) {
        char p[4096];
        image_result r;
        ex_error e;
        thread_ref[i].rc = image_process(data_path(thread_files[i], p, sizeof p), NULL, &r, &e);
        if (thread_ref[i].rc == EX_OK) {
            thread_ref[i].preview = r.preview; /* take ownership */
            thread_ref[i].len = r.preview_len;
            r.preview = NULL;
            image_result_release(&r);
        }
    }
    pthread_t t[NTHREADS];
    double t0 = now_ms();
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        CHECKF(thread_bad[i] == 0, "thread %d: %d results differ from sequential", i,
               thread_bad[i]);
    fprintf(stderr, "  threads: %d x %d images in %.0f ms\n", NTHREADS, ROUNDS * NTF,
            now_ms() - t0);
    for (int i = 0; i < NTF; i++)
        free(thread_ref[i].preview);
}

/* ---- size and speed ------------------------------------------------------------------------ */

/* A 16320x12240 (200 MP, a Samsung HP2 frame) baseline JPEG made from a real photo: decoded at
 * 1/8 scale by libjpeg, so memory stays far below the 600 MB a full decode needs. Runs first,
 * while the process high-water mark is still low. */
TEST(test_200mp_jpeg_shrink_on_load)
{
    char p[4096], big[] = "/tmp/exhibit_200mp_XXXXXX.jpg";
    int fd = mkstemps(big, 4);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    VipsImage *src = NULL, *z = NULL, *emb = NULL;
    double t0 = now_ms();
    int ok = vips_jpegload(data_path("photos/drewnoakes_Issue 525.jpg", p, sizeof p), &src,
                           "access", VIPS_ACCESS_SEQUENTIAL, NULL) == 0 &&
             vips_zoom(src, &z, 4, 4, NULL) == 0 &&
             vips_embed(z, &emb, 96, 72, 16320, 12240, "extend", VIPS_EXTEND_COPY, NULL) == 0 &&
             vips_jpegsave(emb, big, "Q", 80, "strip", TRUE, NULL) == 0;
    CHECKF(ok, "making the 200 MP JPEG: %s", vips_error_buffer());
    VIPS_UNREF(emb);
    VIPS_UNREF(z);
    VIPS_UNREF(src);
    double tgen = now_ms() - t0;
    if (ok) {
        image_result r;
        ex_error e = {0};
        long rss0 = maxrss_kb();
        t0 = now_ms();
        ex_rc rc = image_process(big, NULL, &r, &e);
        double dt = now_ms() - t0;
        long grew = maxrss_kb() - rss0;
        CHECKF(rc == EX_OK, "200 MP: %s", e.message);
        if (rc == EX_OK) {
            CHECK(r.width == 16320 && r.height == 12240);
            CHECK(r.preview_w == 1600 && r.preview_h == 1200);
            image_result ref;
            if (process_ok("photos/drewnoakes_Issue 525.jpg", &ref)) {
                enum { W = 64, H = 48 };
                static double a[W * H], b[W * H];
                CHECK(grey_of_jpeg(ref.preview, ref.preview_len, W, H, a) == 0);
                CHECK(grey_of_jpeg(r.preview, r.preview_len, W, H, b) == 0);
                double c = pearson(a, b, W * H);
                CHECKF(c > 0.98, "200 MP preview correlates %.3f with the source", c);
                image_result_release(&ref);
            }
            image_result_release(&r);
        }
        CHECKF(grew < 300 * 1024, "peak RSS grew by %ld MB", grew / 1024);
        CHECKF(dt < 30000, "200 MP took %.0f ms", dt);
        fprintf(stderr, "  200 MP JPEG: made in %.0f ms, processed in %.0f ms, peak RSS +%ld MB\n",
                tgen, dt, grew / 1024);
    }
    unlink(big);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Timings are reported, not asserted (shared machine, sanitizer build). */
TEST(test_timings_report)
{
    static const char *files[] = {"photos/drewnoakes_Issue 525.jpg", /* 12 MP baseline */
                                  "photos/drewnoakes_Issue 116.jpg", /* progressive */
                                  "pdq/modes/CMYK.jpg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        double ms[3];
        int n = 3;
        for (int k = 0; k < n; k++) {
            image_result r;
            double t0 = now_ms();
            int ok = process_ok(files[i], &r);
            ms[k] = now_ms() - t0;
            if (ok) image_result_release(&r);
        }
        qsort(ms, n, sizeof ms[0], cmp_double);
        fprintf(stderr, "  timing: %s median %.0f ms (%d runs)\n", files[i], ms[n / 2], n);
    }
}

static void remove_tmp_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
}

/* `test_image NAME` runs only the tests whose name contains NAME. */
#define RUN_IF(name)                                                                               \
    do {                                                                                           \
        if (argc < 2 || strstr(#name, argv[1])) RUN(name);                                         \
    } while (0)

int main(int argc, char **argv)
{
    ex_error e = {0};
    if (image_global_init(argv[0], &e) != EX_OK) {
        fprintf(stderr, "image_global_init: %s\n", e.message);
        return 1;
    }
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN_IF(test_200mp_jpeg_shrink_on_load);
    RUN_IF(test_sniff_table);
    RUN_IF(test_global_settings);
    RUN_IF(test_bad_arguments_and_paths);
    RUN_IF(test_photos_expected);
    RUN_IF(test_edge_files);
    RUN_IF(test_truncated_refused_not_grey_filled);
    RUN_IF(test_header_checked_before_decode);
    RUN_IF(test_limits_boundaries);
    RUN_IF(test_buffered_budget);
    RUN_IF(test_landscapes_all_alike);
    RUN_IF(test_orientation6_upright);
    RUN_IF(test_heic_not_double_rotated);
    RUN_IF(test_modes_alike);
    RUN_IF(test_alpha_onto_white);
    RUN_IF(test_icc_converted_to_srgb);
    RUN_IF(test_mismatched_icc_ignored);
    RUN_IF(test_cmyk_with_bad_profile);
    RUN_IF(test_luma_matches_preview);
    RUN_IF(test_huge_exif);
    RUN_IF(test_exiftool_derivatives_clean);
    RUN_IF(test_threads_agree_with_sequential);
    RUN_IF(test_timings_report);
    remove_tmp_dir();
    image_global_shutdown();
    UNIT_DONE();
}
