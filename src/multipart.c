/* multipart.c - streaming multipart/form-data parser.
 *
 * The body is scanned for the delimiter "\r\n--" boundary with memmem; the parser starts with
 * a virtual "\r\n" held back so that a boundary at the very start of the body needs no special
 * case. Whatever may be the beginning of a delimiter at the end of a chunk (fewer than the
 * delimiter's length) is kept in `hold` and resolved with the next chunk through a small
 * scratch buffer, so part data is delivered in runs as long as the chunks and is never copied
 * except for those held-back bytes. The few bytes after a delimiter ("--" or padding + CRLF)
 * go through a byte state machine; part headers are collected into a fixed 8 KB buffer and
 * parsed in place. All limits are in multipart.h; nothing is allocated after mp_new.
 */
/* memmem is a GNU/BSD extension; the fuzz build line does not pass -D_GNU_SOURCE. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "exhibit/multipart.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MP_DELIM_MAX (4 + MP_MAX_BOUNDARY)

enum mp_state {
    ST_PREAMBLE,  /* before the first delimiter: bytes are discarded */
    ST_TAIL,      /* first byte after a delimiter: '-', padding or CR */
    ST_TAIL_DASH, /* after "--boundary-": wants the second '-' */
    ST_TAIL_PAD,  /* transport padding: spaces/tabs until CR */
    ST_TAIL_LF,   /* after the CR that ends a boundary line */
    ST_HEADERS,   /* collecting a part's header section */
    ST_DATA,      /* streaming a part's data */
    ST_EPILOGUE,  /* after the close delimiter: bytes are ignored */
    ST_ERROR,     /* sticky: p->rc and p->err say why */
};

struct mp_parser {
    mp_callbacks cb;
    void *ud;
    enum mp_state state;
    int in_part;     /* a part has begun and not yet ended */
    unsigned nparts; /* parts begun so far */
    ex_rc rc;
    ex_error err;
    size_t dlen;
    uint8_t delim[MP_DELIM_MAX]; /* "\r\n--" boundary */
    size_t hold_len;             /* < dlen: a proper prefix of delim */
    uint8_t hold[MP_DELIM_MAX];
    uint8_t scratch[2 * MP_DELIM_MAX];
    size_t hdr_len;
    /* A virtual "\r\n" in front lets one search for "\r\n\r\n" also find an empty section. */
    char hdr[2 + MP_MAX_HEADER_BYTES];
};

/* Records a parse failure (sticky) and returns rc. */
__attribute__((format(printf, 4, 5))) static ex_rc mp_fail(mp_parser *p, ex_rc rc, const char *code,
                                                           const char *fmt, ...)
{
    char msg[sizeof p->err.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ex_fail(&p->err, rc, code, "%s", msg);
    p->rc = rc;
    p->state = ST_ERROR;
    return rc;
}

/* Hands the sticky error to the caller. */
static ex_rc mp_report(const mp_parser *p, ex_error *e)
{
    if (e) *e = p->err;
    return p->rc;
}

/* After a callback said no: keep its rc and its description, or write a generic one. */
static ex_rc mp_callback_failed(mp_parser *p, ex_rc rc, const char *which)
{
    if (p->err.code[0] == '\0')
        ex_fail(&p->err, rc, ex_rc_code(rc), "the %s handler stopped the upload at part %u", which,
                p->nparts);
    p->rc = rc;
    p->state = ST_ERROR;
    return rc;
}

static void mp_clear_err(mp_parser *p)
{
    p->err.code[0] = '\0';
    p->err.message[0] = '\0';
}

/* ---- small lexical helpers shared by Content-Type and Content-Disposition ---- */

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7230 tchar. */
static int is_tchar(int c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 2046 bchars (without the space, which is allowed but not last). */
static int is_bchar(int c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != '\0' && strchr("'()+_,-./:=? ", c) != NULL;
}

static const char *skip_ows(const char *s)
{
    while (is_ows((unsigned char)*s))
        s++;
    return s;
}

static size_t span_tchars(const char *s)
{
    size_t n = 0;
    while (is_tchar((unsigned char)s[n]))
        n++;
    return n;
}

static int span_ieq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* One `; name=value` parameter as spans into the header value. For a quoted value, [vs, ve)
 * is the text between the quotes, escapes still in place. */
typedef struct param {
    const char *name;
    size_t name_len;
    const char *vs, *ve;
    int quoted;
} param;

enum { PARAM_END = 0, PARAM_OK = 1, PARAM_BAD = -1 };

/* Reads the next parameter at *s (which points after the media or disposition type). Empty
 * parameters (";;", a trailing ';') are skipped. On PARAM_BAD, *why says what was wrong. */
static int param_next(const char **s, param *out, const char **why)
{
    const char *c = *s;
    for (;;) {
        c = skip_ows(c);
        if (*c == '\0') return PARAM_END;
        if (*c != ';') {
            *why = "expected ';' between parameters";
            return PARAM_BAD;
        }
        c = skip_ows(c + 1);
        if (*c != ';' && *c != '\0') break;
    }
    out->name = c;
    out->name_len = span_tchars(c);
    if (out->name_len == 0) {
        *why = "a parameter has no name";
        return PARAM_BAD;
    }
    c = skip_ows(c + out->name_len);
    if (*c != '=') {
        *why = "a parameter has no '=value'";
        return PARAM_BAD;
    }
    c = skip_ows(c + 1);
    if (*c == '"') {
        out->quoted = 1;
        out->vs = ++c;
        while (*c != '"') {
            if (*c == '\0' || (*c == '\\' && c[1] == '\0')) {
                *why = "a quoted string is not terminated";
                return PARAM_BAD;
            }
            c += *c == '\\' ? 2 : 1;
        }
        out->ve = c++;
    } else {
        /* Token per RFC, but tolerate any visible byte the sender did not bother to quote. */
        out->quoted = 0;
        out->vs = c;
        while (*c != '\0' && *c != ';' && *c != '"' && !is_ows((unsigned char)*c))
            c++;
        out->ve = c;
        if (out->ve == out->vs) {
            *why = "a parameter has an empty value";
            return PARAM_BAD;
        }
    }
    *s = c;
    return PARAM_OK;
}

/* Copies the value of v to dst (may be v->vs itself: the copy never runs ahead of the read),
 * undoing quoted-pairs in quoted strings. With `strict`, every backslash escapes (RFC 7230);
 * otherwise only \" and \\ do, because browsers send Windows paths in filenames without
 * escaping their backslashes. Writes at most cap-1 bytes and a NUL; returns the full length. */
static size_t param_unquote(char *dst, size_t cap, const param *v, int strict)
{
    size_t n = 0;
    for (const char *r = v->vs; r < v->ve; r++) {
        char c = *r;
        if (v->quoted && c == '\\' && r + 1 < v->ve && (strict || r[1] == '"' || r[1] == '\\'))
            c = *++r;
        if (n + 1 < cap) dst[n] = c;
        n++;
    }
    if (cap) dst[n < cap ? n : cap - 1] = '\0';
    return n;
}

static int boundary_valid(const char *b, size_t n)
{
    if (n == 0 || n > MP_MAX_BOUNDARY || b[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_bchar((unsigned char)b[i])) return 0;
    return 1;
}

ex_rc mp_boundary_from_content_type(const char *content_type, char *out, size_t cap, ex_error *e)
{
    const char *bad = "invalid_content_type";
    if (!content_type) return ex_fail(e, EX_EINVAL, bad, "multipart upload without Content-Type");
    const char *s = skip_ows(content_type);
    size_t tl = span_tchars(s);
    int ok = span_ieq(s, tl, "multipart") && s[tl] == '/';
    const char *sub = s + tl + 1;
    size_t sl = ok ? span_tchars(sub) : 0;
    if (!ok || !span_ieq(sub, sl, "form-data"))
        return ex_fail(e, EX_EINVAL, bad, "Content-Type must be multipart/form-data");
    s = sub + sl;

    char tmp[MP_MAX_BOUNDARY + 1];
    size_t blen = 0;
    int seen = 0;
    param pm;
    const char *why = NULL;
    int r;
    while ((r = param_next(&s, &pm, &why)) == PARAM_OK) {
        if (!span_ieq(pm.name, pm.name_len, "boundary")) continue;
        if (seen++) return ex_fail(e, EX_EINVAL, bad, "Content-Type has two boundary parameters");
        blen = param_unquote(tmp, sizeof tmp, &pm, 1);
        if (blen > MP_MAX_BOUNDARY)
            return ex_fail(e, EX_EINVAL, bad, "multipart boundary is %zu characters, at most %d",
                           blen, MP_MAX_BOUNDARY);
        if (!boundary_valid(tmp, blen))
            return ex_fail(e, EX_EINVAL, bad,
                           "multipart boundary is empty, ends in a space or has a character "
                           "RFC 2046 does not allow");
    }
    if (r == PARAM_BAD) return ex_fail(e, EX_EINVAL, bad, "Content-Type: %s", why);
    if (!seen) return ex_fail(e, EX_EINVAL, bad, "Content-Type has no boundary parameter");
    if (cap < blen + 1)
        return ex_fail(e, EX_EINTERNAL, "internal_error", "boundary buffer of %zu bytes too small",
                       cap);
    memcpy(out, tmp, blen + 1);
    return EX_OK;
}

mp_parser *mp_new(const char *boundary, const mp_callbacks *cb, void *ud)
{
    if (!boundary) return NULL;
    size_t n = strnlen(boundary, MP_MAX_BOUNDARY + 1);
    if (!boundary_valid(boundary, n)) return NULL;
    mp_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (cb) p->cb = *cb;
    p->ud = ud;
    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, n);
    p->dlen = 4 + n;
    p->state = ST_PREAMBLE;
    memcpy(p->hold, "\r\n", 2);
    p->hold_len = 2;
    return p;
}

void mp_free(mp_parser *p)
{
    free(p);
}

/* ---- body scanning (preamble and part data) ---- */

enum { FIND_NONE, FIND_FULL, FIND_PARTIAL };

/* First full delimiter in buf, else the first tail of buf that is a proper prefix of it. */
static int delim_find(const uint8_t *buf, size_t n, const uint8_t *d, size_t dl, size_t *pos)
{
    const uint8_t *m = memmem(buf, n, d, dl);
    if (m) {
        *pos = (size_t)(m - buf);
        return FIND_FULL;
    }
    size_t q = n >= dl ? n - dl + 1 : 0;
    while (q < n) {
        const uint8_t *r = memchr(buf + q, d[0], n - q);
        if (!r) break;
        q = (size_t)(r - buf);
        if (memcmp(r, d, n - q) == 0) {
            *pos = q;
            return FIND_PARTIAL;
        }
        q++;
    }
    return FIND_NONE;
}

/* Delivers bytes that are certainly data (or discards preamble). */
static ex_rc body_emit(mp_parser *p, const uint8_t *d, size_t n)
{
    if (n == 0 || p->state != ST_DATA || !p->cb.part_data) return EX_OK;
    mp_clear_err(p);
    ex_rc rc = p->cb.part_data(p->ud, d, n, &p->err);
    return rc == EX_OK ? EX_OK : mp_callback_failed(p, rc, "part_data");
}

/* Consumes c[0..n) in ST_PREAMBLE/ST_DATA up to and including the next delimiter (then the
 * state becomes ST_TAIL) or all of it, holding back a possible delimiter start. */
static ex_rc body_step(mp_parser *p, const uint8_t *c, size_t n, size_t *used)
{
    const uint8_t *d = p->delim;
    size_t dl = p->dlen, pos;
    int r;
    if (p->hold_len) {
        /* A delimiter that starts in hold ends within dl bytes of c. */
        size_t h = p->hold_len, take = n < dl ? n : dl;
        memcpy(p->scratch, p->hold, h);
        memcpy(p->scratch + h, c, take);
        r = delim_find(p->scratch, h + take, d, dl, &pos);
        if (r != FIND_NONE && pos < h) {
            p->hold_len = 0;
            if (body_emit(p, p->scratch, pos)) return p->rc;
            if (r == FIND_FULL) {
                *used = pos + dl - h;
                p->state = ST_TAIL;
                return EX_OK;
            }
            /* A partial match starting in hold: take <= dl - 1, so all of c was copied. */
            p->hold_len = h + take - pos;
            memcpy(p->hold, p->scratch + pos, p->hold_len);
            *used = n;
            return EX_OK;
        }
        p->hold_len = 0;
        if (body_emit(p, p->scratch, h)) return p->rc;
    }
    r = delim_find(c, n, d, dl, &pos);
    if (r == FIND_NONE) pos = n;
    if (body_emit(p, c, pos)) return p->rc;
    if (r == FIND_FULL) {
        *used = pos + dl;
        p->state = ST_TAIL;
        return EX_OK;
    }
    p->hold_len = n - pos;
    memcpy(p->hold, c + pos, p->hold_len);
    *used = n;
    return EX_OK;
}

/* ---- the line after a delimiter ---- */

static ex_rc part_close(mp_parser *p)
{
    if (!p->in_part) return EX_OK;
    p->in_part = 0;
    if (!p->cb.part_end) return EX_OK;
    mp_clear_err(p);
    ex_rc rc = p->cb.part_end(p->ud, &p->err);
    return rc == EX_OK ? EX_OK : mp_callback_failed(p, rc, "part_end");
}

/* Names the boundary for a person: the first one, or the one after part N. */
__attribute__((format(printf, 2, 3))) static ex_rc tail_malformed(mp_parser *p, const char *fmt,
                                                                  ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (p->nparts == 0)
        return mp_fail(p, EX_EINVAL, "malformed_multipart", "the first boundary %s", what);
    return mp_fail(p, EX_EINVAL, "malformed_multipart", "the boundary after part %u %s", p->nparts,
                   what);
}

static ex_rc tail_step(mp_parser *p, uint8_t ch)
{
    switch (p->state) {
    case ST_TAIL:
    case ST_TAIL_PAD:
        if (ch == '-' && p->state == ST_TAIL) {
            p->state = ST_TAIL_DASH;
            return EX_OK;
        }
        if (is_ows(ch)) {
            p->state = ST_TAIL_PAD;
            return EX_OK;
        }
        if (ch == '\r') {
            p->state = ST_TAIL_LF;
            return EX_OK;
        }
        return tail_malformed(p,
                              "is followed by byte 0x%02x; expected CRLF or '--' (the "
                              "boundary string must not occur inside a part)",
                              ch);
    case ST_TAIL_DASH:
        if (ch != '-') return tail_malformed(p, "is followed by '-' but not '--'");
        if (part_close(p)) return p->rc;
        p->state = ST_EPILOGUE;
        return EX_OK;
    case ST_TAIL_LF:
        if (ch != '\n') return tail_malformed(p, "ends in CR without LF");
        if (part_close(p)) return p->rc;
        if (p->nparts >= MP_MAX_PARTS)
            return mp_fail(p, EX_ETOOBIG, "too_many_parts",
                           "more than %d parts in the form; send fewer fields or files",
                           MP_MAX_PARTS);
        p->nparts++;
        memcpy(p->hdr, "\r\n", 2);
        p->hdr_len = 2;
        p->state = ST_HEADERS;
        return EX_OK;
    default:
        return mp_fail(p, EX_EINTERNAL, "internal_error", "multipart: bad tail state %d",
                       (int)p->state);
    }
}

/* ---- part headers ---- */

static ex_rc hdr_malformed(mp_parser *p, const char *what)
{
    return mp_fail(p, EX_EINVAL, "malformed_multipart", "part %u: %s", p->nparts, what);
}

/* Content-Disposition: form-data; name="..."; filename="..." parsed in place in v. */
static ex_rc hdr_disposition(mp_parser *p, char *v, const char **name, const char **filename)
{
    size_t tl = span_tchars(v);
    if (!span_ieq(v, tl, "form-data"))
        return hdr_malformed(p, "Content-Disposition is not form-data");
    const char *s = v + tl;
    param pm, pn = {0}, pf = {0};
    int have_n = 0, have_f = 0, r;
    const char *why = NULL;
    while ((r = param_next(&s, &pm, &why)) == PARAM_OK) {
        if (span_ieq(pm.name, pm.name_len, "name")) {
            if (have_n++) return hdr_malformed(p, "Content-Disposition has two name parameters");
            pn = pm;
        } else if (span_ieq(pm.name, pm.name_len, "filename")) {
            if (have_f++)
                return hdr_malformed(p, "Content-Disposition has two filename parameters");
            pf = pm;
        }
    }
    if (r == PARAM_BAD) {
        char msg[128];
        snprintf(msg, sizeof msg, "Content-Disposition: %s", why);
        return hdr_malformed(p, msg);
    }
    if (!have_n) return hdr_malformed(p, "Content-Disposition has no name parameter");
    /* Unquoting in place never writes past a value's closing quote or delimiter, so the
     * two values cannot clobber each other (parsing is already done). */
    char *nm = (char *)pn.vs;
    if (param_unquote(nm, (size_t)(pn.ve - pn.vs) + 1, &pn, 0) == 0)
        return hdr_malformed(p, "Content-Disposition has an empty name");
    *name = nm;
    if (have_f) {
        char *fn = (char *)pf.vs;
        param_unquote(fn, (size_t)(pf.ve - pf.vs) + 1, &pf, 0);
        *filename = fn;
    }
    return EX_OK;
}

/* Parses hdr[2..end) (NUL at end), then starts the part. */
static ex_rc hdr_finish(mp_parser *p, size_t end)
{
    char *t = p->hdr + 2;
    size_t tl = end >= 2 ? end - 2 : 0;
    /* Validate bytes and join folded lines: CRLF + SP/HT becomes spaces. */
    for (size_t i = 0; i < tl; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\r') {
            if (i + 1 >= tl || t[i + 1] != '\n') return hdr_malformed(p, "bare CR in headers");
            if (i + 2 < tl && is_ows((unsigned char)t[i + 2])) t[i] = t[i + 1] = ' ';
            i++;
        } else if (c == '\n') {
            return hdr_malformed(p, "bare LF in headers (lines must end in CRLF)");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return hdr_malformed(p, "control byte in headers");
        }
    }
    const char *name = NULL, *filename = NULL, *ctype = NULL;
    int have_cd = 0, have_ct = 0;
    char *line = t, *stop = t + tl;
    while (line < stop) {
        char *eol = strstr(line, "\r\n");
        char *next = eol ? eol + 2 : stop;
        if (!eol) eol = stop;
        *eol = '\0';
        if (is_ows((unsigned char)line[0]))
            return hdr_malformed(p, "headers start with a continuation line");
        char *colon = strchr(line, ':');
        if (!colon) return hdr_malformed(p, "header line without ':'");
        size_t nl = (size_t)(colon - line);
        if (nl == 0 || span_tchars(line) != nl)
            return hdr_malformed(p, "header name empty or not a token");
        char *v = (char *)skip_ows(colon + 1);
        char *ve = eol;
        while (ve > v && is_ows((unsigned char)ve[-1]))
            ve--;
        *ve = '\0';
        if (span_ieq(line, nl, "Content-Disposition")) {
            if (have_cd++) return hdr_malformed(p, "two Content-Disposition headers");
            if (hdr_disposition(p, v, &name, &filename)) return p->rc;
        } else if (span_ieq(line, nl, "Content-Type")) {
            if (have_ct++) return hdr_malformed(p, "two Content-Type headers");
            ctype = *v ? v : NULL;
        }
        line = next;
    }
    if (!have_cd) return hdr_malformed(p, "no Content-Disposition header");
    p->in_part = 1;
    p->hold_len = 0;
    p->state = ST_DATA;
    if (!p->cb.part_begin) return EX_OK;
    mp_clear_err(p);
    ex_rc rc = p->cb.part_begin(p->ud, name, filename, ctype, &p->err);
    return rc == EX_OK ? EX_OK : mp_callback_failed(p, rc, "part_begin");
}

static ex_rc hdr_step(mp_parser *p, const uint8_t *c, size_t n, size_t *used)
{
    size_t old = p->hdr_len, room = sizeof p->hdr - old;
    size_t take = n < room ? n : room;
    memcpy(p->hdr + old, c, take);
    p->hdr_len += take;
    size_t from = old >= 3 ? old - 3 : 0;
    const char *f = memmem(p->hdr + from, p->hdr_len - from, "\r\n\r\n", 4);
    if (f) {
        size_t end = (size_t)(f - p->hdr);
        *used = end + 4 - old;
        p->hdr[end] = '\0';
        return hdr_finish(p, end);
    }
    *used = take;
    if (p->hdr_len == sizeof p->hdr)
        return mp_fail(p, EX_EINVAL, "multipart_headers_too_large",
                       "part %u: headers exceed %d bytes", p->nparts, MP_MAX_HEADER_BYTES);
    return EX_OK;
}

/* ---- public entry points ---- */

ex_rc mp_feed(mp_parser *p, const uint8_t *data, size_t len, ex_error *e)
{
    if (!p) return ex_fail(e, EX_EINTERNAL, "internal_error", "mp_feed without a parser");
    if (p->state == ST_ERROR) return mp_report(p, e);
    if (len == 0) return EX_OK;
    if (!data) {
        mp_fail(p, EX_EINTERNAL, "internal_error", "mp_feed: NULL data with length %zu", len);
        return mp_report(p, e);
    }
    size_t off = 0;
    while (off < len) {
        size_t used = 1;
        ex_rc rc = EX_OK;
        switch (p->state) {
        case ST_PREAMBLE:
        case ST_DATA:
            rc = body_step(p, data + off, len - off, &used);
            break;
        case ST_TAIL:
        case ST_TAIL_DASH:
        case ST_TAIL_PAD:
        case ST_TAIL_LF:
            rc = tail_step(p, data[off]);
            break;
        case ST_HEADERS:
            rc = hdr_step(p, data + off, len - off, &used);
            break;
        case ST_EPILOGUE:
            used = len - off;
            break;
        case ST_ERROR:
            rc = p->rc;
            break;
        }
        if (rc != EX_OK) return mp_report(p, e);
        off += used;
    }
    return EX_OK;
}

ex_rc mp_finish(mp_parser *p, ex_error *e)
{
    if (!p) return ex_fail(e, EX_EINTERNAL, "internal_error", "mp_finish without a parser");
    switch (p->state) {
    case ST_EPILOGUE:
        return EX_OK;
    case ST_ERROR:
        break;
    case ST_PREAMBLE:
        mp_fail(p, EX_EINVAL, "multipart_truncated",
                "the body ended before the first multipart boundary");
        break;
    case ST_HEADERS:
        mp_fail(p, EX_EINVAL, "multipart_truncated", "the body ended in the headers of part %u",
                p->nparts);
        break;
    case ST_DATA:
        mp_fail(p, EX_EINVAL, "multipart_truncated",
                "the body ended in the data of part %u (upload cut off?)", p->nparts);
        break;
    default:
        mp_fail(p, EX_EINVAL, "multipart_truncated",
                "the body ended right after a boundary, before the closing '--boundary--'");
        break;
    }
    return mp_report(p, e);
}
