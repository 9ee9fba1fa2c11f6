/* cases.h - return cases: the opening rules, storage and the JSON view.
 *
 * Rules (cases_check): reason decides who pays return shipping (seller for damaged,
 * not_as_described, wrong_item, missing_parts; buyer for changed_mind); categories in the
 * configured non-returnable list are refused (422 not_returnable); a case opened more than the
 * return window after delivery is refused (422 return_window_closed; exactly at the window's
 * end is still open).
 *
 * Visibility: a buyer key sees only cases whose buyer_id is its subject; for everyone else a
 * case is visible to every role that reaches the endpoint. An invisible case is reported
 * exactly like a missing one (404 case_not_found) so ids cannot be probed.
 */
#ifndef EXHIBIT_CASES_H
#define EXHIBIT_CASES_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "exhibit/app.h"
#include "exhibit/keys.h"

typedef struct case_ref {
    int64_t rowid;
    char case_id[40];
    char buyer_id[KEY_SUBJECT_MAX];
    time_t delivered_at;
    char status[16];
} case_ref;

/* Validates a POST /v1/cases body and computes the derived fields. On success *out is a new
 * object holding the normalised case (without case_id). EX_EINVAL (invalid_json-level codes:
 * missing_field, invalid_field) or EX_EREFUSED (not_returnable, return_window_closed). */
ex_rc cases_check(const ex_config *cfg, const json_t *body, time_t now, json_t **out,
                  ex_error *e) EX_MUST_CHECK;

/* Validates and stores a case, auditing "case.opened". *out is the case JSON (201 body). */
ex_rc cases_create(app *a, const json_t *body, const key_info *actor, json_t **out,
                   ex_error *e) EX_MUST_CHECK;

/* Resolves a case id the viewer may see. EX_ENOTFOUND "case_not_found" otherwise. */
ex_rc cases_lookup(app *a, const char *case_id, const key_info *viewer, case_ref *out,
                   ex_error *e) EX_MUST_CHECK;

/* The case as JSON with its evidence (as this viewer may see it) and inspections. */
ex_rc cases_to_json(app *a, const case_ref *c, const key_info *viewer, json_t **out,
                    ex_error *e) EX_MUST_CHECK;

/* Cases with this order id that the viewer may see, newest first (at most 50):
 * {"cases": [{case_id, order_id, buyer_id, seller_id, reason, category, status, opened_at,
 * delivered_at}]}. */
ex_rc cases_find_by_order(app *a, const char *order_id, const key_info *viewer, json_t **out,
                          ex_error *e) EX_MUST_CHECK;

/* Records the mediator's decision on a case and closes it (status "decided"), auditing
 * "case.decided". body: {"outcome": refund_full | refund_partial | reject | return_to_buyer,
 * "amount": number >= 0 (required for refund_partial), "rationale": non-empty string}.
 * EX_EINVAL missing_field / invalid_field; EX_ECONFLICT "already_decided". *out: the decision. */
ex_rc cases_decide(app *a, const case_ref *c, const json_t *body, const key_info *actor,
                   json_t **out, ex_error *e) EX_MUST_CHECK;

/* Actor label for the audit trail: "role:key_id". */
void cases_actor(const key_info *k, char *out, size_t cap);

#endif
