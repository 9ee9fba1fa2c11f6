/* neardup.h - reused-image detection: a signature per image, index keys, and the decision.
 *
 * Plain PDQ matches re-encodes, resizes and (with its 8 dihedral variants) rotations and
 * mirrors, but almost none of the edits used to pass a photo off as new: crops, frames, phone
 * screenshots, text bands, watermarks, small tilts. A signature therefore keeps, besides the
 * whole-image PDQ and 64-bit DCT hash shown by the API:
 *   - the content rectangle: the image with uniform borders and canvases, and thin bands along
 *     an edge (a status bar, a caption band), trimmed away;
 *   - PDQ hashes ("keys") of fixed regions of the content (whole, centre 95/90/80%, each side
 *     cut by 10% and by 15%, each 40% strip), of the untrimmed image when trimming changed it,
 *     and of the image turned back by +-3 and +-8 degrees; each region is shrunk to 64x64 (where
 *     PDQ's dihedral variants are exact) after stretching its contrast;
 *   - for queries only, the other 7 dihedral variants of the whole-content and whole-image keys;
 *   - two 64x64 thumbnails (content and whole image) for the second stage.
 * Stage 1, candidates: any query key of the new image within ND_INDEX_RADIUS of any index key
 * of a stored one (what hindex answers). Stage 2, nd_match: the closest key pairs say how the
 * two pictures line up (region, tilt, rotation or mirror); the thumbnails are aligned that way,
 * refined over +-4% scale and +-3 cells of shift, and their edge detail (a light blur minus a
 * heavy one) must agree, over the whole picture and on most of a 4x4 grid of blocks. Unrelated
 * photos with similar layouts share the coarse hashes now and then, not the detail.
 * Near-flat images (smooth gradients, nearly black frames) get no keys and never match.
 *
 * Signatures are immutable after nd_sig_compute/nd_sig_parse; every function here is
 * thread-safe and reentrant on them.
 */
#ifndef EXHIBIT_NEARDUP_H
#define EXHIBIT_NEARDUP_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"
#include "exhibit/phash.h"

/* Radius for hindex queries with nd_sig_index_keys(..., 1, ...): 31, the largest radius at
 * which hindex is exact. */
#define ND_INDEX_RADIUS 31

/* Most keys nd_sig_index_keys returns (for a query; an image has at most 28 index keys). */
#define ND_MAX_KEYS 64

/* Largest serialized signature (actual sizes are 4-10 KB). */
#define ND_SIG_MAX_BYTES 12288

typedef struct nd_sig nd_sig;

/* Computes the signature of an upright luma image (row-major w x h floats, 0..255: the
 * `luma` of image_process). The caller keeps luma. *out is set on success only; free it with
 * nd_sig_free. Costs 5-8 ms for a 1600 px preview (most of it shrinking the luma).
 * Errors: EX_EINVAL "nd_bad_image" (NULL luma, w or h <= 0, more than 2^28 pixels),
 * EX_EINVAL "nd_not_finite" (NaN, infinity or values beyond +-65536 in luma),
 * EX_ENOMEM "nd_no_memory". */
EX_MUST_CHECK ex_rc nd_sig_compute(const float *luma, int w, int h, nd_sig **out, ex_error *e);

/* Frees a signature; NULL is a no-op. */
void nd_sig_free(nd_sig *s);

/* A compact, versioned byte string for the database (at most ND_SIG_MAX_BYTES). *buf is
 * malloc'd (the caller frees it) and set with *len on success only.
 * Errors: EX_EINVAL "nd_bad_args", EX_ENOMEM "nd_no_memory". */
EX_MUST_CHECK ex_rc nd_sig_serialize(const nd_sig *s, uint8_t **buf, size_t *len, ex_error *e);

/* Reads what nd_sig_serialize wrote; the result matches exactly as the original would. Every
 * field is checked, so truncated, padded, corrupt or foreign bytes are refused:
 * EX_EINVAL "nd_sig_corrupt" (or "nd_bad_args" for NULL arguments), EX_ENOMEM "nd_no_memory". */
EX_MUST_CHECK ex_rc nd_sig_parse(const uint8_t *buf, size_t len, nd_sig **out, ex_error *e);

/* The API's hashes of the whole upright image. PDQ (with its 0..100 quality) is Meta's, on the
 * image box-shrunk to at most 320x320 as phash.h recommends, so its hex form can be exchanged
 * with other PDQ systems. */
void nd_sig_pdq(const nd_sig *s, phash_pdq *pdq);
uint64_t nd_sig_phash64(const nd_sig *s);

/* 1 when the image is too flat to match anything (it then has no keys), else 0. */
int nd_sig_flat(const nd_sig *s);

/* Copies up to max keys (256-bit hashes for hindex) into keys and returns how many it wrote
 * (0 for a near-flat image). for_query = 0: the keys to add to the index under this image's
 * id (at most 28, ~21 on real photos). for_query = 1: the keys to look up, each with
 * hindex_query at ND_INDEX_RADIUS (the index keys plus up to 14 dihedral variants, at most
 * ND_MAX_KEYS). Several keys may hit the same id: call nd_match once per id. */
size_t nd_sig_index_keys(const nd_sig *s, int for_query, uint8_t (*keys)[32], size_t max);

/* The decision on a candidate pair. Returns 1 when candidate shows the same picture as query
 * (a copy, crop, frame, screenshot, overlay, rotation...), else 0. On 1, *distance (when
 * non-NULL) is 0..256 on PDQ's scale, smaller = closer, 0 only when the two signatures are
 * identical; *why (when non-NULL) is a short static English reason. On 0 they are set to 256
 * and a static reason too. Tries both directions, so the answer does not depend on which
 * image came first. Cost: about 0.5 ms when a candidate is verified, ~15 us otherwise. */
int nd_match(const nd_sig *query, const nd_sig *candidate, int *distance, const char **why);

/* For evaluation: how close the pair came to each stage, whatever the decision.
 * key_distance: the closest query key to an index key, either direction (0..256; candidates
 * need <= ND_INDEX_RADIUS); score: the best edge-detail agreement (-1..1, nd_match accepts
 * >= 0.75) over the closest key pairs even beyond the radius. Near-flat: 256 and -1. Costs
 * about a millisecond. */
typedef struct nd_explain {
    int key_distance;
    double score;
} nd_explain;
void nd_explain_pair(const nd_sig *query, const nd_sig *candidate, nd_explain *out);

#endif
