/* cases.c - return cases (see cases.h). */
#include "exhibit/cases.h"

#include <stdio.h>
#include <string.h>

#include "exhibit/audit.h"
#include "exhibit/evidence.h"
#include "exhibit/util.h"

static const char *const reasons[][2] = {
    {"damaged", "seller"},       {"not_as_described", "seller"}, {"wrong_item", "seller"},
    {"missing_parts", "seller"}, {"changed_mind", "buyer"},
};

#define ID_MAX 128
#define DESCRIPTION_MAX 4000

void cases_actor(const key_info *k, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%lld", key_role_name(k->role), (long long)k->id);
}

/* A required (or optional) string field with a length limit. */
static ex_rc get_string(const json_t *body, const char *name, int required, size_t max,
                        const char **out, ex_error *e)
{
    const json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        if (required) return ex_fail(e, EX_EINVAL, "missing_field", "field '%s' is required", name);
        *out = NULL;
        return EX_OK;
    }
    if (!json_is_string(v))
        return ex_fail(e, EX_EINVAL, "invalid_field", "field '%s' must be a string", name);
    const char *s = json_string_value(v);
    if (required && !*s)
        return ex_fail(e, EX_EINVAL, "invalid_field", "field '%s' must not be empty", name);
    if (strlen(s) > max)
        return ex_fail(e, EX_EINVAL, "invalid_field", "field '%s' is longer than %zu bytes", name,
                       max);
    *out = s;
    return EX_OK;
}

static ex_rc get_time(const json_t *body, const char *name, int required, time_t *out, int *present,
                      ex_error *e)
{
    const char *s;
    ex_rc rc = get_string(body, name, required, 64, &s, e);
    if (rc) return rc;
    *present = s != NULL;
    if (s && util_time_parse(s, out) != 0)
        return ex_fail(e, EX_EINVAL, "invalid_field",
                       "field '%s' must be an RFC 3339 time like 2026-11-20T10:00:00Z", name);
    return EX_OK;
}

ex_rc cases_check(const ex_config *cfg, const json_t *body, time_t now, json_t **out, ex_error *e)
{
    const char *order_id, *buyer_id, *seller_id, *reason, *category, *description;
    time_t delivered, opened = now;
    int have_delivered, have_opened;
    ex_rc rc;
    if (!json_is_object(body))
        return ex_fail(e, EX_EINVAL, "invalid_json", "the body must be a JSON object");
    if ((rc = get_string(body, "order_id", 1, ID_MAX, &order_id, e)) ||
        (rc = get_string(body, "buyer_id", 1, ID_MAX, &buyer_id, e)) ||
        (rc = get_string(body, "seller_id", 1, ID_MAX, &seller_id, e)) ||
        (rc = get_string(body, "reason", 1, 64, &reason, e)) ||
        (rc = get_string(body, "category", 1, ID_MAX, &category, e)) ||
        (rc = get_string(body, "description", 0, DESCRIPTION_MAX, &description, e)) ||
        (rc = get_time(body, "delivered_at", 1, &delivered, &have_delivered, e)) ||
        (rc = get_time(body, "opened_at", 0, &opened, &have_opened, e)))
        return rc;
    const char *payer = NULL;
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (strcmp(reason, reasons[i][0]) == 0) payer = reasons[i][1];
    if (!payer)
        return ex_fail(e, EX_EINVAL, "invalid_field",
                       "field 'reason' must be one of damaged, not_as_described, wrong_item, "
                       "missing_parts, changed_mind");
    if (opened < delivered)
        return ex_fail(e, EX_EINVAL, "invalid_field",
                       "field 'opened_at' is before 'delivered_at': a return opens after delivery");
    if (config_is_non_returnable(cfg, category))
        return ex_fail(e, EX_EREFUSED, "not_returnable",
                       "items in category '%s' cannot be returned", category);
    time_t window_end = delivered + (time_t)cfg->return_window_days * 86400;
    char t_deliv[UTIL_TIME_LEN], t_open[UTIL_TIME_LEN], t_end[UTIL_TIME_LEN];
    util_time_format(delivered, t_deliv);
    util_time_format(opened, t_open);
    util_time_format(window_end, t_end);
    if (opened > window_end)
        return ex_fail(e, EX_EREFUSED, "return_window_closed",
                       "the %d-day return window ended at %s; the case was opened at %s",
                       cfg->return_window_days, t_end, t_open);
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "order_id",
                          order_id, "buyer_id", buyer_id, "seller_id", seller_id, "reason", reason,
                          "category", category, "description", description ? description : "",
                          "delivered_at", t_deliv, "opened_at", t_open, "status", "open",
                          "return_window_ends_at", t_end, "return_shipping_paid_by", payer);
    if (!c) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    *out = c;
    return EX_OK;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

ex_rc cases_create(app *a, const json_t *body, const key_info *actor, json_t **out, ex_error *e)
{
    json_t *c = NULL;
    char case_id[40], now[UTIL_TIME_LEN], who[64];
    db_stmt *s = NULL;
    ex_rc rc = cases_check(&a->cfg, body, time(NULL), &c, e);
    if (rc) return rc;
    if (util_random_id("case_", 12, case_id, sizeof case_id)) {
        json_decref(c);
        return ex_fail(e, EX_EINTERNAL, "internal_error", "no randomness available");
    }
    util_time_now(now);
    cases_actor(actor, who, sizeof who);
    db_lock(a->db);
    if ((rc = db_begin(a->db, e))) goto out;
    if ((rc = db_prepare(a->db,
                         "INSERT INTO cases(case_id, order_id, buyer_id, seller_id, reason, "
                         "category, description, delivered_at, opened_at, window_ends_at, "
                         "shipping_paid_by, status, created_at) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,'open',?)",
                         &s, e)))
        goto fail;
    db_bind_text(s, 1, case_id);
    static const char *const cols[] = {"order_id",
                                       "buyer_id",
                                       "seller_id",
                                       "reason",
                                       "category",
                                       "description",
                                       "delivered_at",
                                       "opened_at",
                                       "return_window_ends_at",
                                       "return_shipping_paid_by"};
    for (int i = 0; i < 10; i++)
        db_bind_text(s, i + 2, jstr(c, cols[i]));
    db_bind_text(s, 12, now);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) goto fail;
    char *detail = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
    rc = detail ? audit_append(a->db, who, "case.opened", case_id, detail, e)
                : ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    free(detail);
    if (rc) goto fail;
    if ((rc = db_commit(a->db, e))) goto out;
    json_object_set_new(c, "case_id", json_string(case_id));
    json_object_set_new(c, "created_at", json_string(now));
    json_object_set_new(c, "evidence", json_array());
    json_object_set_new(c, "inspections", json_array());
    json_object_set_new(c, "decision", json_null());
    *out = c;
    c = NULL;
    goto out;
fail:
    db_rollback(a->db);
out:
    db_unlock(a->db);
    json_decref(c);
    return rc;
}

ex_rc cases_lookup(app *a, const char *case_id, const key_info *viewer, case_ref *out, ex_error *e)
{
    db_stmt *s = NULL;
    ex_rc rc = EX_OK;
    db_lock(a->db);
    if ((rc = db_prepare(a->db,
                         "SELECT id, case_id, buyer_id, delivered_at, status FROM cases "
                         "WHERE case_id = ?",
                         &s, e)))
        goto out;
    db_bind_text(s, 1, case_id);
    int r = db_step(s, e);
    if (r < 0) {
        rc = EX_EDB;
    } else if (r == DB_DONE ||
               (viewer->role == ROLE_BUYER && strcmp(db_col_text(s, 2), viewer->subject) != 0)) {
        rc = ex_fail(e, EX_ENOTFOUND, "case_not_found", "no case '%.64s' is visible to this key",
                     case_id);
    } else {
        out->rowid = db_col_int(s, 0);
        snprintf(out->case_id, sizeof out->case_id, "%s", db_col_text(s, 1));
        snprintf(out->buyer_id, sizeof out->buyer_id, "%s", db_col_text(s, 2));
        if (util_time_parse(db_col_text(s, 3), &out->delivered_at)) out->delivered_at = 0;
        snprintf(out->status, sizeof out->status, "%s", db_col_text(s, 4));
    }
    db_finalize(s);
out:
    db_unlock(a->db);
    return rc;
}

ex_rc cases_find_by_order(app *a, const char *order_id, const key_info *viewer, json_t **out,
                          ex_error *e)
{
    db_stmt *s = NULL;
    json_t *list = json_array();
    db_lock(a->db);
    ex_rc rc = db_prepare(a->db,
                          "SELECT case_id, order_id, buyer_id, seller_id, reason, category, "
                          "status, opened_at, delivered_at FROM cases WHERE order_id = ?1 "
                          "AND (?2 IS NULL OR buyer_id = ?2) ORDER BY id DESC LIMIT 50",
                          &s, e);
    if (!rc) {
        static const char *const keys[] = {"case_id",   "order_id",  "buyer_id",
                                           "seller_id", "reason",    "category",
                                           "status",    "opened_at", "delivered_at"};
        db_bind_text(s, 1, order_id);
        db_bind_text(s, 2, viewer->role == ROLE_BUYER ? viewer->subject : NULL);
        int r;
        while ((r = db_step(s, e)) == DB_ROW) {
            json_t *c = json_object();
            for (int i = 0; i < 9; i++)
                json_object_set_new(c, keys[i], json_string(db_col_text(s, i)));
            json_array_append_new(list, c);
        }
        if (r < 0) rc = EX_EDB;
    }
    db_finalize(s);
    db_unlock(a->db);
    if (rc) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:o}", "cases", list);
    return EX_OK;
}

static const char *const outcomes[] = {"refund_full", "refund_partial", "reject",
                                       "return_to_buyer"};

ex_rc cases_decide(app *a, const case_ref *c, const json_t *body, const key_info *actor,
                   json_t **out, ex_error *e)
{
    const char *outcome, *rationale;
    char now[UTIL_TIME_LEN], who[64];
    ex_rc rc;
    if (!json_is_object(body))
        return ex_fail(e, EX_EINVAL, "invalid_json", "the body must be a JSON object");
    if ((rc = get_string(body, "outcome", 1, 32, &outcome, e)) ||
        (rc = get_string(body, "rationale", 1, DESCRIPTION_MAX, &rationale, e)))
        return rc;
    int known = 0;
    for (size_t i = 0; i < sizeof outcomes / sizeof *outcomes; i++)
        known |= strcmp(outcome, outcomes[i]) == 0;
    if (!known)
        return ex_fail(e, EX_EINVAL, "invalid_field",
                       "field 'outcome' must be one of refund_full, refund_partial, reject, "
                       "return_to_buyer");
    const json_t *amount = json_object_get(body, "amount");
    if (amount && !json_is_null(amount) &&
        (!json_is_number(amount) || json_number_value(amount) < 0))
        return ex_fail(e, EX_EINVAL, "invalid_field", "field 'amount' must be a number >= 0");
    if (amount && json_is_null(amount)) amount = NULL;
    if (!amount && strcmp(outcome, "refund_partial") == 0)
        return ex_fail(e, EX_EINVAL, "missing_field",
                       "field 'amount' is required for a partial refund");
    util_time_now(now);
    cases_actor(actor, who, sizeof who);
    json_t *d = json_pack("{s:s, s:o, s:s, s:s, s:s}", "outcome", outcome, "amount",
                          amount ? json_real(json_number_value(amount)) : json_null(), "rationale",
                          rationale, "decided_at", now, "decided_by", who);
    if (!d) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    db_stmt *s = NULL;
    db_lock(a->db);
    if ((rc = db_begin(a->db, e))) goto out;
    if ((rc = db_prepare(a->db,
                         "INSERT INTO decisions(case_ref, outcome, amount, rationale, key_ref, "
                         "decided_at) VALUES (?,?,?,?,?,?)",
                         &s, e)))
        goto fail;
    db_bind_int(s, 1, c->rowid);
    db_bind_text(s, 2, outcome);
    if (amount)
        db_bind_double(s, 3, json_number_value(amount));
    else
        db_bind_text(s, 3, NULL);
    db_bind_text(s, 4, rationale);
    db_bind_int(s, 5, actor->id);
    db_bind_text(s, 6, now);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc == EX_ECONFLICT) {
        rc = ex_fail(e, EX_ECONFLICT, "already_decided", "case %s already has a decision",
                     c->case_id);
        goto fail;
    }
    if (rc) goto fail;
    if ((rc = db_prepare(a->db, "UPDATE cases SET status = 'decided' WHERE id = ?", &s, e)))
        goto fail;
    db_bind_int(s, 1, c->rowid);
    rc = db_exec_stmt(s, e);
    db_finalize(s);
    if (rc) goto fail;
    char *detail = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    rc = detail ? audit_append(a->db, who, "case.decided", c->case_id, detail, e)
                : ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    free(detail);
    if (rc) goto fail;
    if ((rc = db_commit(a->db, e))) goto out;
    *out = d;
    d = NULL;
    goto out;
fail:
    db_rollback(a->db);
out:
    db_unlock(a->db);
    json_decref(d);
    return rc;
}

/* Inspections (with their photos' ids) and the decision; the caller holds db_lock. */
static ex_rc review_json(app *a, int64_t case_rowid, json_t *o, ex_error *e)
{
    db_stmt *s = NULL;
    json_t *list = json_array();
    ex_rc rc = db_prepare(a->db,
                          "SELECT i.id, i.inspection_id, i.grade, i.notes, i.created_at, "
                          "(SELECT json_group_array(evidence_id) FROM evidence "
                          " WHERE inspection_ref = i.id) FROM inspections i "
                          "WHERE i.case_ref = ? ORDER BY i.id",
                          &s, e);
    if (rc) {
        json_decref(list);
        return rc;
    }
    db_bind_int(s, 1, case_rowid);
    int r;
    while ((r = db_step(s, e)) == DB_ROW) {
        json_t *ids = json_loads(db_col_text(s, 5), 0, NULL);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "inspection_id",
                                              db_col_text(s, 1), "source", "warehouse", "grade",
                                              db_col_text(s, 2), "notes", db_col_text(s, 3),
                                              "created_at", db_col_text(s, 4), "evidence_ids",
                                              ids ? ids : json_array()));
    }
    db_finalize(s);
    json_object_set_new(o, "inspections", list);
    if (r < 0) return EX_EDB;
    if ((rc = db_prepare(a->db,
                         "SELECT d.outcome, d.amount, d.rationale, d.decided_at, k.role, k.id "
                         "FROM decisions d LEFT JOIN keys k ON k.id = d.key_ref "
                         "WHERE d.case_ref = ?",
                         &s, e)))
        return rc;
    db_bind_int(s, 1, case_rowid);
    json_t *d = json_null();
    if ((r = db_step(s, e)) == DB_ROW) {
        char who[64];
        snprintf(who, sizeof who, "%s:%lld", db_col_text(s, 4), (long long)db_col_int(s, 5));
        d = json_pack("{s:s, s:o, s:s, s:s, s:s}", "outcome", db_col_text(s, 0), "amount",
                      db_col_is_null(s, 1) ? json_null() : json_real(db_col_double(s, 1)),
                      "rationale", db_col_text(s, 2), "decided_at", db_col_text(s, 3), "decided_by",
                      who);
    }
    db_finalize(s);
    json_object_set_new(o, "decision", d);
    return r < 0 ? EX_EDB : EX_OK;
}

ex_rc cases_to_json(app *a, const case_ref *c, const key_info *viewer, json_t **out, ex_error *e)
{
    db_stmt *s = NULL;
    json_t *o = NULL;
    ex_rc rc;
    db_lock(a->db);
    rc = db_prepare(a->db,
                    "SELECT case_id, order_id, buyer_id, seller_id, reason, category, "
                    "description, delivered_at, opened_at, window_ends_at, shipping_paid_by, "
                    "status, created_at FROM cases WHERE id = ?",
                    &s, e);
    if (!rc) {
        db_bind_int(s, 1, c->rowid);
        if (db_step(s, e) == DB_ROW) {
            static const char *const keys[] = {"case_id",
                                               "order_id",
                                               "buyer_id",
                                               "seller_id",
                                               "reason",
                                               "category",
                                               "description",
                                               "delivered_at",
                                               "opened_at",
                                               "return_window_ends_at",
                                               "return_shipping_paid_by",
                                               "status",
                                               "created_at"};
            o = json_object();
            for (int i = 0; o && i < 13; i++)
                json_object_set_new(o, keys[i], json_string(db_col_text(s, i)));
            if (o) rc = review_json(a, c->rowid, o, e);
        } else {
            rc = ex_fail(e, EX_ENOTFOUND, "case_not_found", "case vanished");
        }
    }
    db_finalize(s);
    db_unlock(a->db);
    if (rc) {
        json_decref(o);
        return rc;
    }
    if (!o) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    json_t *items = NULL;
    if ((rc = evidence_list_json(a, c->rowid, viewer, &items, e))) {
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "evidence", items);
    *out = o;
    return EX_OK;
}
