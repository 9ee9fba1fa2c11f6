/* analyze.c - decode, record metadata, store derivatives (see analyze.h). */
#include "exhibit/analyze.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/exif.h"
#include "exhibit/hash.h"
#include "exhibit/log.h"
#include "exhibit/util.h"

#define XMP_KEEP_MAX (64 * 1024)
#define DECODE_WAIT_S 20

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* OffsetTimeOriginal ("+08:00") from the recorded tags, in seconds; 0 and *found=0 if absent. */
static long offset_seconds(const json_t *exif_all, int *found)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(exif_all, "EXIF"), "OffsetTimeOriginal"));
    int h, m;
    char sign;
    *found = 0;
    if (!s || sscanf(s, "%c%2d:%2d", &sign, &h, &m) != 3 || (sign != '+' && sign != '-') ||
        h > 14 || m > 59)
        return 0;
    *found = 1;
    return (sign == '-' ? -1 : 1) * (h * 3600L + m * 60L);
}

static json_t *build_meta(const image_result *ir, const exif_info *ex, const xmp_info *xi)
{
    json_t *exif = json_object();
    json_object_set_new(exif, "make", str_or_null(ex->make));
    json_object_set_new(exif, "model", str_or_null(ex->model));
    json_object_set_new(exif, "datetime_original", str_or_null(ex->datetime_original));
    const char *off =
        json_string_value(json_object_get(json_object_get(ex->all, "EXIF"), "OffsetTimeOriginal"));
    json_object_set_new(exif, "offset_time_original", str_or_null(off));
    json_object_set_new(exif, "orientation",
                        ex->orientation ? json_integer(ex->orientation) : json_null());
    /* PNGs carry the writing program in a text chunk rather than EXIF. */
    const char *software = ex->software[0] ? ex->software : ir->software_text;
    json_object_set_new(exif, "software", str_or_null(software));
    json_object_set_new(exif, "gps",
                        ex->gps.present && ex->gps.valid
                            ? json_pack("{s:f, s:f}", "lat", ex->gps.lat, "lon", ex->gps.lon)
                            : json_null());

    json_t *xmp = json_object();
    json_object_set_new(xmp, "present", json_boolean(ir->xmp != NULL));
    json_object_set_new(xmp, "creator_tool", str_or_null(xi->creator_tool));
    json_object_set_new(xmp, "history_agents", str_or_null(xi->history_agents));
    json_object_set_new(xmp, "has_gps", json_boolean(xi->has_gps));
    /* The packet itself is kept (editors write their names there) within a bound; it can
     * hold a location, so it is redacted like GPS. */
    if (ir->xmp) {
        /* Packets may be padded with NULs (HEIF) or be UTF-16 (older Adobe writers): keep the
         * text up to the first NUL when it is valid UTF-8, otherwise say it was unreadable. */
        size_t n = strnlen(ir->xmp, ir->xmp_len);
        json_t *packet = n <= XMP_KEEP_MAX ? json_stringn(ir->xmp, n) : NULL;
        if (packet)
            json_object_set_new(xmp, "packet", packet);
        else
            json_object_set_new(xmp, "packet_unreadable", json_true());
    }

    const char *editor = exif_editor_name(software);
    if (!editor) editor = exif_editor_name(xi->creator_tool);
    if (!editor && xi->history_agents[0]) editor = exif_editor_name(xi->history_agents);

    json_t *flags = json_array();
    if (editor) json_array_append_new(flags, json_string("edited_software"));
    if (!ex->make[0] && !ex->model[0])
        json_array_append_new(flags, json_string("no_camera_metadata"));
    if (ex->gps.present || xi->has_gps) json_array_append_new(flags, json_string("gps_present"));

    json_t *all = ex->all ? json_deep_copy(ex->all) : json_object();
    return json_pack("{s:o, s:o, s:o, s:b, s:b, s:o, s:i, s:o, s:b}", "exif", exif, "exif_all", all,
                     "xmp", xmp, "has_iptc", ir->has_iptc, "has_icc", ir->has_icc, "editor",
                     str_or_null(editor), "applied_orientation", ir->orientation, "flags", flags,
                     "exif_damaged", ex->damaged);
}

static ex_rc take_slot(app *a, ex_error *e)
{
    if (!a->decode_slots_ready) return EX_OK;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DECODE_WAIT_S;
    while (sem_timedwait(&a->decode_slots, &until) != 0) {
        if (errno == EINTR) continue;
        return ex_fail(e, EX_EBUSY, "overloaded",
                       "the server is busy decoding other images; retry in a few seconds");
    }
    return EX_OK;
}

/* PDQ as Meta's reference hasher computes it (nearest-neighbour to 512x512 when larger), on
 * the upright pixels, so the hex can be exchanged with other PDQ systems. The preview is the
 * full image up to 1600 px; beyond that it samples the preview instead of the full image. */
static ex_rc reference_pdq(const float *luma, int w, int h, phash_pdq *out, ex_error *e)
{
    if (w <= 512 && h <= 512) return phash_pdq_compute(luma, w, h, out, e);
    float *small = malloc(512 * 512 * sizeof *small);
    if (!small) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    ex_rc rc = phash_luma_resize(luma, w, h, small, 512, 512, PHASH_RESIZE_NEAREST, e);
    if (!rc) rc = phash_pdq_compute(small, 512, 512, out, e);
    free(small);
    return rc;
}

ex_rc analyze_file(app *a, const char *path, analysis *out, ex_error *e)
{
    image_limits lim;
    image_result ir = {0};
    exif_info ex = {0};
    xmp_info xi = {0};
    ex_rc rc;
    image_limits_default(&lim);
    lim.max_width = a->cfg.max_width;
    lim.max_height = a->cfg.max_height;
    lim.max_pixels = a->cfg.max_pixels;
    if ((rc = take_slot(a, e))) return rc;
    rc = image_process(path, &lim, &ir, e);
    if (a->decode_slots_ready) sem_post(&a->decode_slots);
    if (rc) return rc;

    if (ir.exif && exif_read(ir.exif, ir.exif_len, &ex, NULL) != EX_OK) {
        /* Unreadable EXIF is recorded as absent, not a refusal: the pixels are fine. */
        memset(&ex, 0, sizeof ex);
        ex.damaged = 1;
    }
    if (ir.xmp) exif_scan_xmp(ir.xmp, ir.xmp_len, &xi);

    memset(out, 0, sizeof *out);
    if (sha256_hex(ir.thumb, ir.thumb_len, out->thumb_sha) ||
        sha256_hex(ir.preview, ir.preview_len, out->preview_sha)) {
        rc = ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
        goto done;
    }
    out->meta = build_meta(&ir, &ex, &xi);
    if (!out->meta) {
        rc = ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
        goto done;
    }
    phash_pdq pdq;
    if ((rc = reuse_sig_compute(ir.luma, ir.luma_w, ir.luma_h, &out->sig, e)) ||
        (rc = reference_pdq(ir.luma, ir.luma_w, ir.luma_h, &pdq, e)))
        goto done;
    json_object_set_new(out->meta, "hashes", analyze_hashes_json(&pdq, out->sig));
    out->type = ir.type;
    out->width = ir.width;
    out->height = ir.height;
    out->luma = ir.luma;
    out->luma_w = ir.luma_w;
    out->luma_h = ir.luma_h;
    out->thumb = ir.thumb;
    out->thumb_len = ir.thumb_len;
    out->preview = ir.preview;
    out->preview_len = ir.preview_len;
    ir.luma = NULL;
    ir.thumb = ir.preview = NULL;
done:
    exif_info_release(&ex);
    image_result_release(&ir);
    return rc;
}

ex_rc analysis_store(app *a, const analysis *an, ex_error *e)
{
    char hex[65];
    ex_rc rc = blobstore_put(&a->bs, an->thumb, an->thumb_len, hex, e);
    if (!rc) rc = blobstore_put(&a->bs, an->preview, an->preview_len, hex, e);
    return rc;
}

json_t *analyze_hashes_json(const phash_pdq *pdq, const reuse_sig *sig)
{
    char pdq_hex[65], p64[17];
    phash_pdq_hex(pdq, pdq_hex);
    phash_dct64_hex(reuse_sig_phash64(sig), p64);
    return json_pack("{s:s, s:i, s:s}", "pdq", pdq_hex, "pdq_quality", pdq->quality, "phash64",
                     p64);
}

void analysis_release(analysis *an)
{
    reuse_sig_free(an->sig);
    json_decref(an->meta);
    free(an->luma);
    free(an->thumb);
    free(an->preview);
    memset(an, 0, sizeof *an);
}

json_t *analyze_case_flags(const json_t *meta, time_t delivered)
{
    json_t *flags = json_deep_copy(json_object_get(meta, "flags"));
    if (!json_is_array(flags)) {
        json_decref(flags);
        flags = json_array();
    }
    const json_t *exif = json_object_get(meta, "exif");
    const char *dto = json_string_value(json_object_get(exif, "datetime_original"));
    time_t local;
    if (delivered > 0 && dto && util_time_parse_local(dto, &local) == 0) {
        int have_off;
        long off = offset_seconds(json_object_get(meta, "exif_all"), &have_off);
        /* Without a recorded offset the camera's clock is local time somewhere between
         * UTC-12 and UTC+14: flag only what no time zone can explain. */
        time_t latest_utc = have_off ? local - off : local + 12 * 3600;
        if (latest_utc < delivered)
            json_array_append_new(flags, json_string("taken_before_delivery"));
    }
    return flags;
}

void analyze_redact_location(json_t *meta)
{
    json_t *exif = json_object_get(meta, "exif");
    if (json_is_object(exif)) json_object_del(exif, "gps");
    json_t *all = json_object_get(meta, "exif_all");
    if (json_is_object(all)) json_object_del(all, "GPS");
    json_t *xmp = json_object_get(meta, "xmp");
    if (json_is_object(xmp)) json_object_del(xmp, "packet");
}
