/* evidence.h - evidence items (a case's link to a stored blob) as the API shows them.
 *
 * Visibility follows the item's case (cases.h). GPS and other location data are shown only to
 * mediator and admin keys; reuse (matches to other cases and their flags) only to platform
 * staff (evidence_may_see_reuse); `full` adds the complete recorded metadata (exif_all).
 */
#ifndef EXHIBIT_EVIDENCE_H
#define EXHIBIT_EVIDENCE_H

#include <stdint.h>

#include <jansson.h>

#include "exhibit/app.h"
#include "exhibit/keys.h"

typedef struct evidence_ref {
    int64_t rowid;
    int64_t case_rowid;
    char evidence_id[40];
    char sha256[65];
    char media_type[32];
    int64_t bytes;
    char thumb_sha256[65]; /* "" when the item has no derivatives */
    char preview_sha256[65];
} evidence_ref;

/* Resolves an evidence id the viewer may see; EX_ENOTFOUND "evidence_not_found" otherwise. */
ex_rc evidence_lookup(app *a, const char *evidence_id, const key_info *viewer, evidence_ref *out,
                      ex_error *e) EX_MUST_CHECK;

/* One item as JSON. Caller holds no lock. */
ex_rc evidence_item_json(app *a, int64_t rowid, const key_info *viewer, int full, json_t **out,
                         ex_error *e) EX_MUST_CHECK;

/* Every item of a case, oldest first. */
ex_rc evidence_list_json(app *a, int64_t case_rowid, const key_info *viewer, json_t **out,
                         ex_error *e) EX_MUST_CHECK;

/* Every match of an item in other cases, from both sides, closest first, at most limit:
 * {"evidence_id", "matches": [{evidence_id, case_id, kind, distance, source, thumb}]}. */
ex_rc evidence_similar_json(app *a, const evidence_ref *ev, int limit, json_t **out,
                            ex_error *e) EX_MUST_CHECK;

/* 1 when this role may see locations (mediator, admin). */
int evidence_may_see_location(const key_info *viewer);

/* 1 when this role may learn that an item's image is evidence in another case (`matches`,
 * `matched_by`, the reuse flags, /similar): mediator, admin, platform, warehouse. Never a
 * party to a case (buyer). */
int evidence_may_see_reuse(const key_info *viewer);

#endif
