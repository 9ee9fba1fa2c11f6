/* exif.c - EXIF summary and full tag dump through libexif, XMP creator scan, editor names.
 *
 * libexif runs on a private copy of the blob, at most EXIF_MAX_BLOB bytes, with a TIFF-only
 * blob given the "Exif\0\0" header it needs (libexif would otherwise treat it as a JPEG
 * stream, find no marker and load nothing). Before libexif sees the copy, every MakerNote tag
 * reachable the way libexif walks IFDs is renamed to an unknown tag, which libexif skips:
 * exif_data_load_data() runs the Canon/Olympus/Fuji/Pentax/Nikon maker-note parsers on its
 * own, whether or not anyone calls the maker-note API, and that is where its CVEs are
 * (2020-13112, 2026-40385/40386, ...). libexif's "follow the specification" fix-ups are off
 * because they add invented default tags and drop real ones; we want the file as it is.
 *
 * Everything copied out of the file is bounded, cut only at UTF-8 character boundaries, and
 * cleaned of control bytes and invalid UTF-8 so it can go into JSON and logs as is.
 */
#include "exhibit/exif.h"
#include "exhibit/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>
#include <libexif/exif-log.h>
#include <libexif/exif-utils.h>

#define TAG_MAKER_NOTE 0x927c
#define TAG_EXIF_IFD 0x8769
#define TAG_GPS_IFD 0x8825
#define TAG_INTEROP_IFD 0xa005
#define TAG_RENAMED 0xffff /* unknown in every IFD, so libexif drops the entry */

/* Work limits for the maker-note walk. Real files have < 10 IFDs and < 300 entries; these
 * only stop crafted IFD webs (an IFD at every offset, each pointing at the next). */
#define WALK_MAX_ENTRIES 200000u
#define WALK_MAX_PASSES 8
#define WALK_STACK 64

static const uint8_t exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};

/* ---- text cleaning ------------------------------------------------------------------- */

/* Appends in[0..n) (stopping at a NUL) to out, which holds *used bytes of cap, keeping it
 * NUL-terminated: whitespace controls become ' ', other controls and invalid UTF-8 '?'. A
 * character that does not fit ends the copy. */
static void text_append(char *out, size_t cap, size_t *used, const uint8_t *in, size_t n)
{
    size_t o = *used;
    for (size_t i = 0; i < n && in[i];) {
        size_t l = util_utf8_seq_len(in + i, n - i);
        if (o + (l ? l : 1) + 1 > cap) break;
        if (l == 0) {
            out[o++] = '?';
            i++;
        } else if (l == 1) {
            uint8_t c = in[i++];
            if (c == '\t' || c == '\n' || c == '\r')
                c = ' ';
            else if (c < 0x20 || c == 0x7f)
                c = '?';
            out[o++] = (char)c;
        } else {
            memcpy(out + o, in + i, l);
            o += l;
            i += l;
        }
    }
    out[o] = '\0';
    *used = o;
}

static void text_trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
}

/* Cleaned, right-trimmed copy of raw text bytes into out[cap] (cap >= 1). */
static void text_copy(char *out, size_t cap, const uint8_t *in, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    if (in) text_append(out, cap, &used, in, n);
    text_trim_right(out);
}

/* ---- blob preparation and the maker-note walk ----------------------------------------- */

typedef struct mn_walk {
    uint8_t *d; /* TIFF data: byte-order mark onwards */
    size_t n;
    int le;
    unsigned entries; /* entries looked at, over all passes */
    int found;        /* MakerNote tags seen (renamed ones count) */
    uint8_t seen[(EXIF_MAX_BLOB + 7) / 8];
} mn_walk;

static unsigned rd16(const mn_walk *w, size_t at)
{
    const uint8_t *p = w->d + at;
    return w->le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const mn_walk *w, size_t at)
{
    const uint8_t *p = w->d + at;
    if (w->le)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Queues an IFD offset once per pass: marked when queued, so the stack only ever holds
 * distinct offsets. Offsets libexif would not read are dropped. -1 when the stack is full. */
static int mn_push(mn_walk *w, size_t *stack, int *sp, size_t off)
{
    if (off + 2 > w->n || (w->seen[off >> 3] & (1u << (off & 7)))) return 0;
    if (*sp == WALK_STACK) return -1;
    w->seen[off >> 3] |= (uint8_t)(1u << (off & 7));
    stack[(*sp)++] = off;
    return 0;
}

/* One pass over every IFD libexif would load: IFD0, IFD1 (IFD0's next link) and whatever the
 * EXIF/GPS/Interoperability pointers reach, from any IFD, as libexif follows them. Renames
 * MakerNote tags. Returns the number renamed, or -1 when a work limit was hit. */
static int mn_pass(mn_walk *w)
{
    size_t stack[WALK_STACK];
    int sp = 0, renamed = 0;
    memset(w->seen, 0, sizeof w->seen);

    uint32_t ifd0 = rd32(w, 4);
    if ((size_t)ifd0 + 2 > w->n) return 0; /* libexif loads nothing either */
    if (mn_push(w, stack, &sp, ifd0) < 0) return -1;
    unsigned n0 = rd16(w, ifd0);
    if ((size_t)ifd0 + 2 + 12u * n0 + 4 <= w->n) {
        uint32_t ifd1 = rd32(w, ifd0 + 2 + 12u * n0);
        if (ifd1 && mn_push(w, stack, &sp, ifd1) < 0) return -1;
    }

    while (sp > 0) {
        size_t off = stack[--sp];
        size_t cnt = rd16(w, off);
        size_t fit = (w->n - off - 2) / 12;
        if (cnt > fit) cnt = fit;
        for (size_t i = 0; i < cnt; i++) {
            if (++w->entries > WALK_MAX_ENTRIES) return -1;
            size_t p = off + 2 + 12 * i;
            unsigned tag = rd16(w, p);
            if (tag == TAG_MAKER_NOTE) {
                w->d[p] = w->d[p + 1] = TAG_RENAMED & 0xff; /* same in both byte orders */
                renamed++;
                w->found++;
            } else if (tag == TAG_EXIF_IFD || tag == TAG_GPS_IFD || tag == TAG_INTEROP_IFD) {
                uint32_t o = rd32(w, p + 8);
                if (mn_push(w, stack, &sp, o) < 0) return -1;
            }
        }
    }
    return renamed;
}

/* Renaming changes bytes that another (overlapping, crafted) IFD may read as a count or a
 * pointer, so passes repeat until one renames nothing. Returns 0 when the data is clean,
 * -1 when the limits were hit (then the blob must not be given to libexif). */
static int mn_neutralize(uint8_t *tiff, size_t n, int *found)
{
    mn_walk *w = calloc(1, sizeof *w);
    int rc = -1;
    if (!w) return -2;
    w->d = tiff;
    w->n = n;
    w->le = tiff[0] == 'I';
    for (int pass = 0; pass < WALK_MAX_PASSES; pass++) {
        int r = mn_pass(w);
        if (r < 0) break;
        if (r == 0) {
            rc = 0;
            break;
        }
    }
    *found = w->found;
    free(w);
    return rc;
}

/* The bytes to give libexif: NULL with *n = 0 when the blob has no recognisable header. */
static ex_rc blob_prepare(const uint8_t *blob, size_t len, uint8_t **buf, size_t *n, int *truncated)
{
    size_t skip = 0, take;
    *buf = NULL;
    *n = 0;
    *truncated = 0;
    if (len >= 6 && memcmp(blob, exif_header, 6) == 0) {
        skip = 6;
    } else if (!(len >= 4 &&
                 ((memcmp(blob, "II*\0", 4) == 0) || (memcmp(blob, "MM\0*", 4) == 0)))) {
        return EX_OK;
    }
    take = len - skip;
    if (take > EXIF_MAX_BLOB - 6) {
        take = EXIF_MAX_BLOB - 6;
        *truncated = 1;
    }
    /* libexif needs the 8-byte TIFF header to find IFD0. */
    if (take < 8) return EX_OK;
    uint8_t *b = malloc(6 + take);
    if (!b) return EX_ENOMEM;
    memcpy(b, exif_header, 6);
    memcpy(b + 6, blob + skip, take);
    *buf = b;
    *n = 6 + take;
    return EX_OK;
}

/* ---- libexif glue --------------------------------------------------------------------- */

typedef struct log_state {
    int corrupt;
    int no_memory;
} log_state;

static void on_exif_log(ExifLog *log, ExifLogCode code, const char *domain, const char *format,
                        va_list args, void *data)
{
    log_state *st = data;
    if (code == EXIF_LOG_CODE_CORRUPT_DATA) st->corrupt = 1;
    if (code == EXIF_LOG_CODE_NO_MEMORY) st->no_memory = 1;
}

/* Entry e holds at least idx+1 values of its format (libexif sizes data from the format and
 * component count, but a zero-size entry must not be read). */
static int entry_has(const ExifEntry *e, unsigned idx)
{
    unsigned fs = exif_format_get_size(e->format);
    return e->data && fs && e->components > idx && e->size >= (idx + 1) * fs;
}

static int entry_uint(const ExifEntry *e, ExifByteOrder o, unsigned idx, uint32_t *v)
{
    if (!entry_has(e, idx)) return 0;
    switch (e->format) {
    case EXIF_FORMAT_BYTE:
        *v = e->data[idx];
        return 1;
    case EXIF_FORMAT_SHORT:
        *v = exif_get_short(e->data + 2 * idx, o);
        return 1;
    case EXIF_FORMAT_LONG:
        *v = exif_get_long(e->data + 4 * idx, o);
        return 1;
    default:
        return 0;
    }
}

/* Rational part idx as num/den (signed formats give signed values). */
static int entry_ratio(const ExifEntry *e, ExifByteOrder o, unsigned idx, double *num, double *den)
{
    if (!entry_has(e, idx)) return 0;
    if (e->format == EXIF_FORMAT_RATIONAL) {
        ExifRational r = exif_get_rational(e->data + 8 * idx, o);
        *num = r.numerator;
        *den = r.denominator;
        return 1;
    }
    if (e->format == EXIF_FORMAT_SRATIONAL) {
        ExifSRational r = exif_get_srational(e->data + 8 * idx, o);
        *num = r.numerator;
        *den = r.denominator;
        return 1;
    }
    return 0;
}

static void entry_text(ExifData *ed, ExifIfd ifd, ExifTag tag, char *out, size_t cap)
{
    ExifEntry *e = exif_content_get_entry(ed->ifd[ifd], tag);
    out[0] = '\0';
    if (e && e->data) text_copy(out, cap, e->data, e->size);
}

static int two_digits(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') return 0;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* "YYYY:MM:DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS". '-' in the date and 'T' as the separator
 * are accepted too: off-spec but unambiguous. Blank placeholders ("    :  :     :  :  "), zeros
 * and out-of-range fields give "": a wrong time is worse than none in a dispute. */
static void datetime_convert(const char *raw, char out[20])
{
    int y1, y2, mo, d, h, mi, s;
    out[0] = '\0';
    if (strlen(raw) < 19) return;
    if (!two_digits(raw, &y1) || !two_digits(raw + 2, &y2) || !two_digits(raw + 5, &mo) ||
        !two_digits(raw + 8, &d) || !two_digits(raw + 11, &h) || !two_digits(raw + 14, &mi) ||
        !two_digits(raw + 17, &s))
        return;
    if (!(raw[4] == ':' || raw[4] == '-') || raw[7] != raw[4]) return;
    if (!(raw[10] == ' ' || raw[10] == 'T') || raw[13] != ':' || raw[16] != ':') return;
    if (y1 * 100 + y2 < 1800 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return;
    memcpy(out, raw, 19);
    out[4] = out[7] = '-';
    out[10] = 'T';
    out[19] = '\0';
}

/* Degrees from a GPSLatitude/GPSLongitude entry; see exif_gps in the header for the rule. */
static int gps_coord(const ExifEntry *e, ExifByteOrder o, const ExifEntry *ref, char neg_ref,
                     char pos_ref, double max, double *out)
{
    double parts[3] = {0, 0, 0}, num, den;
    if (!e || !entry_ratio(e, o, 0, &num, &den) || den == 0) return 0;
    for (unsigned i = 0; i < 3 && entry_ratio(e, o, i, &num, &den); i++) {
        if (den == 0) {
            if (num != 0) return 0;
            continue; /* 0/0: unset */
        }
        parts[i] = num / den;
    }
    double v = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0;
    if (ref && ref->data && ref->size > 0 && ref->data[0]) {
        char c = (char)ref->data[0];
        if (c == neg_ref || c == neg_ref + 32)
            v = -v;
        else if (!(c == pos_ref || c == pos_ref + 32))
            return 0;
    }
    if (!isfinite(v) || fabs(v) > max) return 0;
    *out = v;
    return 1;
}

static void gps_read(ExifData *ed, ExifByteOrder o, exif_gps *g)
{
    ExifContent *c = ed->ifd[EXIF_IFD_GPS];
    ExifEntry *lat = exif_content_get_entry(c, EXIF_TAG_GPS_LATITUDE);
    ExifEntry *lon = exif_content_get_entry(c, EXIF_TAG_GPS_LONGITUDE);
    double la, lo;
    memset(g, 0, sizeof *g);
    g->present = lat || lon;
    if (gps_coord(lat, o, exif_content_get_entry(c, EXIF_TAG_GPS_LATITUDE_REF), 'S', 'N', 90,
                  &la) &&
        gps_coord(lon, o, exif_content_get_entry(c, EXIF_TAG_GPS_LONGITUDE_REF), 'W', 'E', 180,
                  &lo)) {
        g->valid = 1;
        g->lat = la;
        g->lon = lo;
    }
}

static const char *ifd_key(ExifIfd ifd)
{
    switch (ifd) {
    case EXIF_IFD_0:
        return "IFD0";
    case EXIF_IFD_1:
        return "IFD1";
    case EXIF_IFD_EXIF:
        return "EXIF";
    case EXIF_IFD_GPS:
        return "GPS";
    case EXIF_IFD_INTEROPERABILITY:
        return "Interoperability";
    default:
        return "Other";
    }
}

/* One tag's value for `all`. NULL only when out of memory. */
static json_t *entry_json(ExifEntry *e, ExifByteOrder o)
{
    char buf[512];
    uint32_t u;
    double num, den;
    if (e->components == 1) {
        if (entry_uint(e, o, 0, &u)) return json_integer(u);
        if (e->format == EXIF_FORMAT_SSHORT && entry_has(e, 0))
            return json_integer(exif_get_sshort(e->data, o));
        if (e->format == EXIF_FORMAT_SLONG && entry_has(e, 0))
            return json_integer(exif_get_slong(e->data, o));
        if (entry_ratio(e, o, 0, &num, &den)) {
            if (den != 0) return json_real(num / den);
            snprintf(buf, sizeof buf, "%.0f/0", num);
            return json_string(buf);
        }
    }
    if (e->format == EXIF_FORMAT_ASCII) {
        text_copy(buf, sizeof buf, e->data, e->data ? e->size : 0);
        return json_string(buf);
    }
    char raw[sizeof buf];
    exif_entry_get_value(e, raw, sizeof raw);
    raw[sizeof raw - 1] = '\0';
    text_copy(buf, sizeof buf, (const uint8_t *)raw, strlen(raw));
    return json_string(buf);
}

static ex_rc build_all(ExifData *ed, ExifByteOrder o, json_t **all_out, int *count)
{
    json_t *all = json_object();
    int total = 0;
    if (!all) return EX_ENOMEM;
    for (int i = 0; i < EXIF_IFD_COUNT; i++) {
        ExifContent *c = ed->ifd[i];
        if (!c || c->count == 0) continue;
        json_t *obj = json_object();
        if (!obj || json_object_set_new(all, ifd_key((ExifIfd)i), obj) != 0) goto nomem;
        for (unsigned k = 0; k < c->count; k++) {
            ExifEntry *e = c->entries[k];
            if (!e) continue;
            char name_buf[16];
            const char *name = exif_tag_get_name_in_ifd(e->tag, (ExifIfd)i);
            if (!name) {
                snprintf(name_buf, sizeof name_buf, "Tag0x%04x", (unsigned)e->tag);
                name = name_buf;
            }
            json_t *v = entry_json(e, o);
            if (!v || json_object_set_new(obj, name, v) != 0) goto nomem;
        }
        /* Counted from the object: a repeated tag must not count twice. */
        total += (int)json_object_size(obj);
    }
    *all_out = all;
    *count = total;
    return EX_OK;
nomem:
    json_decref(all);
    return EX_ENOMEM;
}

ex_rc exif_read(const uint8_t *blob, size_t len, exif_info *out, ex_error *e)
{
    exif_info info;
    uint8_t *buf = NULL;
    size_t n = 0;
    ExifData *ed = NULL;
    ExifLog *log = NULL;
    log_state ls = {0, 0};
    ex_rc rc;

    if (!out || (!blob && len > 0))
        return ex_fail(e, EX_EINVAL, "exif_bad_call", "exif_read: no output or no blob");
    memset(&info, 0, sizeof info);

    if (len > 0) {
        rc = blob_prepare(blob, len, &buf, &n, &info.truncated);
        if (rc != EX_OK) goto nomem;
        if (!buf) info.damaged = 1;
    }
    if (buf) {
        int r = mn_neutralize(buf + 6, n - 6, &info.has_maker_note);
        if (r == -2) goto nomem;
        if (r < 0) {
            info.damaged = 1;
            free(buf);
            buf = NULL;
        }
        info.has_maker_note = info.has_maker_note > 0;
    }
    if (buf) {
        ed = exif_data_new();
        log = exif_log_new();
        if (!ed || !log) goto nomem;
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_set_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
        exif_log_set_func(log, on_exif_log, &ls);
        exif_data_log(ed, log);
        exif_data_load_data(ed, buf, (unsigned int)n);
        if (ls.no_memory) goto nomem;
        info.damaged |= ls.corrupt;

        ExifByteOrder o = exif_data_get_byte_order(ed);
        entry_text(ed, EXIF_IFD_0, EXIF_TAG_MAKE, info.make, sizeof info.make);
        entry_text(ed, EXIF_IFD_0, EXIF_TAG_MODEL, info.model, sizeof info.model);
        entry_text(ed, EXIF_IFD_0, EXIF_TAG_SOFTWARE, info.software, sizeof info.software);
        char raw[32];
        entry_text(ed, EXIF_IFD_EXIF, EXIF_TAG_DATE_TIME_ORIGINAL, raw, sizeof raw);
        datetime_convert(raw, info.datetime_original);
        uint32_t ori;
        ExifEntry *oe = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
        if (oe && entry_uint(oe, o, 0, &ori) && ori >= 1 && ori <= 8) info.orientation = (int)ori;
        gps_read(ed, o, &info.gps);
        if (build_all(ed, o, &info.all, &info.entry_count) != EX_OK) goto nomem;
    } else {
        info.all = json_object();
        if (!info.all) goto nomem;
    }

    if (ed) exif_data_unref(ed);
    if (log) exif_log_unref(log);
    free(buf);
    *out = info;
    return EX_OK;

nomem:
    if (ed) exif_data_unref(ed);
    if (log) exif_log_unref(log);
    free(buf);
    json_decref(info.all);
    return ex_fail(e, EX_ENOMEM, "exif_no_memory", "out of memory while reading EXIF");
}

void exif_info_release(exif_info *info)
{
    if (!info) return;
    json_decref(info->all);
    memset(info, 0, sizeof *info);
}

/* ---- XMP ------------------------------------------------------------------------------ */

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decodes XML text s[0..n) (entities) and appends it, cleaned, to out. */
static void xml_text_append(char *out, size_t cap, size_t *used, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t plain = amp ? (size_t)(amp - (s + i)) : n - i;
        text_append(out, cap, used, (const uint8_t *)s + i, plain);
        i += plain;
        if (i >= n) break;
        /* s[i] == '&' */
        const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
        uint8_t enc[4];
        size_t el = 0;
        if (semi) {
            const char *ent = s + i + 1;
            size_t elen = (size_t)(semi - ent);
            if (elen == 3 && !memcmp(ent, "amp", 3))
                enc[el++] = '&';
            else if (elen == 2 && !memcmp(ent, "lt", 2))
                enc[el++] = '<';
            else if (elen == 2 && !memcmp(ent, "gt", 2))
                enc[el++] = '>';
            else if (elen == 4 && !memcmp(ent, "quot", 4))
                enc[el++] = '"';
            else if (elen == 4 && !memcmp(ent, "apos", 4))
                enc[el++] = '\'';
            else if (elen >= 2 && ent[0] == '#') {
                unsigned long cp = 0;
                int hex = ent[1] == 'x' || ent[1] == 'X', ok = 1;
                size_t k = hex ? 2 : 1;
                if (k >= elen) ok = 0;
                for (; ok && k < elen; k++) {
                    char c = ent[k];
                    int dgt = c >= '0' && c <= '9'          ? c - '0'
                              : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                              : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                            : -1;
                    if (dgt < 0)
                        ok = 0;
                    else
                        cp = cp * (hex ? 16 : 10) + (unsigned long)dgt;
                    if (cp > 0x10ffff) ok = 0;
                }
                if (ok && cp > 0 && !(cp >= 0xd800 && cp <= 0xdfff)) {
                    if (cp < 0x80) {
                        enc[el++] = (uint8_t)cp;
                    } else if (cp < 0x800) {
                        enc[el++] = (uint8_t)(0xc0 | cp >> 6);
                        enc[el++] = (uint8_t)(0x80 | (cp & 0x3f));
                    } else if (cp < 0x10000) {
                        enc[el++] = (uint8_t)(0xe0 | cp >> 12);
                        enc[el++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                        enc[el++] = (uint8_t)(0x80 | (cp & 0x3f));
                    } else {
                        enc[el++] = (uint8_t)(0xf0 | cp >> 18);
                        enc[el++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                        enc[el++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                        enc[el++] = (uint8_t)(0x80 | (cp & 0x3f));
                    }
                }
            }
        }
        if (el) {
            text_append(out, cap, used, enc, el);
            i = (size_t)(semi - s) + 1;
        } else {
            text_append(out, cap, used, (const uint8_t *)"?", 1);
            i++;
        }
    }
}

/* Finds the next property `prefix:local` at or after *pos, as an attribute (prefix:local="v")
 * or an element (<prefix:local ...>v</prefix:local>, also with v inside a nested rdf:Alt/li).
 * On a hit, writes the decoded value to out (may be "" for an empty element), moves *pos past
 * it and returns 1; returns 0 when there are no more. */
static int xmp_next_prop(const char *s, size_t n, size_t *pos, const char *local, char *out,
                         size_t cap)
{
    size_t ll = strlen(local);
    size_t i = *pos;
    while (i + ll <= n) {
        const char *hit = memmem(s + i, n - i, local, ll);
        if (!hit) break;
        size_t at = (size_t)(hit - s), end = at + ll;
        i = at + 1;
        /* Must be a whole local name after a prefix. */
        if (at < 2 || s[at - 1] != ':' || (end < n && is_name_char(s[end]))) continue;
        size_t p = at - 1;
        while (p > 0 && is_name_char(s[p - 1]))
            p--;
        if (p == at - 1 || p == 0) continue; /* empty prefix, or nothing before it */
        char before = s[p - 1];
        size_t used = 0;
        out[0] = '\0';
        size_t k = end;
        if (is_space(before)) {
            /* attribute */
            while (k < n && is_space(s[k]))
                k++;
            if (k >= n || s[k] != '=') continue;
            k++;
            while (k < n && is_space(s[k]))
                k++;
            if (k >= n || (s[k] != '"' && s[k] != '\'')) continue;
            char q = s[k++];
            const char *close = memchr(s + k, q, n - k);
            if (!close) return 0;
            xml_text_append(out, cap, &used, s + k, (size_t)(close - (s + k)));
            *pos = (size_t)(close - s) + 1;
        } else if (before == '<') {
            /* element start tag; skip to its '>' and take the first text inside */
            const char *gt = memchr(s + k, '>', n - k);
            if (!gt) return 0;
            k = (size_t)(gt - s) + 1;
            if (gt > s + end && gt[-1] == '/') {
                *pos = k;
                goto found;
            }
            for (int depth = 0; depth < 4 && k < n; depth++) {
                size_t t = k;
                while (t < n && is_space(s[t]))
                    t++;
                if (t < n && s[t] == '<') {
                    if (t + 1 < n && s[t + 1] == '/') break; /* closed with no text */
                    const char *g2 = memchr(s + t, '>', n - t);
                    if (!g2) break;
                    k = (size_t)(g2 - s) + 1;
                    continue;
                }
                const char *lt = memchr(s + k, '<', n - k);
                size_t stop = lt ? (size_t)(lt - s) : n;
                xml_text_append(out, cap, &used, s + k, stop - k);
                k = stop;
                break;
            }
            *pos = k;
        } else {
            continue;
        }
    found:
        text_trim_right(out);
        return 1;
    }
    *pos = n;
    return 0;
}

void exif_scan_xmp(const char *xmp, size_t len, xmp_info *out)
{
    char v[256];
    size_t pos;
    memset(out, 0, sizeof *out);
    if (!xmp || len == 0) return;

    pos = 0;
    /* The first non-empty one; the value is cleaned straight into its field so a cut falls
     * on a character boundary. */
    while (
        xmp_next_prop(xmp, len, &pos, "CreatorTool", out->creator_tool, sizeof out->creator_tool))
        if (out->creator_tool[0]) break;

    pos = 0;
    size_t used = 0;
    while (xmp_next_prop(xmp, len, &pos, "softwareAgent", v, sizeof v)) {
        if (!v[0]) continue;
        /* Distinct values only: Photoshop writes one History event per save. */
        int dup = 0;
        const char *h = out->history_agents;
        size_t vl = strlen(v);
        while (*h) {
            const char *sep = strstr(h, "; ");
            size_t hl = sep ? (size_t)(sep - h) : strlen(h);
            if (hl == vl && memcmp(h, v, vl) == 0) dup = 1;
            if (!sep) break;
            h = sep + 2;
        }
        if (dup) continue;
        size_t need = (used ? 2 : 0) + vl;
        if (used + need + 1 > sizeof out->history_agents) break; /* keep whole names only */
        if (used) {
            memcpy(out->history_agents + used, "; ", 2);
            used += 2;
        }
        memcpy(out->history_agents + used, v, vl);
        used += vl;
        out->history_agents[used] = '\0';
    }

    pos = 0;
    out->has_gps = xmp_next_prop(xmp, len, &pos, "GPSLatitude", v, sizeof v);
}

/* ---- editors -------------------------------------------------------------------------- */

static const struct editor {
    const char *needle; /* lowercase */
    const char *name;
    int whole_word;
} editors[] = {
    /* More specific names first: "Adobe Photoshop Lightroom", "Photoshop Camera Raw". */
    {"lightroom", "Lightroom", 0},
    {"camera raw", "Camera Raw", 0},
    {"photoshop express", "Photoshop Express", 0},
    {"photoshop", "Photoshop", 0},
    {"imageready", "ImageReady", 0},
    {"gimp", "GIMP", 1},
    {"snapseed", "Snapseed", 0},
    {"meitu", "Meitu", 0},
    {"picsart", "PicsArt", 0},
    {"pixelmator", "Pixelmator", 0},
    {"affinity", "Affinity", 0},
    {"paint.net", "Paint.NET", 0},
    {"canva", "Canva", 1},
    {"vsco", "VSCO", 1},
    {"facetune", "Facetune", 0},
    {"picasa", "Picasa", 0},
    {"capture one", "Capture One", 0},
    {"dxo", "DxO", 1},
    {"luminar", "Luminar", 0},
    {"darktable", "darktable", 0},
    {"rawtherapee", "RawTherapee", 0},
    {"acdsee", "ACDSee", 0},
    {"paintshop", "PaintShop Pro", 0},
    {"paint shop pro", "PaintShop Pro", 0},
    {"photo-paint", "Corel PHOTO-PAINT", 0},
    {"photoscape", "PhotoScape", 0},
    {"fotor", "Fotor", 1},
    {"photodirector", "PhotoDirector", 0},
    {"polarr", "Polarr", 0},
    {"photopea", "Photopea", 0},
    {"krita", "Krita", 1},
    {"airbrush", "AirBrush", 1},
    {"beautyplus", "BeautyPlus", 0},
    {"youcam", "YouCam", 0},
    /* A Mac viewer/converter, but with retouching tools: it rewrites pixels. */
    {"graphicconverter", "GraphicConverter", 0},
};

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

const char *exif_editor_name(const char *software)
{
    if (!software) return NULL;
    size_t n = strnlen(software, 1024);
    for (size_t k = 0; k < sizeof editors / sizeof editors[0]; k++) {
        const struct editor *ed = &editors[k];
        size_t nl = strlen(ed->needle);
        for (size_t i = 0; i + nl <= n; i++) {
            size_t j = 0;
            while (j < nl && lower(software[i + j]) == ed->needle[j])
                j++;
            if (j < nl) continue;
            if (ed->whole_word && ((i > 0 && is_alnum(software[i - 1])) ||
                                   (i + nl < n && is_alnum(software[i + nl]))))
                continue;
            return ed->name;
        }
    }
    return NULL;
}
