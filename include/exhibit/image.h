/* image.h - safe decoding of untrusted uploads and their derivatives (libvips adapter).
 *
 * Only JPEG, PNG, WebP, HEIC and AVIF are accepted, decided by magic bytes, never by name or
 * by libvips' own format detection. A file is probed on its header first; anything over the
 * limits is refused before a single pixel is decoded. Decoding is strict: a truncated or
 * corrupt image is refused rather than grey-filled. Derivatives are JPEG, upright, sRGB,
 * alpha flattened onto white, and carry no metadata at all (no EXIF/GPS, XMP, IPTC or ICC).
 *
 * Nothing outside src/image.c sees libvips: callers get plain buffers in an image_result.
 * image_process() is thread-safe once image_global_init() has returned.
 */
#ifndef EXHIBIT_IMAGE_H
#define EXHIBIT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

typedef enum {
    IMAGE_UNKNOWN = 0,
    IMAGE_JPEG,
    IMAGE_PNG,
    IMAGE_WEBP,
    IMAGE_HEIC,
    IMAGE_AVIF,
} image_type;

/* Bytes image_sniff() wants to see: enough for the ISO-BMFF ftyp brands of HEIC/AVIF. */
#define IMAGE_SNIFF_BYTES 64

/* Classifies a file by its first n bytes (pass IMAGE_SNIFF_BYTES, or the whole file when it is
 * shorter). Returns IMAGE_UNKNOWN for anything outside the allow-list, including GIF, TIFF,
 * SVG, PDF, PPM, a HEIF container holding neither HEVC nor AV1, and n too small to tell.
 * head may be NULL when n is 0. Pure function. */
image_type image_sniff(const uint8_t *head, size_t n);

/* "image/jpeg", "image/png", "image/webp", "image/heic", "image/avif"; for IMAGE_UNKNOWN
 * (or any other value) "application/octet-stream". Static strings, never NULL. */
const char *image_media_type(image_type t);

/* Process-wide set-up, once, from main() before any thread calls image_process(): starts
 * libvips, blocks the loaders it marks untrusted and every other loader except JPEG, PNG,
 * WebP and HEIF (so vips_image_new_from_* anywhere in the process can no longer reach
 * ImageMagick, PDF, SVG, TIFF, GIF...), turns the operation cache off (it would pin decoded
 * uploads in memory) and routes all GLib/libvips log output to stderr as one key=value line
 * each. Not thread-safe; a second call is a no-op.
 * EX_EINTERNAL "vips_init_failed" when libvips cannot start (broken install). */
EX_MUST_CHECK ex_rc image_global_init(const char *argv0, ex_error *e);

/* Shuts libvips down at process exit, after every image_process() has returned. libvips
 * cannot be started again afterwards. */
void image_global_shutdown(void);

typedef struct image_limits {
    uint64_t max_bytes; /* file size */
    int max_width;      /* stored width and height, before any rotation */
    int max_height;
    uint64_t max_pixels; /* width * height */
    /* Pixel budget for images the decoder must hold whole in memory at full size however much
     * we shrink: progressive JPEG (libjpeg keeps every coefficient), interlaced PNG, HEIC and
     * AVIF. Baseline JPEG and plain PNG stream, and libwebp decodes straight to the reduced
     * size, so only max_pixels applies to them. */
    uint64_t max_pixels_buffered;
} image_limits;

/* Defaults: 100 MiB, 32768 px a side, 220 MP (a 200 MP phone JPEG, 16320x12240, fits; a PNG
 * claiming 20000x20000 does not), 64 MP for buffered decodes (48-50 MP HEIC/HEIF from phones
 * fit; measured: a 48.8 MP progressive JPEG peaks at 191 MB RSS, the baseline one at 58 MB). */
void image_limits_default(image_limits *l);

/* Long side of the derivatives. */
#define IMAGE_THUMB_MAX 256
#define IMAGE_PREVIEW_MAX 1600

typedef struct image_result {
    image_type type;
    int width, height; /* as stored (before rotation) */
    int orientation;   /* EXIF orientation that was applied: 1..8, 1 when none and for HEIF
                          (libheif has already rotated the pixels; its EXIF blob may still
                          say otherwise and must not be applied again) */
    uint8_t *thumb;    /* JPEG, <= 256 px long side, upright, sRGB, no metadata */
    size_t thumb_len;
    int thumb_w, thumb_h;
    uint8_t *preview; /* JPEG, <= 1600 px long side, never upscaled, same rules */
    size_t preview_len;
    int preview_w, preview_h;
    uint8_t *exif; /* raw "exif-data" blob as libvips gives it (may lack the Exif\0\0 header),
                      or NULL */
    size_t exif_len;
    char *xmp; /* raw XMP packet, NUL-terminated (xmp_len excludes the NUL), or NULL; for
                  HEIC/AVIF taken from the XMP metadata item. Not seen by libvips 8.14: PNG XMP
                  stored after the image data */
    size_t xmp_len;
    int has_iptc; /* IPTC-IIM records are present (a Photoshop APP13 block holding only other
                     resources does not count); IPTC in PNG text chunks is not seen */
    char software_text[128]; /* PNG text chunk "Software" ("" if none): editors write there
                                instead of EXIF */
    int has_icc;             /* an embedded ICC profile, even a broken or mismatched one */
    float *luma; /* upright luminance 0..255, Y = .299R + .587G + .114B, of the preview pixels
                    (before JPEG encoding), row-major luma_w x luma_h == preview_w x preview_h */
    int luma_w, luma_h;
} image_result;

/* Decodes the upload staged at path and fills out (outputs written only on success; on
 * failure *out is left untouched). lim may be NULL for the defaults. Every buffer in out is
 * malloc'd and owned by out: free them with image_result_release(), or take one by copying
 * the pointer, setting the field to NULL and calling free() on it later.
 * Errors:
 *   EX_EMEDIA   "unsupported_media_type"  magic bytes not on the allow-list (also an empty file)
 *   EX_EREFUSED "image_too_large"         over a limit: file size, width, height, pixels, or
 *                                         the buffered-decode budget; checked on the header
 *                                         before any pixel is decoded
 *   EX_EREFUSED "image_undecodable"       libvips cannot decode all of it: truncated, corrupt,
 *                                         a header it rejects, an unsupported HEIF variant
 *   EX_EIO      "image_unreadable"        path cannot be opened or read, or is not a file
 *   EX_ENOMEM   "out_of_memory"           an allocation failed
 *   EX_EINTERNAL "image_encode_failed"    libvips failed to encode a derivative (our bug)
 *   EX_EINVAL   "bad_request"             path or out is NULL
 * Thread-safe; frees libvips' per-thread buffers before returning. */
EX_MUST_CHECK ex_rc image_process(const char *path, const image_limits *lim, image_result *out,
                                  ex_error *e);

/* Frees every buffer in r and zeroes it. Safe on a zeroed or already released result. */
void image_result_release(image_result *r);

#endif
