/* exif.h - what a photo's EXIF and XMP say about where, when and with what it was made.
 *
 * The only module that includes libexif. Input is untrusted: the raw EXIF blob libvips hands
 * out (`exif-data`) and the XMP packet (`xmp-data`). Neither is ever rejected: damaged
 * metadata is itself evidence, so we record what can be read and flag the rest.
 *
 * Limits and choices (see src/exif.c for the reasons):
 * - At most EXIF_MAX_BLOB bytes of a blob are parsed (an APP1 segment's limit; libexif caps
 *   there too). The rest is ignored and `truncated` is set.
 * - Maker notes are never parsed: the blob is copied and the MakerNote tag renamed before
 *   libexif sees it, because libexif's maker-note parsers run on load and hold its CVEs.
 * - Tags libexif does not know are skipped, and the spec "fix-ups" libexif would apply
 *   (inventing default tags) are off: `all` holds only what the file holds.
 */
#ifndef EXHIBIT_EXIF_H
#define EXHIBIT_EXIF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "exhibit/err.h"

#define EXIF_MAX_BLOB 0xfffe /* bytes of "Exif\0\0" + TIFF data that are parsed */

/* present: the GPS IFD holds GPSLatitude or GPSLongitude (the file claims a position; "0,0"
 * counts). valid: both are computable and in range; lat/lon are then signed decimal degrees
 * (S and W negative), else 0. A rational part 0/0 is read as "unset" = 0 (seconds 0/0 in
 * Nikon D5000 files whose minutes already carry the fraction); degrees 0/0 or any x/0 with
 * x != 0 makes the position invalid. A missing Ref is taken as N/E; any other Ref than N/S
 * (E/W) makes it invalid. */
typedef struct exif_gps {
    int present;
    int valid;
    double lat, lon;
} exif_gps;

typedef struct exif_info {
    char make[64], model[64], software[128]; /* IFD0 text up to the first NUL, trailing
                                                spaces removed, invalid UTF-8 and control
                                                bytes replaced by '?'; "" if absent */
    char datetime_original[20]; /* "YYYY-MM-DDTHH:MM:SS" (camera local time, no zone), ""
                                   if absent, blank or not a plausible date */
    int orientation;            /* IFD0 Orientation 1..8; 0 if absent or out of range */
    exif_gps gps;
    json_t *all;        /* object: IFD name ("IFD0", "EXIF", "GPS", "Interoperability", "IFD1") ->
                           object of tag name -> value. Single integers/rationals are numbers,
                           text is a string, everything else libexif's readable rendering. Empty
                           IFDs are left out. Owned by the struct; never NULL after success. */
    int entry_count;    /* tags recorded across all IFDs; 0 = no usable EXIF */
    int has_maker_note; /* a MakerNote tag was present (and skipped) */
    int truncated;      /* blob was longer than EXIF_MAX_BLOB; the tail was ignored */
    int damaged;        /* libexif reported corrupt data, or the IFD structure was too
                           tangled to check for maker notes (then nothing is parsed) */
} exif_info;

/* Parses an EXIF blob: "Exif\0\0" + TIFF header + IFDs (JPEG, some WebP/HEIF) or a bare TIFF
 * header ("II*\0"/"MM\0*", PNG eXIf and most WebP/HEIF) which is prefixed here. blob may be
 * NULL when len is 0. Unrecognised or garbage bytes are not an error: the result has
 * entry_count 0 and damaged set. On success *out is filled and must be released with
 * exif_info_release; on failure *out is untouched.
 * Errors: EX_EINVAL (out is NULL, or blob NULL with len > 0: a caller bug),
 * EX_ENOMEM ("exif_no_memory"). */
ex_rc exif_read(const uint8_t *blob, size_t len, exif_info *out, ex_error *e) EX_MUST_CHECK;

/* Frees info->all and zeroes the struct; safe on a zeroed or already released struct. */
void exif_info_release(exif_info *info);

/* What an XMP packet says about the software that touched the file. Text is decoded from
 * XML (&amp; etc.), sanitised like exif_info text and truncated to fit. */
typedef struct xmp_info {
    char creator_tool[128];   /* xmp:CreatorTool (any namespace prefix), "" if absent */
    char history_agents[256]; /* distinct stEvt:softwareAgent values of xmpMM:History in
                                 document order, joined by "; " ("" if none) */
    int has_gps;              /* exif:GPSLatitude is present (attribute or element) */
} xmp_info;

/* Scans at most len bytes of xmp (need not be NUL-terminated; NULL with len 0 is fine) and
 * always fills *out. A plain text scan, not an XML parser: it finds the attribute and element
 * forms Adobe XMP writers produce and never reads outside [xmp, xmp + len). */
void exif_scan_xmp(const char *xmp, size_t len, xmp_info *out);

/* Name of a known photo editor named in a Software/CreatorTool/softwareAgent string
 * ("Photoshop", "Lightroom", "GIMP", ...), or NULL. Case-insensitive; short names must stand
 * as whole words. Returns a static string. Not editors, on purpose: camera firmware strings,
 * converters and re-encoders (QuickTime, ImageMagick, Preview), and file browsers that only
 * write metadata (Adobe Bridge: it saves keywords and ratings; a pixel edit it hosts is done
 * by Camera Raw, which names itself). The caller decides what a mismatch between the camera
 * Make and Software means. */
const char *exif_editor_name(const char *software);

#endif
