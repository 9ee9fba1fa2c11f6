/* phash.h - perceptual hashes of luminance images: PDQ (256 bits) and a 64-bit DCT hash.
 *
 * Input everywhere is a row-major w x h array of float luminance, 0..255 (Y = 0.299 R + 0.587 G +
 * 0.114 B, the weights PDQ uses). This module never decodes images and never sees EXIF: the caller
 * decides orientation and pre-scaling. Every function is thread-safe and reentrant; none keeps
 * state between calls except constant tables built once. The caller's luma is never modified.
 *
 * PDQ here is a port of Meta's reference hasher (ThreatExchange pdq/cpp): for the same float luma
 * it computes the same bits (all 35 reference vectors bit-exact when decoded by our libvips).
 * Cost and scratch grow with w*h (two w*h float buffers; ~0.4 ms at 320x320, ~1 ms at 512x512),
 * so shrink big images first, and pick the size with care:
 *  - Box-shrink to 320x320 (phash_luma_resize, PHASH_RESIZE_BOX). PDQ commutes exactly with
 *    rotations and mirrors only for sides 64*k with k = 1 (mod 4) (64, 320, 576, 832): there the
 *    box window ceil(side/128) is odd and the 64-point sampling grid symmetric. At 320 the
 *    dihedral variants of an image equal the hashes of its rotated copies; at 512 (Meta's tool)
 *    a 180-degree turn already costs 12-22 bits. Don't upscale smaller images (a 256 px photo
 *    box-upscaled to 320 moved up to 88 bits); hash them as they are.
 *  - PHASH_RESIZE_NEAREST to 512x512 when inputs are larger than 512 px reproduces Meta's
 *    pdq-photo-hasher exactly; use it only to compare with hashes made by that tool.
 */
#ifndef EXHIBIT_PHASH_H
#define EXHIBIT_PHASH_H

#include <stdint.h>

#include "exhibit/err.h"

/* A PDQ hash. Bit k (0..255) is (bits[k / 8] >> (k % 8)) & 1 and stands for DCT coefficient
 * (row k / 16, column k % 16) of the 16x16 low-frequency block; row = vertical frequency. That is
 * the reference's bit numbering, so bits[] is the 256-bit number little-endian and the hex form is
 * the same number big-endian. quality is the reference's 0..100 gradient measure: Meta does not
 * match hashes with quality < 50 (too flat or dark for the bits to mean anything). */
typedef struct phash_pdq {
    uint8_t bits[32];
    int quality;
} phash_pdq;

/* Order of phash_pdq_dihedral's outputs, the reference's order. Each is (up to resampling
 * asymmetry, see above) the hash of the image after that transform: */
enum {
    PHASH_DIH_ORIGINAL,
    PHASH_DIH_ROT90,      /* turned 90 degrees counter-clockwise (EXIF orientation 6 stores this) */
    PHASH_DIH_ROT180,     /* EXIF 3 */
    PHASH_DIH_ROT270,     /* turned 90 degrees clockwise (EXIF 8) */
    PHASH_DIH_FLIPX,      /* upside down, top row last (EXIF 4) */
    PHASH_DIH_FLIPY,      /* left-right mirror (EXIF 2) */
    PHASH_DIH_FLIP_PLUS1, /* transposed about the main diagonal (EXIF 5) */
    PHASH_DIH_FLIP_MINUS1, /* transposed about the anti-diagonal (EXIF 7) */
    PHASH_DIH_COUNT
};

/* PDQ hash of a w x h luma image, any size. As in the reference, an image smaller than 5 px in
 * either direction gets the all-zero hash with quality 0 (rc EX_OK: "unhashable", not an error).
 * Errors: EX_EINVAL (code "phash_bad_size") if luma is NULL or w/h <= 0;
 * EX_EINVAL ("phash_not_finite") if NaN/inf in luma reaches the sampled pixels, or values are so
 * large that the filter overflows; EX_ENOMEM ("phash_no_memory") if the 2*w*h float scratch can't
 * be allocated. */
EX_MUST_CHECK ex_rc phash_pdq_compute(const float *luma, int w, int h, phash_pdq *out, ex_error *e);

/* All 8 dihedral variants (indexed by PHASH_DIH_*) from one DCT, exactly as the reference derives
 * them, so a rotated or mirrored upload can be matched against one stored hash. out[ORIGINAL]
 * equals phash_pdq_compute's result; every out[i].quality is the image's quality. Same errors.
 * (The reference runs its filter on 64x64 input here but not in the single hash; we skip it in
 * both, as it is an identity at that size.) */
EX_MUST_CHECK ex_rc phash_pdq_dihedral(const float *luma, int w, int h,
                                       phash_pdq out[PHASH_DIH_COUNT], ex_error *e);

/* 64 lowercase hex digits plus NUL, the reference's format (bits 255..0). */
void phash_pdq_hex(const phash_pdq *h, char out[65]);

/* Parses exactly 64 hex digits (either case, nothing else) into out->bits and sets quality to -1
 * (unknown). Returns 0, or -1 with out untouched. */
int phash_pdq_from_hex(const char *hex, phash_pdq *out);

/* Hamming distance 0..256 between the bits (quality is ignored). Meta's match threshold is 31. */
int phash_pdq_distance(const phash_pdq *a, const phash_pdq *b);
/* Hamming distance of two raw 256-bit hashes (PDQ bits in any of this module's layouts). */
int phash_bits_distance(const uint8_t a[32], const uint8_t b[32]);

/* 64-bit DCT hash, the classic pHash: luma box-resized to 32x32, 2-D DCT-II, the 8x8 block of
 * coefficients (1..8)x(1..8) (DC row and column left out), bit (u-1)*8 + (v-1) set when
 * coefficient (u, v) (u = vertical frequency) is above the median of the 64. Any size >= 1x1.
 * Errors: EX_EINVAL "phash_bad_size" / "phash_not_finite", EX_ENOMEM "phash_no_memory". */
EX_MUST_CHECK ex_rc phash_dct64_compute(const float *luma, int w, int h, uint64_t *out,
                                        ex_error *e);

/* 16 lowercase hex digits plus NUL, most significant first. */
void phash_dct64_hex(uint64_t h, char out[17]);

/* Parses exactly 16 hex digits. Returns 0, or -1 with *out untouched. */
int phash_dct64_from_hex(const char *hex, uint64_t *out);

/* Hamming distance 0..64. */
int phash_dct64_distance(uint64_t a, uint64_t b);

typedef enum {
    /* Area average: each output pixel is the mean of the input area it covers (fractional edges
     * weighted). Anti-aliased, and commutes with flips and rotations; use before PDQ. */
    PHASH_RESIZE_BOX,
    /* Output (x, y) takes input (floor(x*w/ow), floor(y*h/oh)), like CImg's resize() which the
     * reference pdq-photo-hasher applies to inputs over 512 px. Aliases; for compatibility only. */
    PHASH_RESIZE_NEAREST,
} phash_resize_kind;

/* Resizes luma (w x h) into the caller's out (ow x oh floats), aspect ratio not kept. Up- and
 * down-scaling both work. Errors: EX_EINVAL "phash_bad_size" (NULL buffers or any size <= 0),
 * EX_EINVAL "phash_bad_resize" (unknown kind), EX_ENOMEM "phash_no_memory" (box scratch is about
 * oh*w floats). */
EX_MUST_CHECK ex_rc phash_luma_resize(const float *luma, int w, int h, float *out, int ow, int oh,
                                      phash_resize_kind kind, ex_error *e);

#endif
