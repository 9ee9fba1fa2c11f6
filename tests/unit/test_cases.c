/* Unit tests for the case-opening rules (window, non-returnable, payer, validation). */
#include "exhibit/cases.h"
#include "exhibit/util.h"
#include "unit.h"

static json_t *body(const char *reason, const char *category, const char *delivered,
                    const char *opened)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "order_id", "PDD-1", "buyer_id", "b-1",
                          "seller_id", "s-1", "reason", reason, "category", category,
                          "delivered_at", delivered);
    if (opened) json_object_set_new(b, "opened_at", json_string(opened));
    return b;
}

static ex_rc check(const ex_config *cfg, json_t *b, json_t **out, ex_error *e)
{
    time_t now;
    util_time_parse("2026-11-22T08:00:00Z", &now);
    ex_rc rc = cases_check(cfg, b, now, out, e);
    json_decref(b);
    return rc;
}

TEST(payer_follows_reason)
{
    ex_config cfg;
    config_defaults(&cfg);
    static const char *const r[][2] = {{"damaged", "seller"},
                                       {"not_as_described", "seller"},
                                       {"wrong_item", "seller"},
                                       {"missing_parts", "seller"},
                                       {"changed_mind", "buyer"}};
    for (int i = 0; i < 5; i++) {
        json_t *out = NULL;
        ex_error e;
        ex_rc rc =
            check(&cfg, body(r[i][0], "electronics", "2026-11-20T10:00:00Z", NULL), &out, &e);
        CHECKF(rc == EX_OK, "%s: %s", r[i][0], e.message);
        if (rc) continue;
        CHECK(strcmp(json_string_value(json_object_get(out, "return_shipping_paid_by")), r[i][1]) ==
              0);
        CHECK(strcmp(json_string_value(json_object_get(out, "return_window_ends_at")),
                     "2026-11-27T10:00:00Z") == 0);
        CHECK(strcmp(json_string_value(json_object_get(out, "opened_at")),
                     "2026-11-22T08:00:00Z") == 0); /* defaults to now */
        json_decref(out);
    }
}

TEST(window_edges)
{
    ex_config cfg;
    config_defaults(&cfg);
    json_t *out = NULL;
    ex_error e;
    CHECK(check(&cfg, body("damaged", "toys", "2026-11-20T10:00:00Z", "2026-11-27T10:00:00Z"), &out,
                &e) == EX_OK);
    json_decref(out);
    out = NULL;
    CHECK(check(&cfg, body("damaged", "toys", "2026-11-20T10:00:00Z", "2026-11-27T10:00:01Z"), &out,
                &e) == EX_EREFUSED);
    CHECK(strcmp(e.code, "return_window_closed") == 0);
    CHECK(out == NULL);
    cfg.return_window_days = 30;
    CHECK(check(&cfg, body("damaged", "toys", "2026-11-20T10:00:00Z", "2026-12-01T10:00:00Z"), &out,
                &e) == EX_OK);
    json_decref(out);
    out = NULL;
    CHECK(check(&cfg, body("damaged", "toys", "2026-11-20T10:00:00Z", "2026-11-19T10:00:00Z"), &out,
                &e) == EX_EINVAL);
}

TEST(non_returnable_categories)
{
    ex_config cfg;
    config_defaults(&cfg);
    json_t *out = NULL;
    ex_error e;
    const char *cats[] = {"fresh_produce", "custom_made"};
    for (int i = 0; i < 2; i++) {
        CHECK(check(&cfg, body("damaged", cats[i], "2026-11-20T10:00:00Z", NULL), &out, &e) ==
              EX_EREFUSED);
        CHECK(strcmp(e.code, "not_returnable") == 0);
    }
    CHECK(check(&cfg, body("damaged", "fresh", "2026-11-20T10:00:00Z", NULL), &out, &e) == EX_OK);
    json_decref(out);
    out = NULL;
    snprintf(cfg.non_returnable, sizeof cfg.non_returnable, "toys");
    CHECK(check(&cfg, body("damaged", "toys", "2026-11-20T10:00:00Z", NULL), &out, &e) ==
          EX_EREFUSED);
    CHECK(check(&cfg, body("damaged", "fresh_produce", "2026-11-20T10:00:00Z", NULL), &out, &e) ==
          EX_OK);
    json_decref(out);
}

TEST(bad_input_names_the_field)
{
    ex_config cfg;
    config_defaults(&cfg);
    json_t *out = NULL;
    ex_error e;
    json_t *b = body("lost_interest", "toys", "2026-11-20T10:00:00Z", NULL);
    CHECK(check(&cfg, b, &out, &e) == EX_EINVAL && strcmp(e.code, "invalid_field") == 0);
    CHECK(strstr(e.message, "reason") != NULL);

    b = body("damaged", "toys", "2026-11-20T10:00:00Z", NULL);
    json_object_del(b, "buyer_id");
    CHECK(check(&cfg, b, &out, &e) == EX_EINVAL && strcmp(e.code, "missing_field") == 0);
    CHECK(strstr(e.message, "buyer_id") != NULL);

    b = body("damaged", "toys", "2026-11-20T10:00:00Z", NULL);
    json_object_set_new(b, "order_id", json_integer(7));
    CHECK(check(&cfg, b, &out, &e) == EX_EINVAL && strstr(e.message, "order_id"));

    b = body("damaged", "toys", "20/11/2026", NULL);
    CHECK(check(&cfg, b, &out, &e) == EX_EINVAL && strstr(e.message, "delivered_at"));

    CHECK(check(&cfg, json_array(), &out, &e) == EX_EINVAL);
    CHECK(out == NULL);
}

int main(void)
{
    RUN(payer_follows_reason);
    RUN(window_edges);
    RUN(non_returnable_categories);
    RUN(bad_input_names_the_field);
    UNIT_DONE();
}
