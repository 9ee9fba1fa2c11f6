/* reuse.h - the reused-image signature and decision: a PDQ tier and a local-feature tier.
 *
 * A signature holds the whole-image PDQ (Meta's, exchanged with other systems: shown by the
 * API, in the reference's format) and 64-bit DCT hash, and the image's local features
 * (features.h). Two images are the same picture when either tier says so:
 *   - features: ft_verify finds one transform that enough features agree on, covering the
 *     overlap (any crop, tilt, frame, screenshot, overlay, perspective, mirror);
 *   - PDQ: the whole-image hashes (best of the 8 dihedral variants) are within 31 bits, both
 *     of PDQ quality >= 50, and the features either have too little to say (a smooth product
 *     on white, a plain wall) or do not contradict (a few agree). This keeps re-encodes and
 *     resizes of low-texture photos matching.
 * An image with PDQ quality < 50 and too few features is near-flat: it neither matches nor is
 * matched.
 *
 * Candidates come from two indexes (matcher.h): PDQ keys in hindex (reuse_pdq_keys) and visual
 * words in the word index (reuse_words). Signatures are immutable; everything here is
 * thread-safe. The stored format is versioned (REUSE_SIG_VERSION): a stored signature of
 * another version fails to parse and `exhibit reindex` recomputes it from the original.
 */
#ifndef EXHIBIT_REUSE_H
#define EXHIBIT_REUSE_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"
#include "exhibit/features.h"
#include "exhibit/phash.h"

#define REUSE_SIG_VERSION 2 /* 1 was the region-hash grid */
#define REUSE_PDQ_RADIUS 31
#define REUSE_MAX_KEYS 8
#define REUSE_SIG_MAX_BYTES (64 + 10 + 12 * FT_MAX_FEATS) /* serialised, at most */

typedef struct reuse_sig reuse_sig;

/* Signature of an upright luma image (image_process's luma: row-major, 0..255). Errors:
 * EX_EINVAL "reuse_bad_image" (bad size, NaN or out-of-range values), EX_ENOMEM, and those of
 * ft_extract. */
EX_MUST_CHECK ex_rc reuse_sig_compute(const float *luma, int w, int h, reuse_sig **out,
                                      ex_error *e);
void reuse_sig_free(reuse_sig *s);

EX_MUST_CHECK ex_rc reuse_sig_serialize(const reuse_sig *s, uint8_t **buf, size_t *len,
                                        ex_error *e);
/* Refuses truncated, padded, corrupt, foreign or other-version bytes: EX_EINVAL "reuse_sig_old"
 * (another version: reindex) or "reuse_sig_corrupt". */
EX_MUST_CHECK ex_rc reuse_sig_parse(const uint8_t *buf, size_t len, reuse_sig **out, ex_error *e);

void reuse_sig_pdq(const reuse_sig *s, phash_pdq *pdq);
uint64_t reuse_sig_phash64(const reuse_sig *s);
int reuse_sig_flat(const reuse_sig *s);
const ft_set *reuse_sig_features(const reuse_sig *s);

/* PDQ keys: for_query = 0, the one key to index (none when quality < 50); 1, its 8 dihedral
 * variants to look up at REUSE_PDQ_RADIUS. Returns the count written (<= max). */
size_t reuse_pdq_keys(const reuse_sig *s, int for_query, uint8_t (*keys)[32], size_t max);

/* The visual words to index or look up (at most FT_MAX_FEATS; for a query also the mirrored
 * image's words, so up to 2 * FT_MAX_FEATS). Returns the count written (<= max). */
size_t reuse_words(const reuse_sig *s, int for_query, uint32_t *words, size_t max);

typedef struct reuse_result {
    int match;
    const char *tier; /* "pdq" or "features" (static) */
    int distance;     /* PDQ tier: PDQ bits; features: 32 + 224 * (1 - agreement), 32..256 */
    ft_result ft;     /* the feature tier's numbers, whichever tier decided */
} reuse_result;

/* Decides whether candidate shows the same picture as query. */
void reuse_match(const reuse_sig *query, const reuse_sig *candidate, reuse_result *r);

#endif
