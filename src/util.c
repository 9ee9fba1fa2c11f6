/* util.c - time, ids and string helpers (see util.h). */
#include "exhibit/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void util_time_format(time_t t, char out[UTIL_TIME_LEN])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0 ||
        strftime(out, UTIL_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, UTIL_TIME_LEN, "%s", t < 0 ? "1970-01-01T00:00:00Z" : "9999-12-31T23:59:59Z");
}

void util_time_now(char out[UTIL_TIME_LEN])
{
    util_time_format(time(NULL), out);
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) return -1;
    (*p)++;
    return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SS" and leaves p after it. */
static int parse_datetime(const char **p, struct tm *tm)
{
    int y, mo, d, h, mi, s;
    if (parse_digits(p, 4, &y) || expect(p, '-') || parse_digits(p, 2, &mo) || expect(p, '-') ||
        parse_digits(p, 2, &d))
        return -1;
    if (**p != 'T' && **p != 't' && **p != ' ') return -1;
    (*p)++;
    if (parse_digits(p, 2, &h) || expect(p, ':') || parse_digits(p, 2, &mi) || expect(p, ':') ||
        parse_digits(p, 2, &s))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* Business dates stay far from the 4-digit-year edge, so derived times (window ends,
     * offsets) always format back as RFC 3339. */
    if (y < 1970 || y > 2999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || s > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return -1;
    memset(tm, 0, sizeof *tm);
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = s == 60 ? 59 : s;
    return 0;
}

int util_time_parse(const char *s, time_t *out)
{
    if (!s) return -1;
    const char *p = s;
    struct tm tm;
    if (parse_datetime(&p, &tm)) return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (parse_digits(&p, 2, &oh) || expect(&p, ':') || parse_digits(&p, 2, &om) || oh > 23 ||
            om > 59)
            return -1;
        off = sign * (oh * 3600L + om * 60L);
    } else {
        return -1;
    }
    if (*p) return -1;
    *out = timegm(&tm) - off;
    return 0;
}

int util_time_parse_local(const char *s, time_t *out)
{
    if (!s) return -1;
    const char *p = s;
    struct tm tm;
    if (parse_datetime(&p, &tm) || *p) return -1;
    *out = timegm(&tm);
    return 0;
}

double util_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void util_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

ex_rc util_random_id(const char *prefix, size_t nbytes, char *out, size_t cap)
{
    uint8_t buf[64];
    size_t plen = strlen(prefix);
    if (nbytes > sizeof buf || plen + 2 * nbytes + 1 > cap) return EX_EINTERNAL;
    if (getrandom(buf, nbytes, 0) != (ssize_t)nbytes) return EX_EINTERNAL;
    memcpy(out, prefix, plen);
    util_hex(buf, nbytes, out + plen);
    return EX_OK;
}

int util_is_sha256_hex(const char *s)
{
    if (!s) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == '\0';
}

void util_log_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) return;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 5 < cap; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\' && *p != '=') {
            out[o++] = (char)*p;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        }
    }
    out[o] = '\0';
}

size_t util_url_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len) return (size_t)-1;
            char hex[3] = {in[i + 1], in[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || !isxdigit((unsigned char)hex[0])) return (size_t)-1;
            c = (int)v;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap) return (size_t)-1;
        out[o++] = (char)c;
    }
    if (cap == 0) return (size_t)-1;
    out[o] = '\0';
    return o;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (overlongs,
 * surrogates and code points above U+10FFFF are invalid). */
size_t util_utf8_seq_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return len;
}

int util_text_ok(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = util_utf8_seq_len(p + i, n - i);
        if (!l || (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
            return 0;
        i += l;
    }
    return 1;
}
