/* util.h - small helpers with no third-party dependencies: time stamps, ids, strings.
 *
 * Times are RFC 3339 UTC with second precision ("2026-11-28T09:15:00Z"). Parsing accepts a
 * trailing "Z" or a numeric offset and fractional seconds; it rejects anything else so bad
 * input is reported, not guessed.
 */
#ifndef EXHIBIT_UTIL_H
#define EXHIBIT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "exhibit/err.h"

#define UTIL_TIME_LEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Formats t as RFC 3339 UTC into out[UTIL_TIME_LEN]. */
void util_time_format(time_t t, char out[UTIL_TIME_LEN]);
/* Now, formatted. */
void util_time_now(char out[UTIL_TIME_LEN]);
/* Parses an RFC 3339 time into seconds since the epoch; -1 on any syntax or range error
 * (years 1970-2999 only). */
int util_time_parse(const char *s, time_t *out);
/* Parses an EXIF-style local time "YYYY-MM-DDTHH:MM:SS" (no zone) as if UTC; -1 on error. */
int util_time_parse_local(const char *s, time_t *out);

/* Monotonic seconds, for durations. */
double util_mono_now(void);

/* Fills out with prefix + 2*nbytes random lowercase hex; cap must fit. EX_EINTERNAL when the
 * system's random source fails. */
ex_rc util_random_id(const char *prefix, size_t nbytes, char *out, size_t cap) EX_MUST_CHECK;

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void util_hex(const uint8_t *in, size_t n, char *out);
/* True when s is exactly 64 lowercase hex digits. */
int util_is_sha256_hex(const char *s);

/* Decodes application/x-www-form-urlencoded text (%XX and '+') of in[0..len) into out,
 * NUL-terminated. Returns the decoded length, or (size_t)-1 for a malformed escape, a
 * decoded NUL, or output that does not fit. */
size_t util_url_decode(const char *in, size_t len, char *out, size_t cap);

/* Escapes a string for a key=value log line: printable ASCII kept, quotes, backslashes,
 * spaces and everything else escaped; always NUL-terminates within cap. */
void util_log_escape(const char *in, char *out, size_t cap);

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (overlongs,
 * surrogates and code points above U+10FFFF are invalid). */
size_t util_utf8_seq_len(const uint8_t *s, size_t n);

/* 1 when s is valid UTF-8 with no control characters but tab, CR and LF: text a person typed,
 * safe to store, log and put into JSON as it is. */
int util_text_ok(const char *s);

#endif
