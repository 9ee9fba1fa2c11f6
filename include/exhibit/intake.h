/* intake.h - one upload request, from streamed bytes to stored, linked evidence.
 *
 * Life cycle (one per request, owned by the HTTP layer):
 *   intake_new -> { intake_file_begin, intake_file_data..., intake_file_end }... ->
 *   intake_commit -> intake_free.
 * Files stream to temp files under DIR/tmp while being hashed; nothing is visible until
 * intake_commit, which checks every file (allowed image type), moves the blobs to their content
 * addresses and links them to the case in one database transaction with its audit rows. The
 * request is all-or-nothing: if any file is refused, none is linked. Decoding and hashing run
 * in parallel; the reuse search, that transaction (with the item's exact and near matches) and
 * the index insertion run one upload at a time, so of two concurrent copies of one picture the
 * later always finds the earlier (intake.c, reuse_lock). intake_free on an
 * uncommitted upload removes its temp files (client gone, body cut off, bad input).
 */
#ifndef EXHIBIT_INTAKE_H
#define EXHIBIT_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "exhibit/app.h"
#include "exhibit/cases.h"
#include "exhibit/keys.h"

typedef struct intake intake;

intake *intake_new(app *a, const key_info *who, const case_ref *c); /* NULL on ENOMEM */
/* Turns the upload into a warehouse inspection: the text fields `grade` (required, one of
 * as_new, opened, used, damaged, wrong_item, missing_parts, not_received) and `notes` are
 * recorded as an inspection in the same transaction, its files linked to it; zero files is
 * allowed (nothing may have arrived). */
void intake_set_inspection(intake *u);
void intake_free(intake *u);

/* declared_type is the part's/request's Content-Type (informational; the bytes decide). */
ex_rc intake_file_begin(intake *u, const char *declared_type, ex_error *e) EX_MUST_CHECK;
ex_rc intake_file_data(intake *u, const void *data, size_t len, ex_error *e) EX_MUST_CHECK;
ex_rc intake_file_end(intake *u, ex_error *e) EX_MUST_CHECK;
/* Text fields; EX_EINVAL when too long or malformed (captured_at must be RFC 3339). */
ex_rc intake_set_field(intake *u, const char *name, const char *value, ex_error *e) EX_MUST_CHECK;
/* Number of files received so far. */
size_t intake_file_count(const intake *u);
/* Total bytes received in files. */
uint64_t intake_bytes(const intake *u);

/* Stores everything. *items is a JSON array of the items (new or already on the case);
 * *created is 1 when at least one new item (or an inspection) was recorded. For an
 * inspection, *inspection (when non-NULL) receives its JSON. EX_EINVAL "no_file" when no file
 * was sent (uploads only), missing_field/invalid_field for a bad grade, EX_EMEDIA
 * "unsupported_media_type" naming the file, or an image refusal. */
ex_rc intake_commit(intake *u, json_t **items, int *created, json_t **inspection,
                    ex_error *e) EX_MUST_CHECK;

#endif
