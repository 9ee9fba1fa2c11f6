/* Unit tests for util: RFC 3339 parsing and formatting, ids, hex, log escaping. */
#include "exhibit/util.h"
#include "unit.h"

TEST(time_round_trip)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: must be rejected */
    } cases[] = {
        {"2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"},
        {"2026-11-20T10:00:00.123Z", "2026-11-20T10:00:00Z"},
        {"2026-11-20T12:00:00+02:00", "2026-11-20T10:00:00Z"},
        {"2026-11-20T05:30:00-04:30", "2026-11-20T10:00:00Z"},
        {"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
        {"2026-02-29T00:00:00Z", NULL},
        {"2026-11-20", NULL},
        {"2026-11-20T10:00:00", NULL}, /* no zone: ambiguous */
        {"2026-13-01T00:00:00Z", NULL},
        {"2026-11-20T24:00:00Z", NULL},
        {"2026-11-20T10:00:00Zjunk", NULL},
        {"", NULL},
        {"yesterday", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        time_t t;
        int rc = util_time_parse(cases[i].in, &t);
        if (!cases[i].out) {
            CHECKF(rc != 0, "accepted %s", cases[i].in);
            continue;
        }
        CHECKF(rc == 0, "rejected %s", cases[i].in);
        char buf[UTIL_TIME_LEN];
        util_time_format(t, buf);
        CHECKF(strcmp(buf, cases[i].out) == 0, "%s -> %s", cases[i].in, buf);
    }
}

TEST(time_local_exif_style)
{
    time_t a, b;
    CHECK(util_time_parse_local("2011-01-13T14:33:39", &a) == 0);
    CHECK(util_time_parse("2011-01-13T14:33:39Z", &b) == 0);
    CHECK(a == b);
    CHECK(util_time_parse_local("2011-01-13T14:33:39Z", &a) != 0);
}

TEST(random_ids_are_distinct_and_bounded)
{
    char a[40], b[40], small[8];
    CHECK(util_random_id("ev_", 12, a, sizeof a) == EX_OK);
    CHECK(util_random_id("ev_", 12, b, sizeof b) == EX_OK);
    CHECK(strlen(a) == 27 && strncmp(a, "ev_", 3) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(util_random_id("ev_", 12, small, sizeof small) != EX_OK);
}

TEST(sha256_hex_shape)
{
    CHECK(util_is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(!util_is_sha256_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
    CHECK(!util_is_sha256_hex("e3b0"));
    CHECK(!util_is_sha256_hex("../../etc/passwd"));
    CHECK(!util_is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550"));
}

TEST(log_escape_neutralises_untrusted_text)
{
    char out[64];
    util_log_escape("a b\"c\nd=e", out, sizeof out);
    CHECK(strchr(out, ' ') == NULL && strchr(out, '\n') == NULL && strchr(out, '"') == NULL);
    CHECK(strchr(out, '=') == NULL);
    char tiny[6];
    util_log_escape("\n\n\n\n\n\n", tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
}

TEST(text_must_be_utf8_without_controls)
{
    CHECK(util_text_ok(""));
    CHECK(util_text_ok("corner crushed\r\n\tscreen cracked"));
    CHECK(util_text_ok(
        "\xe5\xb1\x8f\xe5\xb9\x95\xe7\xa0\xb4\xe8\xa3\x82 \xf0\x9f\x93\xa6")); /* 屏幕破裂 📦 */
    CHECK(!util_text_ok("bad \xff byte"));
    CHECK(!util_text_ok("overlong \xc0\xaf slash"));
    CHECK(!util_text_ok("surrogate \xed\xa0\x80"));
    CHECK(!util_text_ok("cut \xe5\xb1"));
    CHECK(!util_text_ok("bell \x07"));
    CHECK(!util_text_ok("delete \x7f"));
    CHECK(util_utf8_seq_len((const uint8_t *)"\xf4\x8f\xbf\xbf", 4) == 4);
    CHECK(util_utf8_seq_len((const uint8_t *)"\xf4\x90\x80\x80", 4) == 0);
}

int main(void)
{
    RUN(time_round_trip);
    RUN(time_local_exif_style);
    RUN(random_ids_are_distinct_and_bounded);
    RUN(sha256_hex_shape);
    RUN(log_escape_neutralises_untrusted_text);
    RUN(text_must_be_utf8_without_controls);
    UNIT_DONE();
}
