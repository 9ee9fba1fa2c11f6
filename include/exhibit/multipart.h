/* multipart.h - streaming multipart/form-data parser (RFC 7578 framing per RFC 2046).
 *
 * The HTTP layer feeds the request body in chunks of any size; part data is streamed out
 * through callbacks and never buffered, except for the few bytes (< 4 + boundary length) at
 * the end of a chunk that may be the start of the next delimiter. Memory per parser is fixed
 * (about 8.5 KB, allocated by mp_new); feeding never allocates.
 *
 * Framing accepted: a preamble (ignored), "--boundary" at the start of the body or of a line,
 * optional transport padding (spaces/tabs) then CRLF after each boundary, part headers (names
 * case-insensitive, obs-fold continuation lines joined), and a close delimiter
 * "--boundary--" after which everything (the epilogue) is ignored. Line ends must be CRLF.
 * The CRLF before a delimiter belongs to the delimiter, not to the part's data.
 * A body with zero parts ("--boundary--") is well-formed: browsers send it for an empty form.
 *
 * Error codes (ex_error.code) the parser produces:
 *   invalid_content_type         EX_EINVAL  Content-Type is not multipart/form-data with a
 *                                           valid boundary (mp_boundary_from_content_type)
 *   malformed_multipart          EX_EINVAL  framing or part headers are wrong; the message says
 *                                           what and in which part
 *   multipart_headers_too_large  EX_EINVAL  a part's header section exceeds MP_MAX_HEADER_BYTES
 *   too_many_parts               EX_ETOOBIG more than MP_MAX_PARTS parts
 *   multipart_truncated          EX_EINVAL  the body ended before the close delimiter
 *   (a callback's own code)                 a callback stopped the parse, see mp_callbacks
 */
#ifndef EXHIBIT_MULTIPART_H
#define EXHIBIT_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

/* RFC 2046 caps a boundary at 70 characters. */
#define MP_MAX_BOUNDARY 70
/* A part's header section, counted from the byte after the boundary line's CRLF up to and
 * including the empty line that ends it. Browsers send ~100-300 bytes. */
#define MP_MAX_HEADER_BYTES 8192
/* Parts per body (text fields and files together). */
#define MP_MAX_PARTS 64

typedef struct mp_parser mp_parser;

/* Called from inside mp_feed, in order: part_begin, zero or more part_data, part_end, for each
 * part. Any callback may be NULL (then it is skipped).
 * - part_begin: name is non-empty; filename and content_type are NULL when the part has none
 *   (filename may be "" - browsers send filename="" for an empty file input). filename is the
 *   raw value: it may contain '/', '\\' or "..", the receiver must never use it as a path.
 *   `filename*=` is ignored. The strings are owned by the parser and valid only during the
 *   call; copy what you keep.
 * - part_data: the next run of the part's bytes (len > 0), owned by the caller of mp_feed or
 *   by the parser, valid only during the call. Runs are as long as the chunks allow.
 * - part_end: the part's data is complete and exact. It is called only once the delimiter
 *   after the data has been seen together with what must follow it ("--", or padding + CRLF),
 *   so a part cut off by a truncated body never gets part_end. The request as a whole is
 *   only valid if mp_finish returns EX_OK: on any error, discard what the parts produced.
 * Returning anything but EX_OK stops parsing: mp_feed returns that rc and the parser keeps
 * it. Describe the failure with ex_fail(e, ...) (e is never NULL); when a callback leaves e
 * untouched, the parser writes a generic description with the rc's generic code.
 * Callbacks must not call mp_feed, mp_finish or mp_free on the same parser. */
typedef struct mp_callbacks {
    ex_rc (*part_begin)(void *ud, const char *name, const char *filename, const char *content_type,
                        ex_error *e);
    ex_rc (*part_data)(void *ud, const uint8_t *data, size_t len, ex_error *e);
    ex_rc (*part_end)(void *ud, ex_error *e);
} mp_callbacks;

/* Extracts the boundary from a Content-Type header value such as
 * `multipart/form-data; boundary="abc"` (type and parameter names case-insensitive, value a
 * token or a quoted string, other parameters ignored) and writes it NUL-terminated to out,
 * which must hold MP_MAX_BOUNDARY + 1 bytes.
 * EX_EINVAL invalid_content_type: NULL or unparsable value, not multipart/form-data, no or
 *   duplicate boundary, boundary empty, longer than MP_MAX_BOUNDARY, ending in a space or
 *   using characters RFC 2046 does not allow.
 * EX_EINTERNAL: cap too small for this boundary (a bug of ours). */
EX_MUST_CHECK ex_rc mp_boundary_from_content_type(const char *content_type, char *out, size_t cap,
                                                  ex_error *e);

/* A parser for one body. boundary must be valid (what mp_boundary_from_content_type gives);
 * *cb is copied, ud is passed to every callback. Returns NULL when out of memory or when
 * boundary is not a valid boundary. Free with mp_free. */
mp_parser *mp_new(const char *boundary, const mp_callbacks *cb, void *ud);

/* Parses the next len bytes of the body, calling the callbacks as parts go by. Bytes after the
 * close delimiter are ignored. Errors: see the codes at the top, or a callback's. After any
 * error every later mp_feed/mp_finish returns the same rc and error. */
EX_MUST_CHECK ex_rc mp_feed(mp_parser *p, const uint8_t *data, size_t len, ex_error *e);

/* Declares the end of the body. EX_OK only if the close delimiter was seen; a body cut off
 * anywhere before it (preamble, headers, data, right after a boundary) is EX_EINVAL
 * multipart_truncated, and the part that was open never got part_end. Sticky like mp_feed. */
EX_MUST_CHECK ex_rc mp_finish(mp_parser *p, ex_error *e);

/* Frees the parser (NULL is fine). No callback is called. */
void mp_free(mp_parser *p);

#endif
