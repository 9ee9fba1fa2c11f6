/* image.c - safe decoding of untrusted uploads and their derivatives, on libvips 8.14.
 *
 * The order matters and is the point of this file:
 *   1. sniff the magic bytes ourselves against an allow-list (libvips would happily hand a PPM
 *      to ImageMagick, and vips_foreign_find_load_*() still names blocked loaders in 8.14);
 *   2. open that one loader by name on the already-open descriptor, header only, with
 *      fail_on=error passed to the loader itself (vips_thumbnail_*() ignores fail_on in 8.14,
 *      and a truncated JPEG would come back grey-filled);
 *   3. check the stored dimensions against the limits, overflow-safe, before any pixel;
 *   4. reopen with the loader's shrink-on-load (JPEG DCT scaling, libwebp scaling) and let
 *      vips_thumbnail_image() resize, rotate by EXIF (never for HEIF: libheif already did)
 *      and convert to sRGB (an ICC transform only when the file carries a profile that
 *      matches its pixels);
 *   5. flatten alpha onto white and render the 1600 px preview into plain memory once; a
 *      libvips pipeline is sequential and cannot be read twice. The thumbnail and the luma
 *      come from that buffer, which carries no metadata at all, and every JPEG save also
 *      passes strip (8.14 keeps EXIF/GPS on any save without it).
 * Limits: one frame only (first page of animated WebP / HEIF sequences); HEIF and progressive
 * JPEG / interlaced PNG decode whole, hence their own pixel budget.
 */
#include "exhibit/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vips/vips.h>

#define PREVIEW_Q 85

/* ---- logging ----------------------------------------------------------------------------- */

/* Writes `level=.. module=image event=.. msg="..."` to stderr. msg may hold bytes from the
 * upload (libjpeg warnings quote markers, libheif quotes box names): escape everything that is
 * not printable ASCII so a line can never be split or forged. */
static void image_log(const char *level, const char *event, const char *msg)
{
    char esc[768];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(msg ? msg : ""); *p; p++) {
        if (o + 5 >= sizeof esc) break;
        if (*p == '"' || *p == '\\') {
            esc[o++] = '\\';
            esc[o++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            o += (size_t)snprintf(esc + o, sizeof esc - o, "\\x%02x", *p);
        } else {
            esc[o++] = (char)*p;
        }
    }
    esc[o] = '\0';
    fprintf(stderr, "level=%s module=image event=%s msg=\"%s\"\n", level, event, esc);
}

static void image_glib_log(const gchar *domain, GLogLevelFlags level, const gchar *message,
                           gpointer user)
{
    const char *lv;
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        lv = "error";
    else if (level & G_LOG_LEVEL_WARNING)
        lv = "warn";
    else if (level & G_LOG_LEVEL_MESSAGE)
        lv = "info";
    else
        return; /* g_info/g_debug: libvips narrates every thumbnail at this level */
    char ev[64];
    snprintf(ev, sizeof ev, "%s_log", domain && *domain ? domain : "glib");
    for (char *c = ev; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            *c = '_';
    image_log(lv, ev, message);
}

/* Takes (and clears) libvips' error text for the log. The buffer is process-wide, so under
 * concurrency it may hold another request's words too: it is for operators, never for users. */
static void image_log_vips_error(const char *event)
{
    char *msg = vips_error_buffer_copy();
    image_log("warn", event, msg);
    g_free(msg);
}

/* ---- sniffing ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int brand_is(const uint8_t *b, const char *const *set)
{
    for (; *set; set++)
        if (memcmp(b, *set, 4) == 0) return 1;
    return 0;
}

static const char *const heic_brands[] = {"heic", "heix", "hevc", "hevx", "heim",
                                          "heis", "hevm", "hevs", NULL};
static const char *const avif_brands[] = {"avif", "avis", NULL};

/* ISO-BMFF: the major brand decides when it names a codec; generic majors (mif1, msf1, miaf)
 * defer to the compatible brands. Plain MP4/MOV (isom, qt) and JPEG-in-HEIF stay unknown. */
static image_type sniff_ftyp(const uint8_t *h, size_t n)
{
    uint32_t size = be32(h);
    if (size < 16 || size % 4 != 0 || size > 4096) return IMAGE_UNKNOWN;
    if (brand_is(h + 8, avif_brands)) return IMAGE_AVIF;
    if (brand_is(h + 8, heic_brands)) return IMAGE_HEIC;
    size_t end = size < n ? size : n;
    for (size_t off = 16; off + 4 <= end; off += 4) {
        if (brand_is(h + off, avif_brands)) return IMAGE_AVIF;
        if (brand_is(h + off, heic_brands)) return IMAGE_HEIC;
    }
    return IMAGE_UNKNOWN;
}

image_type image_sniff(const uint8_t *head, size_t n)
{
    if (!head || n < 3) return IMAGE_UNKNOWN;
    if (head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return IMAGE_JPEG;
    if (n < 16) return IMAGE_UNKNOWN;
    if (memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(head + 12, "IHDR", 4) == 0)
        return IMAGE_PNG;
    if (memcmp(head, "RIFF", 4) == 0 && memcmp(head + 8, "WEBPVP8", 7) == 0 &&
        (head[15] == ' ' || head[15] == 'L' || head[15] == 'X'))
        return IMAGE_WEBP;
    if (memcmp(head + 4, "ftyp", 4) == 0) return sniff_ftyp(head, n);
    return IMAGE_UNKNOWN;
}

const char *image_media_type(image_type t)
{
    switch (t) {
    case IMAGE_JPEG:
        return "image/jpeg";
    case IMAGE_PNG:
        return "image/png";
    case IMAGE_WEBP:
        return "image/webp";
    case IMAGE_HEIC:
        return "image/heic";
    case IMAGE_AVIF:
        return "image/avif";
    default:
        return "application/octet-stream";
    }
}

/* ---- process-wide ------------------------------------------------------------------------ */

static int image_started;

ex_rc image_global_init(const char *argv0, ex_error *e)
{
    if (image_started) return EX_OK;
    if (VIPS_INIT(argv0 ? argv0 : "exhibit")) {
        image_log_vips_error("vips_init_failed");
        return ex_fail(e, EX_EINTERNAL, "vips_init_failed",
                       "libvips failed to start; check the libvips installation");
    }
    g_log_set_default_handler(image_glib_log, NULL);
    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      image_glib_log, NULL);

    /* Our sniff is the real gate; these make libvips itself refuse any other loader too, in
     * case some code path ever asks it to guess (vips_image_new_from_*). */
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    vips_operation_block_set("VipsForeignLoadJpeg", FALSE);
    vips_operation_block_set("VipsForeignLoadPng", FALSE);
    vips_operation_block_set("VipsForeignLoadWebp", FALSE);
    vips_operation_block_set("VipsForeignLoadHeif", FALSE);

    /* Every upload is new: caching operations would only pin decoded images in memory. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    image_started = 1;
    return EX_OK;
}

void image_global_shutdown(void)
{
    if (!image_started) return;
    vips_shutdown();
    image_started = 0;
}

void image_limits_default(image_limits *l)
{
    l->max_bytes = 100u << 20;
    l->max_width = 32768;
    l->max_height = 32768;
    l->max_pixels = 220000000u;
    l->max_pixels_buffered = 64000000u;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* One loader, chosen by our sniff, never by libvips. fail_on=error makes truncation and
 * corrupt data fatal; warnings (a stray byte before a marker) still pass, as they do in every
 * viewer. jpeg_shrink is 1, 2, 4 or 8; webp_scale is in (0, 1]. */
static VipsImage *load_typed(VipsSource *src, image_type t, int jpeg_shrink, double webp_scale)
{
    VipsImage *im = NULL;
    int r = -1;
    switch (t) {
    case IMAGE_JPEG:
        r = vips_jpegload_source(src, &im, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                 VIPS_ACCESS_SEQUENTIAL, "shrink", jpeg_shrink, NULL);
        break;
    case IMAGE_PNG:
        r = vips_pngload_source(src, &im, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                VIPS_ACCESS_SEQUENTIAL, NULL);
        break;
    case IMAGE_WEBP:
        r = vips_webpload_source(src, &im, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                 VIPS_ACCESS_SEQUENTIAL, "scale", webp_scale, NULL);
        break;
    case IMAGE_HEIC:
    case IMAGE_AVIF:
        /* thumbnail=FALSE always: vips_thumbnail() would pick an embedded HEIF thumbnail when
         * it is big enough, and that is attacker-chosen pixels unrelated to the main image. */
        r = vips_heifload_source(src, &im, "fail_on", VIPS_FAIL_ON_ERROR, "access",
                                 VIPS_ACCESS_SEQUENTIAL, "thumbnail", FALSE, NULL);
        break;
    default:
        break;
    }
    return r == 0 ? im : NULL;
}

static int meta_int(VipsImage *im, const char *field)
{
    int v = 0;
    if (vips_image_get_typeof(im, field) && vips_image_get_int(im, field, &v) == 0) return v;
    return 0;
}

/* Copies a blob field into malloc'd memory with a trailing NUL (handy for XMP text).
 * Returns 0 when absent or copied, -1 on allocation failure. */
static int meta_blob_copy(VipsImage *im, const char *field, uint8_t **out, size_t *len)
{
    const void *data;
    size_t n;
    *out = NULL;
    *len = 0;
    if (!vips_image_get_typeof(im, field) || vips_image_get_blob(im, field, &data, &n) != 0 ||
        n == 0)
        return 0;
    uint8_t *p = malloc(n + 1);
    if (!p) return -1;
    memcpy(p, data, n);
    p[n] = 0;
    *out = p;
    *len = n;
    return 0;
}

/* libvips 8.14 hands HEIF XMP over as an anonymous "heif-mime-N" item, not as xmp-data: take
 * the first one that is an XMP packet. Returns 0 when absent or copied, -1 on allocation
 * failure. */
static int heif_xmp_copy(VipsImage *im, char **out, size_t *len)
{
    static const char tag[] = "<x:xmpmeta";
    gchar **fields = vips_image_get_fields(im);
    int rc = 0;
    for (gchar **f = fields; f && *f && !*out; f++) {
        const void *data;
        size_t n;
        if (!vips_isprefix("heif-mime-", *f) || vips_image_get_blob(im, *f, &data, &n) != 0 ||
            !memmem(data, n, tag, sizeof tag - 1))
            continue;
        if (!(*out = malloc(n + 1))) {
            rc = -1;
            break;
        }
        memcpy(*out, data, n);
        (*out)[n] = 0;
        *len = n;
    }
    g_strfreev(fields);
    return rc;
}

/* libvips gives JPEG "iptc-data" as the whole Photoshop APP13 block, which may hold other
 * resources (thumbnails, slices) and no IPTC at all. IPTC records are image resource 0x0404;
 * a bare IPTC stream starts with a 0x1C record marker. */
static int iptc_has_records(const uint8_t *p, size_t n)
{
    static const char ps[] = "Photoshop 3.0";
    if (n > 0 && p[0] == 0x1c) return 1;
    if (n >= sizeof ps && memcmp(p, ps, sizeof ps) == 0) {
        p += sizeof ps;
        n -= sizeof ps;
    }
    while (n >= 12 && memcmp(p, "8BIM", 4) == 0) {
        unsigned id = (unsigned)p[4] << 8 | p[5];
        size_t name = 1 + (size_t)p[6];
        name += name & 1;
        if (6 + name + 4 > n) return 0;
        const uint8_t *q = p + 6 + name;
        size_t size = (size_t)q[0] << 24 | (size_t)q[1] << 16 | (size_t)q[2] << 8 | q[3];
        if (id == 0x0404 && size > 0) return 1;
        size_t step = 6 + name + 4 + size + (size & 1);
        if (step > n) return 0;
        p += step;
        n -= step;
    }
    return 0;
}

static int has_iptc(VipsImage *im)
{
    const void *data;
    size_t n;
    if (vips_image_get_blob(im, VIPS_META_IPTC_NAME, &data, &n) != 0) return 0;
    return iptc_has_records(data, n);
}

/* A PNG's eXIf chunk (libvips 8.14 does not expose it; writers put it before or after the
 * image data): walks the chunk headers with pread, bounded by the file size, a chunk count and
 * a 64 KiB cap on the chunk. 0 when copied or absent,
 * -1 on allocation failure. */
static int png_exif_copy(int fd, off_t size, uint8_t **out, size_t *len)
{
    off_t pos = 8; /* after the signature */
    uint8_t hdr[8];
    for (int chunks = 0; chunks < 100000 && pos + 12 <= size; chunks++) {
        if (pread(fd, hdr, sizeof hdr, pos) != (ssize_t)sizeof hdr) return 0;
        uint32_t n =
            (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        if (memcmp(hdr + 4, "IEND", 4) == 0) return 0;
        if ((off_t)n > size - pos - 12) return 0;
        if (memcmp(hdr + 4, "eXIf", 4) == 0) {
            if (n == 0 || n > 65536) return 0;
            uint8_t *p = malloc(n);
            if (!p) return -1;
            if (pread(fd, p, n, pos + 8) != (ssize_t)n) {
                free(p);
                return 0;
            }
            *out = p;
            *len = n;
            return 0;
        }
        pos += 12 + (off_t)n;
    }
    return 0;
}

/* A PNG tEXt/iTXt "Software" chunk (editors write their names there instead of EXIF). */
static void png_software(VipsImage *im, char *out, size_t cap)
{
    gchar **fields = vips_image_get_fields(im);
    for (gchar **f = fields; f && *f; f++) {
        const char *v = NULL;
        if (vips_isprefix("png-comment-", *f) && g_str_has_suffix(*f, "-Software") &&
            vips_image_get_string(im, *f, &v) == 0 && v) {
            snprintf(out, cap, "%s", v);
            break;
        }
    }
    g_strfreev(fields);
}

/* Whether the embedded ICC profile describes these pixels: an RGB profile on RGB(A), a CMYK
 * one on CMYK. libvips 8.14 applies a grey profile attached to an RGB JPEG and returns a
 * washed-out grey picture, where browsers ignore the mismatched profile and show the colours;
 * the preview must show what the uploader saw. Grey images keep their pixels as they are
 * (8.14 has no grey fallback profile, and grey gamma is close to sRGB's). */
static int icc_describes(VipsImage *im)
{
    const void *data;
    size_t n;
    if (vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, &n) != 0 || n < 128) return 0;
    const uint8_t *h = data;
    if (memcmp(h + 36, "acsp", 4) != 0) return 0;
    if (vips_image_get_interpretation(im) == VIPS_INTERPRETATION_CMYK)
        return memcmp(h + 16, "CMYK", 4) == 0;
    return vips_image_get_bands(im) >= 3 && memcmp(h + 16, "RGB ", 4) == 0;
}

/* Largest JPEG DCT-domain shrink that keeps the long side at or above the preview size, so
 * the final lanczos step only ever shrinks. A 200 MP JPEG decodes at 1/8 scale this way. */
static int jpeg_shrink_for(int longest)
{
    int k = 8;
    while (k > 1 && longest / k < IMAGE_PREVIEW_MAX)
        k /= 2;
    return k;
}

static uint8_t *dup_to_malloc(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

/* Saves a metadata-free 3-band uchar image as JPEG into malloc'd memory. */
static ex_rc save_jpeg(VipsImage *im, uint8_t **out, size_t *len, ex_error *e)
{
    void *buf = NULL;
    size_t n = 0;
    /* strip on every save: 8.14 keeps EXIF/XMP/IPTC/ICC otherwise (keep= came in 8.15). */
    /* No optimize_coding: it doubles the encode time for files ~2% smaller. */
    if (vips_jpegsave_buffer(im, &buf, &n, "Q", PREVIEW_Q, "strip", TRUE, NULL)) {
        image_log_vips_error("encode_failed");
        return ex_fail(e, EX_EINTERNAL, "image_encode_failed",
                       "could not encode a JPEG derivative; this is a server fault");
    }
    uint8_t *p = dup_to_malloc(buf, n);
    g_free(buf);
    if (!p) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory encoding a derivative");
    *out = p;
    *len = n;
    return EX_OK;
}

static ex_rc undecodable(ex_error *e)
{
    image_log_vips_error("decode_failed");
    return ex_fail(e, EX_EREFUSED, "image_undecodable",
                   "the image could not be decoded completely (truncated or corrupt); upload "
                   "the original file again");
}

static void strerror_safe(int err, char *buf, size_t n)
{
    /* GNU strerror_r may return a static string instead of filling buf. */
    const char *s = strerror_r(err, buf, n);
    if (s != buf) snprintf(buf, n, "%s", s);
}

/* The whole pipeline; every object it holds is released at `done`, on success and failure. */
ex_rc image_process(const char *path, const image_limits *lim, image_result *out, ex_error *e)
{
    if (!path || !out)
        return ex_fail(e, EX_EINVAL, "bad_request", "image_process needs a path and a result");
    image_limits defaults;
    if (!lim) {
        image_limits_default(&defaults);
        lim = &defaults;
    }

    ex_rc rc = EX_OK;
    image_result r = {0};
    VipsSource *src = NULL;
    VipsImage *probe = NULL, *in = NULL, *sized = NULL, *flat = NULL, *rgb = NULL;
    VipsImage *prev = NULL, *thumb = NULL;
    void *pixels = NULL;
    char ebuf[128];

    /* O_NONBLOCK: a FIFO planted at the path must not hang a request thread in open(). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        strerror_safe(errno, ebuf, sizeof ebuf);
        return ex_fail(e, EX_EIO, "image_unreadable", "cannot open the staged upload: %s", ebuf);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ex_fail(e, EX_EIO, "image_unreadable", "the staged upload is not a regular file");
        goto done;
    }
    if ((uint64_t)st.st_size > lim->max_bytes) {
        rc = ex_fail(e, EX_EREFUSED, "image_too_large",
                     "the file is %lld bytes; at most %llu bytes are accepted",
                     (long long)st.st_size, (unsigned long long)lim->max_bytes);
        goto done;
    }

    uint8_t head[IMAGE_SNIFF_BYTES];
    ssize_t got;
    do
        got = pread(fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        strerror_safe(errno, ebuf, sizeof ebuf);
        rc = ex_fail(e, EX_EIO, "image_unreadable", "cannot read the staged upload: %s", ebuf);
        goto done;
    }
    r.type = image_sniff(head, (size_t)got);
    if (r.type == IMAGE_UNKNOWN) {
        rc = ex_fail(e, EX_EMEDIA, "unsupported_media_type",
                     got == 0 ? "the file is empty; upload a JPEG, PNG, WebP, HEIC or AVIF photo"
                              : "only JPEG, PNG, WebP, HEIC and AVIF photos are accepted");
        goto done;
    }
    const int is_heif = r.type == IMAGE_HEIC || r.type == IMAGE_AVIF;

    /* The source dup()s the descriptor we already checked, so the bytes libvips reads are the
     * bytes we sniffed even if the path is swapped underneath us. */
    if (!(src = vips_source_new_from_descriptor(fd))) {
        image_log_vips_error("source_failed");
        rc = ex_fail(e, EX_EIO, "image_unreadable", "cannot read the staged upload");
        goto done;
    }

    /* Header only: libvips loaders are lazy, no pixel is decoded until something asks. */
    if (!(probe = load_typed(src, r.type, 1, 1.0))) {
        rc = undecodable(e);
        goto done;
    }
    r.width = vips_image_get_width(probe);
    r.height = vips_image_get_height(probe);
    if (r.width <= 0 || r.height <= 0) {
        rc = undecodable(e);
        goto done;
    }
    /* Each side is an int below 2^31, so the product cannot overflow 64 bits. */
    const uint64_t npix = (uint64_t)r.width * (uint64_t)r.height;
    if (r.width > lim->max_width || r.height > lim->max_height || npix > lim->max_pixels) {
        rc = ex_fail(e, EX_EREFUSED, "image_too_large",
                     "the image is %dx%d (%llu pixels); at most %dx%d and %llu pixels are "
                     "accepted",
                     r.width, r.height, (unsigned long long)npix, lim->max_width, lim->max_height,
                     (unsigned long long)lim->max_pixels);
        goto done;
    }
    const int buffered = is_heif || (r.type == IMAGE_JPEG && meta_int(probe, "jpeg-multiscan")) ||
                         (r.type == IMAGE_PNG && meta_int(probe, "interlaced"));
    if (buffered && npix > lim->max_pixels_buffered) {
        rc = ex_fail(e, EX_EREFUSED, "image_too_large",
                     "the image is %dx%d (%llu pixels) in a progressive/interlaced/HEIF "
                     "encoding, which must be decoded whole; at most %llu pixels are accepted "
                     "(a baseline JPEG may be larger)",
                     r.width, r.height, (unsigned long long)npix,
                     (unsigned long long)lim->max_pixels_buffered);
        goto done;
    }

    r.orientation = is_heif ? 1 : vips_image_get_orientation(probe);
    r.has_iptc = has_iptc(probe);
    if (r.type == IMAGE_PNG) png_software(probe, r.software_text, sizeof r.software_text);
    r.has_icc = vips_image_get_typeof(probe, VIPS_META_ICC_NAME) != 0;
    uint8_t *xmp = NULL;
    int mfail = meta_blob_copy(probe, VIPS_META_EXIF_NAME, &r.exif, &r.exif_len) ||
                meta_blob_copy(probe, VIPS_META_XMP_NAME, &xmp, &r.xmp_len);
    r.xmp = (char *)xmp;
    if (!mfail && r.type == IMAGE_PNG && !r.exif)
        mfail = png_exif_copy(fd, st.st_size, &r.exif, &r.exif_len);
    if (mfail || (is_heif && !r.xmp && heif_xmp_copy(probe, &r.xmp, &r.xmp_len))) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory reading image metadata");
        goto done;
    }

    /* Shrink-on-load where the codec can do it; otherwise the probe is the pipeline input. */
    const int longest = r.width > r.height ? r.width : r.height;
    int jshrink = 1;
    double wscale = 1.0;
    if (r.type == IMAGE_JPEG)
        jshrink = jpeg_shrink_for(longest);
    else if (r.type == IMAGE_WEBP && longest > IMAGE_PREVIEW_MAX)
        wscale = (double)IMAGE_PREVIEW_MAX / longest;
    if (jshrink > 1 || wscale < 1.0) {
        VIPS_UNREF(probe);
        if (!(in = load_typed(src, r.type, jshrink, wscale))) {
            rc = undecodable(e);
            goto done;
        }
    } else {
        in = probe;
        probe = NULL;
    }

    /* Colour: with a usable embedded profile, transform to sRGB (with a fallback for one lcms
     * cannot parse); otherwise vips_colourspace handles CMYK, grey, 16-bit and Lab. */
    const char *fallback = NULL;
    if (r.has_icc && icc_describes(in))
        fallback = vips_image_get_interpretation(in) == VIPS_INTERPRETATION_CMYK ? "cmyk" : "srgb";
    int tr;
    if (fallback)
        tr = vips_thumbnail_image(in, &sized, IMAGE_PREVIEW_MAX, "height", IMAGE_PREVIEW_MAX,
                                  "size", VIPS_SIZE_DOWN, "no_rotate", is_heif, "import_profile",
                                  fallback, "export_profile", "srgb", NULL);
    else
        tr = vips_thumbnail_image(in, &sized, IMAGE_PREVIEW_MAX, "height", IMAGE_PREVIEW_MAX,
                                  "size", VIPS_SIZE_DOWN, "no_rotate", is_heif, NULL);
    if (tr) {
        rc = undecodable(e);
        goto done;
    }

    VipsImage *cur = sized;
    if (vips_image_hasalpha(cur)) {
        double white = vips_image_get_format(cur) == VIPS_FORMAT_USHORT ? 65535.0 : 255.0;
        VipsArrayDouble *bg = vips_array_double_newv(1, white);
        int fr = vips_flatten(cur, &flat, "background", bg, "max_alpha", white, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (fr) {
            rc = undecodable(e);
            goto done;
        }
        cur = flat;
    }
    /* Grey (1 band) becomes 3 equal bands here; anything left over 3 bands is dropped. */
    if (vips_colourspace(cur, &rgb, VIPS_INTERPRETATION_sRGB, NULL)) {
        rc = undecodable(e);
        goto done;
    }
    cur = rgb;
    VipsImage *t3 = NULL;
    if (vips_image_get_bands(cur) > 3) {
        if (vips_extract_band(cur, &t3, 0, "n", 3, NULL)) {
            rc = undecodable(e);
            goto done;
        }
        g_object_unref(rgb);
        rgb = cur = t3;
    }
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(cur, &t3, NULL)) {
            rc = undecodable(e);
            goto done;
        }
        g_object_unref(rgb);
        rgb = cur = t3;
    }
    if (vips_image_get_bands(cur) != 3) {
        rc = undecodable(e);
        goto done;
    }

    /* The one render: every decode error (truncation, corrupt entropy data) surfaces here. */
    size_t psize = 0;
    if (!(pixels = vips_image_write_to_memory(cur, &psize))) {
        rc = undecodable(e);
        goto done;
    }
    r.preview_w = vips_image_get_width(cur);
    r.preview_h = vips_image_get_height(cur);
    if (psize != (size_t)r.preview_w * (size_t)r.preview_h * 3) {
        rc = undecodable(e);
        goto done;
    }
    VIPS_UNREF(rgb);
    VIPS_UNREF(flat);
    VIPS_UNREF(sized);
    VIPS_UNREF(in);

    /* A fresh image over bare pixels: no field of the upload can reach a derivative. */
    VipsImage *bare =
        vips_image_new_from_memory(pixels, psize, r.preview_w, r.preview_h, 3, VIPS_FORMAT_UCHAR);
    if (!bare || vips_copy(bare, &prev, "interpretation", VIPS_INTERPRETATION_sRGB, NULL)) {
        VIPS_UNREF(bare);
        image_log_vips_error("preview_failed");
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory building the preview");
        goto done;
    }
    g_object_unref(bare);

    if ((rc = save_jpeg(prev, &r.preview, &r.preview_len, e)) != EX_OK) goto done;
    /* One lanczos3 reduce from the in-memory preview: vips_thumbnail_image would run a box
     * shrink first and cost ~7x more here for the same size and a mean difference <= 1.2/255
     * (measured over the corpus with tools/bench_intake). Each side stays >= 1 px. */
    const double tf =
        (double)(r.preview_w > r.preview_h ? r.preview_w : r.preview_h) / IMAGE_THUMB_MAX;
    const double hs = tf < r.preview_w ? tf : r.preview_w;
    const double vs = tf < r.preview_h ? tf : r.preview_h;
    if (tf > 1.0 ? vips_reduce(prev, &thumb, hs, vs, "kernel", VIPS_KERNEL_LANCZOS3, NULL)
                 : vips_copy(prev, &thumb, NULL)) {
        image_log_vips_error("thumb_failed");
        rc = ex_fail(e, EX_EINTERNAL, "image_encode_failed",
                     "could not resize the thumbnail; this is a server fault");
        goto done;
    }
    r.thumb_w = vips_image_get_width(thumb);
    r.thumb_h = vips_image_get_height(thumb);
    if ((rc = save_jpeg(thumb, &r.thumb, &r.thumb_len, e)) != EX_OK) goto done;

    r.luma_w = r.preview_w;
    r.luma_h = r.preview_h;
    const size_t npx = (size_t)r.luma_w * (size_t)r.luma_h;
    if (!(r.luma = malloc(npx * sizeof *r.luma))) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory computing luminance");
        goto done;
    }
    const uint8_t *px = pixels;
    for (size_t i = 0; i < npx; i++, px += 3)
        r.luma[i] = 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2];

    *out = r;
    memset(&r, 0, sizeof r);

done:
    VIPS_UNREF(thumb);
    VIPS_UNREF(prev);
    VIPS_UNREF(rgb);
    VIPS_UNREF(flat);
    VIPS_UNREF(sized);
    VIPS_UNREF(in);
    VIPS_UNREF(probe);
    VIPS_UNREF(src);
    g_free(pixels);
    image_result_release(&r);
    close(fd);
    /* Per-request hygiene for a long-lived server: drop this thread's libvips buffers and any
     * error text nobody collected, so neither accumulates across requests. */
    vips_error_clear();
    vips_thread_shutdown();
    return rc;
}

void image_result_release(image_result *r)
{
    if (!r) return;
    free(r->thumb);
    free(r->preview);
    free(r->exif);
    free(r->xmp);
    free(r->luma);
    memset(r, 0, sizeof *r);
}
