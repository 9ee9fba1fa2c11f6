/* analyze.h - what an uploaded image is: decode, metadata, derivatives (intake's image step).
 *
 * analyze_file runs image_process (safe decode, limits, derivatives) and exif_read/xmp scan on
 * a staged upload and describes the result as JSON (`meta`), which is stored once per blob.
 * Nothing is written to disk until analysis_store, which intake calls only once every file of
 * the request has been accepted, so a refused request leaves no derivative behind. Flags that
 * depend on the image alone are decided here; analyze_case_flags adds the ones that depend on the
 * case (capture time vs delivery).
 *
 * meta layout: {"exif": {make, model, datetime_original, offset_time_original, orientation,
 * software, gps: {lat, lon} | null}, "exif_all": {IFD: {tag: value}}, "xmp": {present,
 * creator_tool, history_agents, has_gps, packet}, "has_iptc", "has_icc", "editor": name|null,
 * "flags": [...], "hashes": {pdq, pdq_quality, phash64}}.
 */
#ifndef EXHIBIT_ANALYZE_H
#define EXHIBIT_ANALYZE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "exhibit/app.h"
#include "exhibit/image.h"
#include "exhibit/reuse.h"

typedef struct analysis {
    image_type type;
    int width, height;
    char thumb_sha[65], preview_sha[65];
    json_t *meta; /* owned */
    float *luma;  /* upright preview luminance for perceptual hashing (owned) */
    int luma_w, luma_h;
    reuse_sig *sig;           /* reuse-detection signature of the upright pixels (owned) */
    uint8_t *thumb, *preview; /* the derivative JPEGs, not yet stored (owned) */
    size_t thumb_len, preview_len;
} analysis;

/* EX_EMEDIA / EX_EREFUSED (image_undecodable, image_too_large) / EX_EIO as image_process;
 * EX_EBUSY "overloaded" when every decode slot stayed busy for the wait limit. */
ex_rc analyze_file(app *a, const char *path, analysis *out, ex_error *e) EX_MUST_CHECK;
/* {"pdq": 64 hex (PDQ reference format), "pdq_quality": 0..100, "phash64": 16 hex}. */
json_t *analyze_hashes_json(const phash_pdq *pdq, const reuse_sig *sig);

/* Stores the two derivatives in the blob store (content-addressed, atomic). */
ex_rc analysis_store(app *a, const analysis *an, ex_error *e) EX_MUST_CHECK;
void analysis_release(analysis *an);

/* Flags for this image on a case delivered at `delivered` (JSON array, new reference):
 * the image's own flags plus taken_before_delivery. */
json_t *analyze_case_flags(const json_t *meta, time_t delivered);

/* Hides location for roles that may not see it: removes exif.gps, the GPS IFD from exif_all
 * and the raw XMP packet. Modifies meta in place. */
void analyze_redact_location(json_t *meta);

#endif
