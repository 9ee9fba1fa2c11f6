/* bench_intake.c - what one upload costs in-process, beside a bare libvips baseline.
 *
 *   bench_intake [--runs N] [--big FILE] [--extra DIR] [--extra-runs N] [--accepted OUT]
 *                [--tsv OUT] [--tmp DIR] PHOTO_DIR
 *   bench_intake --rss [--big FILE] [--tmp DIR] PHOTO_DIR
 *
 * Intake is the server's own code path with no HTTP in front: intake_new, the bytes fed in
 * 32 KiB pieces (what libmicrohttpd hands a request), intake_file_end, intake_commit (decode
 * with limits, EXIF, both derivatives stored, original committed, database transaction,
 * response JSON), intake_free. The baseline on the same bytes, in the same run, interleaved:
 * vips_thumbnail_buffer to 1600 px (size=down, as intake never upscales) rendered to memory,
 * plus SHA-256 of the bytes.
 *
 * Every run uses fresh data directories (content addressing would turn a second upload of the
 * same bytes into a lookup). A warm-up pass decides which files the server accepts; only
 * those are measured. Medians are per image over the runs; a row's ratio is the median of its
 * images' ratios. Wall time is what a client waits; process CPU (every libvips worker
 * included) is shown too because the machine is shared.
 *
 * Beside each intake, its steps are timed one by one through the same public calls (in a
 * second data directory), and the steps image_process adds to the baseline are replayed on
 * the baseline's own 1600 px render, with the alternatives worth proposing. fsync and
 * fdatasync are counted and timed by wrappers defined here: the executable's definitions take
 * precedence over libc's for our objects and for libsqlite3. --accepted writes the accepted
 * corpus paths (for bench_http.py), --tsv the per-image medians.
 *
 * --rss intakes the corpus once (then the --big file) in a fresh process and prints VmHWM.
 * Progress goes to stdout; libvips warnings go to stderr. Exit 1 only when nothing could be
 * measured; a missed target is reported, not failed.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#include "exhibit/app.h"
#include "exhibit/blobstore.h"
#include "exhibit/cases.h"
#include "exhibit/db.h"
#include "exhibit/exif.h"
#include "exhibit/hash.h"
#include "exhibit/image.h"
#include "exhibit/intake.h"
#include "exhibit/keys.h"
#include "exhibit/log.h"
#include "exhibit/util.h"

#define MAX_RUNS 50
#define MAX_SAMPLES 1024
#define MAX_FILE_BYTES (100u << 20) /* the default image limit: larger is refused anyway */
#define FEED_CHUNK (32 * 1024)
#define TARGET_RATIO 1.3
#define PREVIEW_Q 85 /* image.c's derivative quality, for the replayed encodes */

/* ---- fsync accounting ------------------------------------------------------------------- */

/* [0] fsync (blobstore, SQLite's directory syncs), [1] fdatasync (SQLite's WAL commits). */
static _Atomic long sync_calls[2];
static _Atomic long long sync_ns[2];

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int timed_sync(int which, long nr, int fd)
{
    long long t0 = mono_ns();
    long r = syscall(nr, fd);
    atomic_fetch_add(&sync_ns[which], mono_ns() - t0);
    atomic_fetch_add(&sync_calls[which], 1);
    return (int)r;
}

/* These replace libc's for the whole process (blobstore.c and SQLite alike). */
int fsync(int fd)
{
    return timed_sync(0, SYS_fsync, fd);
}

int fdatasync(int fd)
{
    return timed_sync(1, SYS_fdatasync, fd);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static double now_ms(void)
{
    return (double)mono_ns() / 1e6;
}

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (n > 0); the input is left in its order. */
static double median(const double *v, size_t n)
{
    double tmp[MAX_SAMPLES > MAX_RUNS ? MAX_SAMPLES : MAX_RUNS];
    if (n == 0) return 0;
    if (n > sizeof tmp / sizeof *tmp) n = sizeof tmp / sizeof *tmp;
    memcpy(tmp, v, n * sizeof *v);
    qsort(tmp, n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* A "VmHWM:" style line of /proc/self/status in MiB, or -1. */
static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double mib = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) {
            mib = strtod(line + klen, NULL) / 1024.0;
            break;
        }
    fclose(f);
    return mib;
}

/* 1-minute load average, or -1: printed with progress because the machine is shared. */
static double load_1m(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static const char *type_label(image_type t)
{
    switch (t) {
    case IMAGE_JPEG:
        return "JPEG";
    case IMAGE_PNG:
        return "PNG";
    case IMAGE_WEBP:
        return "WebP";
    case IMAGE_HEIC:
        return "HEIC";
    case IMAGE_AVIF:
        return "AVIF";
    default:
        return "other";
    }
}

/* ---- the images --------------------------------------------------------------------------- */

typedef enum { SET_CORPUS, SET_BIG, SET_EXTRA } sample_set;

/* Per-run measurements of one image; medians are taken at report time. */
typedef struct sample {
    char name[256];
    char path[1024];
    sample_set set;
    image_type type;
    uint8_t *bytes;
    size_t len;
    int width, height;
    int accepted;
    char refusal[48];
    int nruns;
    double in_ms[MAX_RUNS], in_cpu[MAX_RUNS], base_ms[MAX_RUNS], base_cpu[MAX_RUNS];
    double fs_n[MAX_RUNS], fs_ms[MAX_RUNS], fds_n[MAX_RUNS], fds_ms[MAX_RUNS];
    double base_render[MAX_RUNS], base_sha[MAX_RUNS];
    /* intake's steps one by one */
    int nparts;
    double stage[MAX_RUNS], proc[MAX_RUNS], exif[MAX_RUNS], stores[MAX_RUNS], commit[MAX_RUNS];
    /* image_process's extra steps replayed on the baseline render */
    int nreplay;
    double enc_opt[MAX_RUNS], enc_plain[MAX_RUNS], thumb_now[MAX_RUNS], thumb_reduce[MAX_RUNS];
    double enc_opt_cpu[MAX_RUNS], enc_plain_cpu[MAX_RUNS], thumb_now_cpu[MAX_RUNS];
    double thumb_reduce_cpu[MAX_RUNS], luma[MAX_RUNS];
    double opt_bytes, plain_bytes; /* preview JPEG size with and without optimize_coding */
    int thumb_same_size;           /* the two thumbnail methods gave the same dimensions */
    double thumb_diff; /* their mean absolute pixel difference (0..255), -1 if not compared */
} sample;

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return -1;
    }
    uint8_t *p = malloc((size_t)st.st_size);
    if (!p || fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(p);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = p;
    *len = (size_t)st.st_size;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every regular file of dir (sorted by name; the corpus' own notes, *.md, *.tsv and
 * *.json, skipped) to the sample list. Returns how many were added, -1 if dir is unreadable. */
static int add_dir(sample *s, size_t *n, const char *dir, sample_set set)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[MAX_SAMPLES];
    size_t k = 0;
    struct dirent *de;
    while ((de = readdir(d)) && k < MAX_SAMPLES) {
        if (de->d_name[0] == '.' || ends_with(de->d_name, ".md") || ends_with(de->d_name, ".tsv") ||
            ends_with(de->d_name, ".json"))
            continue;
        if (!(names[k] = strdup(de->d_name))) break;
        k++;
    }
    closedir(d);
    qsort(names, k, sizeof *names, cmp_name);
    int added = 0;
    for (size_t i = 0; i < k; i++) {
        if (*n < MAX_SAMPLES) {
            sample *x = &s[*n];
            memset(x, 0, sizeof *x);
            snprintf(x->name, sizeof x->name, "%s", names[i]);
            snprintf(x->path, sizeof x->path, "%s/%s", dir, names[i]);
            x->set = set;
            if (read_file(x->path, &x->bytes, &x->len) == 0) {
                x->type =
                    image_sniff(x->bytes, x->len < IMAGE_SNIFF_BYTES ? x->len : IMAGE_SNIFF_BYTES);
                (*n)++;
                added++;
            }
        }
        free(names[i]);
    }
    return added;
}

/* ---- a data directory with a case to upload to ----------------------------------------- */

typedef struct bench_env {
    char dir[512];
    app a;
    key_info uploader;
    case_ref c;
} bench_env;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void env_close(bench_env *v)
{
    if (v->a.db) db_close(v->a.db);
    if (v->a.decode_slots_ready) sem_destroy(&v->a.decode_slots);
    if (v->dir[0]) nftw(v->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    memset(v, 0, sizeof *v);
}

/* A fresh data directory set up as `exhibit serve` does, a platform key that opens a case
 * delivered yesterday, and the buyer key that uploads to it. */
static int env_open(bench_env *v, const char *parent)
{
    ex_error e = {{0}, {0}};
    char path[1024], secret[KEY_SECRET_LEN], delivered[UTIL_TIME_LEN];
    key_info platform;
    json_t *body = NULL, *out = NULL;
    memset(v, 0, sizeof *v);
    snprintf(v->dir, sizeof v->dir, "%s/exhibit-bench-XXXXXX", parent);
    if (!mkdtemp(v->dir)) {
        fprintf(stderr, "bench_intake: cannot create a directory under %s: %s\n", parent,
                strerror(errno));
        v->dir[0] = '\0';
        return -1;
    }
    config_defaults(&v->a.cfg);
    snprintf(v->a.cfg.data_dir, sizeof v->a.cfg.data_dir, "%s", v->dir);
    snprintf(path, sizeof path, "%s/exhibit.db", v->dir);
    if (blobstore_open(&v->a.bs, v->dir, NULL, &e) || db_open(path, &v->a.db, &e)) goto fail;
    if (sem_init(&v->a.decode_slots, 0, v->a.cfg.max_inflight_images) == 0)
        v->a.decode_slots_ready = 1;
    if (keys_create(v->a.db, ROLE_PLATFORM, NULL, "bench", secret, &platform, &e) ||
        keys_create(v->a.db, ROLE_BUYER, "b-bench", "bench", secret, &v->uploader, &e))
        goto fail;
    util_time_format(time(NULL) - 86400, delivered);
    body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "order_id", "BENCH-0001", "buyer_id",
                     "b-bench", "seller_id", "s-bench", "reason", "damaged", "category",
                     "electronics", "delivered_at", delivered);
    if (!body) {
        ex_fail(&e, EX_ENOMEM, "out_of_memory", "out of memory");
        goto fail;
    }
    if (cases_create(&v->a, body, &platform, &out, &e) ||
        cases_lookup(&v->a, json_string_value(json_object_get(out, "case_id")), &v->uploader, &v->c,
                     &e))
        goto fail;
    json_decref(body);
    json_decref(out);
    return 0;
fail:
    fprintf(stderr, "bench_intake: setting up %s failed: %s: %s\n", v->dir, e.code, e.message);
    json_decref(body);
    json_decref(out);
    env_close(v);
    return -1;
}

/* ---- the two measured paths --------------------------------------------------------------- */

static ex_rc feed(intake *u, const sample *s, ex_error *e)
{
    for (size_t off = 0; off < s->len; off += FEED_CHUNK) {
        size_t n = s->len - off < FEED_CHUNK ? s->len - off : FEED_CHUNK;
        ex_rc rc = intake_file_data(u, s->bytes + off, n, e);
        if (rc) return rc;
    }
    return EX_OK;
}

/* One upload of s's bytes through the server's intake. Records wall/CPU ms and the syncs into
 * run slot k (when k >= 0), and on the first success the stored dimensions. */
static ex_rc intake_once(bench_env *v, sample *s, int k, ex_error *e)
{
    json_t *items = NULL;
    int created = 0;
    long n0 = atomic_load(&sync_calls[0]), d0 = atomic_load(&sync_calls[1]);
    long long ns0 = atomic_load(&sync_ns[0]), dns0 = atomic_load(&sync_ns[1]);
    double t0 = now_ms(), c0 = cpu_ms();
    intake *u = intake_new(&v->a, &v->uploader, &v->c);
    if (!u) return ex_fail(e, EX_ENOMEM, "out_of_memory", "out of memory");
    ex_rc rc = intake_file_begin(u, image_media_type(s->type), e);
    if (!rc) rc = feed(u, s, e);
    if (!rc) rc = intake_file_end(u, e);
    if (!rc) rc = intake_commit(u, &items, &created, NULL, e);
    intake_free(u);
    if (k >= 0) {
        s->in_ms[k] = now_ms() - t0;
        s->in_cpu[k] = cpu_ms() - c0;
        s->fs_n[k] = (double)(atomic_load(&sync_calls[0]) - n0);
        s->fs_ms[k] = (double)(atomic_load(&sync_ns[0]) - ns0) / 1e6;
        s->fds_n[k] = (double)(atomic_load(&sync_calls[1]) - d0);
        s->fds_ms[k] = (double)(atomic_load(&sync_ns[1]) - dns0) / 1e6;
    }
    if (!rc && !s->width) {
        const json_t *it = json_array_get(items, 0);
        s->width = (int)json_integer_value(json_object_get(it, "width"));
        s->height = (int)json_integer_value(json_object_get(it, "height"));
    }
    json_decref(items);
    return rc;
}

/* The baseline: a 1600 px shrink-on-load thumbnail of the bytes, rendered to memory, plus
 * their SHA-256. Records into run slot k when k >= 0. When keep is non-NULL the rendered
 * pixels stay there as a memory image (caller unrefs). */
static int baseline_once(sample *s, int k, VipsImage **keep)
{
    VipsImage *im = NULL;
    size_t n = 0;
    char hex[65];
    double t0 = now_ms(), c0 = cpu_ms();
    if (vips_thumbnail_buffer(s->bytes, s->len, &im, IMAGE_PREVIEW_MAX, "height", IMAGE_PREVIEW_MAX,
                              "size", VIPS_SIZE_DOWN, NULL))
        goto fail;
    void *px = vips_image_write_to_memory(im, &n);
    if (!px) goto fail;
    double t1 = now_ms();
    if (sha256_hex(s->bytes, s->len, hex)) {
        g_free(px);
        goto fail;
    }
    double t2 = now_ms();
    if (k >= 0) {
        s->base_ms[k] = t2 - t0;
        s->base_cpu[k] = cpu_ms() - c0;
        s->base_render[k] = t1 - t0;
        s->base_sha[k] = t2 - t1;
    }
    if (keep) {
        *keep = vips_image_new_from_memory_copy(px, n, vips_image_get_width(im),
                                                vips_image_get_height(im), vips_image_get_bands(im),
                                                vips_image_get_format(im));
    }
    g_free(px);
    g_object_unref(im);
    return 0;
fail:
    fprintf(stderr, "bench_intake: baseline failed on %s: %s\n", s->name, vips_error_buffer());
    vips_error_clear();
    if (im) g_object_unref(im);
    return -1;
}

/* ---- the breakdown pass ----------------------------------------------------------------- */

/* intake's steps one by one, through the same public calls intake and analyze_file make. */
static int parts_once(bench_env *v, sample *s, int run)
{
    ex_error e = {{0}, {0}};
    blob_writer w;
    image_limits lim;
    image_result ir = {0};
    exif_info ex = {0};
    xmp_info xi = {0};
    char th[65], pv[65];
    int ok = -1;
    image_limits_default(&lim);
    lim.max_width = v->a.cfg.max_width;
    lim.max_height = v->a.cfg.max_height;
    lim.max_pixels = v->a.cfg.max_pixels;

    double t0 = now_ms();
    if (blob_writer_open(&v->a.bs, &w, &e)) goto out_noblob;
    for (size_t off = 0; off < s->len; off += FEED_CHUNK) {
        size_t n = s->len - off < FEED_CHUNK ? s->len - off : FEED_CHUNK;
        if (blob_writer_write(&w, s->bytes + off, n, &e)) goto out;
    }
    if (blob_writer_finish(&w, &e)) goto out;
    double t1 = now_ms();
    if (image_process(w.tmp_path, &lim, &ir, &e)) goto out;
    double t2 = now_ms();
    if (ir.exif && exif_read(ir.exif, ir.exif_len, &ex, NULL) != EX_OK) memset(&ex, 0, sizeof ex);
    if (ir.xmp) exif_scan_xmp(ir.xmp, ir.xmp_len, &xi);
    double t3 = now_ms();
    if (blobstore_put(&v->a.bs, ir.thumb, ir.thumb_len, th, &e) ||
        blobstore_put(&v->a.bs, ir.preview, ir.preview_len, pv, &e))
        goto out;
    double t4 = now_ms();
    if (blob_writer_commit(&v->a.bs, &w, &e)) goto out;
    double t5 = now_ms();
    s->stage[run] = t1 - t0;
    s->proc[run] = t2 - t1;
    s->exif[run] = t3 - t2;
    s->stores[run] = t4 - t3;
    s->commit[run] = t5 - t4;
    ok = 0;
out:
    blob_writer_abort(&w);
out_noblob:
    if (ok) fprintf(stderr, "bench_intake: breakdown of %s: %s: %s\n", s->name, e.code, e.message);
    exif_info_release(&ex);
    image_result_release(&ir);
    return ok;
}

/* Encodes as image.c does (Q85, strip, optionally optimize_coding); wall and CPU ms, and the
 * encoded size in *bytes when non-NULL. */
static int jpeg_save_ms(VipsImage *im, int optimize, double *ms, double *cpu, double *bytes)
{
    void *buf = NULL;
    size_t n = 0;
    double t0 = now_ms(), c0 = cpu_ms();
    int r = vips_jpegsave_buffer(im, &buf, &n, "Q", PREVIEW_Q, "strip", TRUE, "optimize_coding",
                                 optimize, NULL);
    *ms = now_ms() - t0;
    *cpu = cpu_ms() - c0;
    if (bytes) *bytes = (double)n;
    g_free(buf);
    return r;
}

/* Renders a 256 px thumbnail of px either as image.c does or by one lanczos3 reduce, and
 * encodes it; *out keeps the rendered pixels for comparison. */
static int thumb_ms(VipsImage *px, int by_reduce, VipsImage **out, double *ms, double *cpu)
{
    VipsImage *t = NULL;
    double em, ec, t0 = now_ms(), c0 = cpu_ms();
    const int w = vips_image_get_width(px), h = vips_image_get_height(px);
    const double f = (double)(w > h ? w : h) / IMAGE_THUMB_MAX;
    int r;
    if (!by_reduce)
        r = vips_thumbnail_image(px, &t, IMAGE_THUMB_MAX, "height", IMAGE_THUMB_MAX, "size",
                                 VIPS_SIZE_DOWN, "no_rotate", TRUE, NULL);
    else if (f > 1)
        r = vips_reduce(px, &t, f, f, "kernel", VIPS_KERNEL_LANCZOS3, NULL);
    else
        r = vips_copy(px, &t, NULL);
    if (r) return -1;
    *out = vips_image_copy_memory(t);
    g_object_unref(t);
    if (!*out || jpeg_save_ms(*out, TRUE, &em, &ec, NULL)) return -1;
    *ms = now_ms() - t0;
    *cpu = cpu_ms() - c0;
    return 0;
}

/* What image_process does beyond the baseline, replayed on the baseline's rendered pixels
 * (3-band uchar renders only): the preview JPEG encode with and without optimize_coding, the
 * 256 px thumbnail as image.c makes it (vips_thumbnail_image of the memory image, then encode)
 * and by one lanczos3 vips_reduce instead (same size? how different?), and the float
 * luminance plane. Returns 0 when measured, 1 when skipped (not RGB), -1 on failure. */
static int replay_once(sample *s, int run)
{
    VipsImage *px = NULL, *th = NULL, *rd = NULL, *d = NULL, *ad = NULL;
    float *luma = NULL;
    int ok = -1;
    if (baseline_once(s, -1, &px) || !px) goto out;
    if (vips_image_get_bands(px) != 3 || vips_image_get_format(px) != VIPS_FORMAT_UCHAR) {
        ok = 1;
        goto out;
    }
    if (jpeg_save_ms(px, TRUE, &s->enc_opt[run], &s->enc_opt_cpu[run], &s->opt_bytes) ||
        jpeg_save_ms(px, FALSE, &s->enc_plain[run], &s->enc_plain_cpu[run], &s->plain_bytes))
        goto out;
    /* alternate which thumbnail goes first */
    int first = run % 2;
    for (int k = 0; k < 2; k++) {
        int by_reduce = k ^ first;
        if (by_reduce ? thumb_ms(px, 1, &rd, &s->thumb_reduce[run], &s->thumb_reduce_cpu[run])
                      : thumb_ms(px, 0, &th, &s->thumb_now[run], &s->thumb_now_cpu[run]))
            goto out;
    }
    s->thumb_same_size = vips_image_get_width(th) == vips_image_get_width(rd) &&
                         vips_image_get_height(th) == vips_image_get_height(rd);
    double diff = -1;
    if (s->thumb_same_size && !vips_subtract(th, rd, &d, NULL) && !vips_abs(d, &ad, NULL))
        vips_avg(ad, &diff, NULL);
    s->thumb_diff = diff;
    const int w = vips_image_get_width(px), h = vips_image_get_height(px);
    const uint8_t *p = (const uint8_t *)vips_image_get_data(px);
    const size_t npx = (size_t)w * (size_t)h;
    double t0 = now_ms();
    if (!(luma = malloc(npx * sizeof *luma))) goto out;
    for (size_t i = 0; i < npx; i++, p += 3)
        luma[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
    s->luma[run] = now_ms() - t0;
    volatile float sink = luma[npx / 2]; /* keeps the loop from being optimised away */
    (void)sink;
    ok = 0;
out:
    if (ok < 0) {
        fprintf(stderr, "bench_intake: replay of %s failed: %s\n", s->name, vips_error_buffer());
        vips_error_clear();
    }
    free(luma);
    if (ad) g_object_unref(ad);
    if (d) g_object_unref(d);
    if (rd) g_object_unref(rd);
    if (th) g_object_unref(th);
    if (px) g_object_unref(px);
    return ok;
}

/* ---- report --------------------------------------------------------------------------------- */

static double s_in(const sample *s)
{
    return median(s->in_ms, (size_t)s->nruns);
}

static double s_base(const sample *s)
{
    return median(s->base_ms, (size_t)s->nruns);
}

/* Which measured samples a row or sum covers. */
typedef struct selector {
    int set_mask;    /* 1 << sample_set */
    image_type type; /* IMAGE_UNKNOWN: any */
    int min_mp;      /* stored width*height at least this many megapixels */
} selector;

static int selected(const sample *x, selector sel)
{
    return x->accepted && x->nruns > 0 && (sel.set_mask & (1 << x->set)) &&
           (sel.type == IMAGE_UNKNOWN || x->type == sel.type) &&
           (double)x->width * x->height >= sel.min_mp * 1e6;
}

typedef struct row_stats {
    size_t n;
    double in_ms, base_ms, ratio, sum_ratio, cpu_ratio;
} row_stats;

static row_stats row_of(const sample *s, size_t n, selector sel)
{
    row_stats r = {0, 0, 0, 0, 0, 0};
    static double in[MAX_SAMPLES], base[MAX_SAMPLES], ratio[MAX_SAMPLES], cratio[MAX_SAMPLES];
    double sum_in = 0, sum_base = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(&s[i], sel)) continue;
        in[r.n] = s_in(&s[i]);
        base[r.n] = s_base(&s[i]);
        ratio[r.n] = base[r.n] > 0 ? in[r.n] / base[r.n] : 0;
        double bc = median(s[i].base_cpu, (size_t)s[i].nruns);
        cratio[r.n] = bc > 0 ? median(s[i].in_cpu, (size_t)s[i].nruns) / bc : 0;
        sum_in += in[r.n];
        sum_base += base[r.n];
        r.n++;
    }
    if (!r.n) return r;
    r.in_ms = median(in, r.n);
    r.base_ms = median(base, r.n);
    r.ratio = median(ratio, r.n);
    r.cpu_ratio = median(cratio, r.n);
    r.sum_ratio = sum_base > 0 ? sum_in / sum_base : 0;
    return r;
}

static void print_row(const char *label, row_stats r, const char *note)
{
    if (!r.n) {
        printf("  %-28s %4s  (no accepted file of this kind)\n", label, "0");
        return;
    }
    printf("  %-28s %4zu %9.1f %9.1f %7.2f %8.2f %8.2f  %s%s\n", label, r.n, r.in_ms, r.base_ms,
           r.ratio, r.sum_ratio, r.cpu_ratio, r.ratio > TARGET_RATIO ? "TARGET MISSED" : "ok",
           note);
}

typedef enum { CNT_RUNS, CNT_PARTS, CNT_REPLAY } count_kind;

/* Sum over the selected samples of the per-image median of one per-run array (its offset in
 * sample), over as many runs as that pass recorded; *count gets how many contributed. */
static double sum_medians(const sample *s, size_t n, selector sel, size_t off, count_kind k,
                          size_t *count)
{
    double sum = 0;
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(&s[i], sel)) continue;
        int runs = k == CNT_RUNS ? s[i].nruns : k == CNT_PARTS ? s[i].nparts : s[i].nreplay;
        if (runs <= 0) continue;
        sum += median((const double *)((const char *)&s[i] + off), (size_t)runs);
        c++;
    }
    if (count) *count = c;
    return sum;
}

#define SUM(field, kind) sum_medians(s, n, sel, offsetof(sample, field), kind, NULL)

static void line(const char *what, double ms, double of)
{
    printf("      %-58s %9.1f  %5.1f%%\n", what, ms, of > 0 ? 100 * ms / of : 0);
}

static void line2(const char *what, double ms, double cpu, double of)
{
    printf("      %-58s %9.1f  %5.1f%%  cpu %7.1f\n", what, ms, of > 0 ? 100 * ms / of : 0, cpu);
}

/* Median over the selected images of (intake - replayed saving) / baseline: what the ratio
 * would be if image.c made the thumbnail by vips_reduce (and, with no_optimize, also saved
 * the preview without optimize_coding). Images without replay numbers keep their ratio. */
static double projected_ratio(const sample *s, size_t n, selector sel, int no_optimize)
{
    static double q[MAX_SAMPLES];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const sample *x = &s[i];
        if (!selected(x, sel)) continue;
        double in = s_in(x);
        size_t r = (size_t)x->nreplay;
        if (r) {
            in -= median(x->thumb_now, r) - median(x->thumb_reduce, r);
            if (no_optimize) in -= median(x->enc_opt, r) - median(x->enc_plain, r);
        }
        q[k++] = in / s_base(x);
    }
    return k ? median(q, k) : 0;
}

/* Where intake's time goes, as sums over images of per-image medians. Steps were timed in the
 * same runs as intake, image by image, so "rest" (intake minus the steps) is comparable. */
static void print_breakdown(const sample *s, size_t n, selector sel, const char *title)
{
    size_t cnt = 0, rcnt = 0;
    double in = sum_medians(s, n, sel, offsetof(sample, in_ms), CNT_RUNS, &cnt);
    if (in <= 0 || !cnt) return;
    double base = SUM(base_ms, CNT_RUNS);
    double stage = SUM(stage, CNT_PARTS), proc = SUM(proc, CNT_PARTS);
    double exif = SUM(exif, CNT_PARTS), stores = SUM(stores, CNT_PARTS);
    double commit = SUM(commit, CNT_PARTS);
    double fsn = SUM(fs_n, CNT_RUNS), fsms = SUM(fs_ms, CNT_RUNS);
    double fdn = SUM(fds_n, CNT_RUNS), fdms = SUM(fds_ms, CNT_RUNS);

    printf("\n  %s: sums over %zu image(s) of per-image medians, wall ms (%% of intake)\n", title,
           cnt);
    printf("    %-60s %9.1f\n", "intake total", in);
    printf("    %-60s %9.1f  (intake/baseline %.2f)\n", "baseline total", base, in / base);
    line("baseline: vips_thumbnail_buffer 1600 + render", SUM(base_render, CNT_RUNS), in);
    line("baseline: SHA-256 of the bytes", SUM(base_sha, CNT_RUNS), in);
    printf("    intake step by step (same public calls, timed beside each intake):\n");
    line("stage upload: 32 KiB writes + SHA-256 + fsync", stage, in);
    line("image_process: probe, decode, preview + thumb encode, luma", proc, in);
    line("exif_read + exif_scan_xmp", exif, in);
    line("store thumb + preview (hash, write, fsync file + 2 dirs each)", stores, in);
    line("commit original (rename, fsync 2 dirs)", commit, in);
    line("rest: DB transaction + audit + meta/item JSON (by difference)",
         in - stage - proc - exif - stores - commit, in);
    printf("    syncs inside intake (counted by this tool's fsync/fdatasync wrappers):\n");
    printf("      %-58s %9.1f  %5.1f%%  %.1f calls/image\n", "fsync (blob files, directories)",
           fsms, 100 * fsms / in, fsn / (double)cnt);
    printf("      %-58s %9.1f  %5.1f%%  %.1f calls/image\n", "fdatasync (SQLite WAL commit)", fdms,
           100 * fdms / in, fdn / (double)cnt);
    double opt = sum_medians(s, n, sel, offsetof(sample, enc_opt), CNT_REPLAY, &rcnt);
    if (!rcnt) return;
    printf("    image_process beyond the baseline, replayed on the baseline render "
           "(%zu RGB image(s), %% of their intake):\n",
           rcnt);
    /* the replay percentages are of the intake of the same images */
    double rin = 0;
    for (size_t i = 0; i < n; i++)
        if (selected(&s[i], sel) && s[i].nreplay > 0) rin += s_in(&s[i]);
    line2("preview JPEG encode Q85 strip optimize_coding (as image.c)", opt,
          SUM(enc_opt_cpu, CNT_REPLAY), rin);
    line2("  the same without optimize_coding", SUM(enc_plain, CNT_REPLAY),
          SUM(enc_plain_cpu, CNT_REPLAY), rin);
    line2("thumb as image.c: vips_thumbnail_image(memory) + encode", SUM(thumb_now, CNT_REPLAY),
          SUM(thumb_now_cpu, CNT_REPLAY), rin);
    line2("  thumb by one vips_reduce lanczos3 + encode (proposal)", SUM(thumb_reduce, CNT_REPLAY),
          SUM(thumb_reduce_cpu, CNT_REPLAY), rin);
    line("luma plane (float per preview pixel)", SUM(luma, CNT_REPLAY), rin);
    size_t same = 0, cmp = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!selected(&s[i], sel) || s[i].nreplay <= 0) continue;
        cmp++;
        same += s[i].thumb_same_size;
        if (s[i].thumb_diff > worst) worst = s[i].thumb_diff;
    }
    double ob = 0, pb = 0;
    for (size_t i = 0; i < n; i++)
        if (selected(&s[i], sel) && s[i].nreplay > 0) {
            ob += s[i].opt_bytes;
            pb += s[i].plain_bytes;
        }
    printf("      the two thumbnails: same size for %zu of %zu, mean |difference| at most %.2f "
           "of 255\n",
           same, cmp, worst);
    if (pb > 0)
        printf("      previews without optimize_coding are %.1f%% larger (%.0f KiB vs %.0f KiB "
               "in all)\n",
               100 * (pb - ob) / ob, pb / 1024, ob / 1024);
    printf("      projected median ratio (intake minus the replayed saving, over the same "
           "baseline):\n"
           "        thumb by vips_reduce: %.2f; and preview without optimize_coding: %.2f\n",
           projected_ratio(s, n, sel, 0), projected_ratio(s, n, sel, 1));
}

static void write_tsv(const sample *s, size_t n, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_intake: cannot write %s\n", path);
        return;
    }
    fprintf(f, "file\tset\ttype\twidth\theight\tbytes\tintake_ms\tbaseline_ms\tratio\tintake_cpu_ms"
               "\tbaseline_cpu_ms\tfsync_ms\tfdatasync_ms\tstage_ms\timage_process_ms\texif_ms"
               "\tstores_ms\tcommit_ms\tthumb_now_ms\tthumb_reduce_ms\tpreview_enc_ms\n");
    for (size_t i = 0; i < n; i++) {
        const sample *x = &s[i];
        if (!x->accepted || !x->nruns) continue;
        size_t r = (size_t)x->nruns, p = (size_t)x->nparts, q = (size_t)x->nreplay;
        fprintf(f,
                "%s\t%s\t%s\t%d\t%d\t%zu\t%.2f\t%.2f\t%.3f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f"
                "\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n",
                x->name,
                x->set == SET_EXTRA ? "extra"
                : x->set == SET_BIG ? "12mp"
                                    : "corpus",
                type_label(x->type), x->width, x->height, x->len, s_in(x), s_base(x),
                s_in(x) / s_base(x), median(x->in_cpu, r), median(x->base_cpu, r),
                median(x->fs_ms, r), median(x->fds_ms, r), median(x->stage, p), median(x->proc, p),
                median(x->exif, p), median(x->stores, p), median(x->commit, p),
                median(x->thumb_now, q), median(x->thumb_reduce, q), median(x->enc_opt, q));
    }
    fclose(f);
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_intake [--runs N] [--big FILE] [--extra DIR] [--extra-runs N]\n"
                    "                    [--accepted OUT] [--tsv OUT] [--tmp DIR] PHOTO_DIR\n"
                    "       bench_intake --rss [--big FILE] [--tmp DIR] PHOTO_DIR\n");
}

/* Peak RSS of a process that starts like the server and takes the corpus in once. */
static int run_rss(sample *s, size_t n, const char *tmp)
{
    bench_env v;
    double init_hwm = status_mib("VmHWM:");
    if (env_open(&v, tmp)) return 1;
    size_t ok = 0, tried = 0;
    int big = -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i].set == SET_BIG) {
            big = (int)i;
            continue;
        }
        ex_error e = {{0}, {0}};
        tried++;
        if (intake_once(&v, &s[i], -1, &e) == EX_OK) ok++;
    }
    size_t held = 0;
    for (size_t i = 0; i < n; i++)
        held += s[i].len;
    printf("  (every figure includes the %.1f MiB of file bytes this tool holds in memory)\n",
           (double)held / (1 << 20));
    printf("  after start-up (libvips, data dir, database)     VmHWM %7.1f MiB\n", init_hwm);
    printf("  after intake of the corpus, one pass, %zu of %zu files stored:\n", ok, tried);
    printf("    peak RSS                                        VmHWM %7.1f MiB\n",
           status_mib("VmHWM:"));
    printf("    resident now                                    VmRSS %7.1f MiB\n",
           status_mib("VmRSS:"));
    if (big >= 0) {
        ex_error e = {{0}, {0}};
        int r = intake_once(&v, &s[big], -1, &e);
        printf("  after the 12 MP JPEG too (%s)                  VmHWM %7.1f MiB\n",
               r ? e.code : "stored", status_mib("VmHWM:"));
    }
    env_close(&v);
    return 0;
}

/* Baseline and intake of one image in run slot k, in the given order, then its steps and the
 * replay when parts is non-NULL. Returns 0 when both main measurements succeeded. */
static int measure_one(bench_env *v, bench_env *parts, sample *x, int base_first, int r)
{
    ex_error fe = {{0}, {0}};
    int k = x->nruns, bad = 0;
    if (base_first) bad |= baseline_once(x, k, NULL);
    bad |= intake_once(v, x, k, &fe) != EX_OK;
    if (!base_first) bad |= baseline_once(x, k, NULL);
    if (bad) {
        fprintf(stderr, "bench_intake: %s failed in run %d: %s %s\n", x->name, r + 1, fe.code,
                fe.message);
        return -1;
    }
    x->nruns++;
    if (parts) {
        if (parts_once(parts, x, x->nparts) == 0) x->nparts++;
        if (replay_once(x, x->nreplay) == 0) x->nreplay++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 5, extra_runs = 3, rss = 0;
    const char *big = NULL, *extra = NULL, *accepted_out = NULL, *tsv = NULL, *dir = NULL;
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--rss") == 0) {
            rss = 1;
            continue;
        }
        if (o[0] != '-' && !dir) {
            dir = o;
            continue;
        }
        if (!v || o[0] != '-') {
            usage();
            return 2;
        }
        i++;
        if (strcmp(o, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(o, "--extra-runs") == 0)
            extra_runs = atoi(v);
        else if (strcmp(o, "--big") == 0)
            big = v;
        else if (strcmp(o, "--extra") == 0)
            extra = v;
        else if (strcmp(o, "--accepted") == 0)
            accepted_out = v;
        else if (strcmp(o, "--tsv") == 0)
            tsv = v;
        else if (strcmp(o, "--tmp") == 0)
            tmp = v;
        else {
            usage();
            return 2;
        }
    }
    if (!dir || runs < 1 || runs > MAX_RUNS || extra_runs < 1 || extra_runs > MAX_RUNS) {
        usage();
        return 2;
    }

    ex_error e = {{0}, {0}};
    log_set_quiet(1);
    if (image_global_init(argv[0], &e)) {
        fprintf(stderr, "bench_intake: %s\n", e.message);
        return 1;
    }
    int rc = 1;
    size_t n = 0;
    sample *s = calloc(MAX_SAMPLES, sizeof *s);
    if (!s) goto out;
    if (add_dir(s, &n, dir, SET_CORPUS) <= 0) {
        fprintf(stderr, "bench_intake: no readable files in %s\n", dir);
        goto out;
    }
    if (big) {
        if (n < MAX_SAMPLES && read_file(big, &s[n].bytes, &s[n].len) == 0) {
            snprintf(s[n].name, sizeof s[n].name, "%s", big);
            snprintf(s[n].path, sizeof s[n].path, "%s", big);
            s[n].set = SET_BIG;
            s[n].type = image_sniff(s[n].bytes,
                                    s[n].len < IMAGE_SNIFF_BYTES ? s[n].len : IMAGE_SNIFF_BYTES);
            n++;
        } else {
            fprintf(stderr, "bench_intake: cannot read --big %s\n", big);
        }
    }
    if (rss) {
        rc = run_rss(s, n, tmp);
        goto out;
    }
    if (extra && add_dir(s, &n, extra, SET_EXTRA) <= 0)
        printf("  optional set %s: no readable files, skipped\n", extra);

    /* Warm-up pass: page cache, libvips' lazily built tables, SQLite; decides acceptance. */
    bench_env v, parts;
    printf("  [warm-up] %zu files through intake and baseline once, deciding what is accepted\n",
           n);
    fflush(stdout);
    if (env_open(&v, tmp)) goto out;
    size_t measured = 0;
    for (size_t i = 0; i < n; i++) {
        ex_error fe = {{0}, {0}};
        if (intake_once(&v, &s[i], -1, &fe) != EX_OK) {
            snprintf(s[i].refusal, sizeof s[i].refusal, "%s", fe.code);
            continue;
        }
        if (baseline_once(&s[i], -1, NULL)) {
            snprintf(s[i].refusal, sizeof s[i].refusal, "baseline_failed");
            continue;
        }
        s[i].accepted = 1;
        measured++;
    }
    env_close(&v);
    if (!measured) {
        fprintf(stderr, "bench_intake: no file was accepted; nothing to measure\n");
        goto out;
    }

    size_t per_type[8] = {0}, refused = 0, acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].set != SET_CORPUS) continue;
        if (s[i].accepted) {
            per_type[s[i].type]++;
            acc++;
        } else {
            refused++;
        }
    }
    printf("  corpus %s: %zu accepted (JPEG %zu, PNG %zu, WebP %zu, HEIC %zu, AVIF %zu); "
           "%zu not accepted, excluded:\n",
           dir, acc, per_type[IMAGE_JPEG], per_type[IMAGE_PNG], per_type[IMAGE_WEBP],
           per_type[IMAGE_HEIC], per_type[IMAGE_AVIF], refused);
    for (size_t i = 0; i < n; i++)
        if (s[i].set == SET_CORPUS && !s[i].accepted)
            printf("    - %-62s %s\n", s[i].name, s[i].refusal);
    for (size_t i = 0; i < n; i++)
        if (s[i].set == SET_BIG)
            printf("  12 MP JPEG %s: %dx%d, %zu bytes, %s\n", s[i].name, s[i].width, s[i].height,
                   s[i].len, s[i].accepted ? "accepted" : s[i].refusal);
    if (extra) {
        size_t ea = 0, et = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i].set == SET_EXTRA) {
                et++;
                ea += s[i].accepted;
            }
        printf("  optional set %s: %zu of %zu accepted\n", extra, ea, et);
    }
    if (accepted_out) {
        FILE *f = fopen(accepted_out, "w");
        if (f) {
            for (size_t i = 0; i < n; i++)
                if (s[i].set == SET_CORPUS && s[i].accepted) fprintf(f, "%s\n", s[i].path);
            fclose(f);
        } else {
            fprintf(stderr, "bench_intake: cannot write %s\n", accepted_out);
        }
    }
    fflush(stdout);

    /* Timed runs, each in fresh data directories. Per image: baseline and intake in
     * alternating order (neither always runs on caches the other just warmed), then the steps
     * and the replay, so all of an image's numbers share the machine's load of that moment. */
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        if (env_open(&v, tmp)) goto out;
        if (env_open(&parts, tmp)) {
            env_close(&v);
            goto out;
        }
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i].accepted && s[i].set != SET_EXTRA)
                done += measure_one(&v, &parts, &s[i], (r + (int)i) % 2 == 0, r) == 0;
        env_close(&parts);
        env_close(&v);
        printf("  [intake] run %d/%d: %zu images, %.1f s, load average %.1f\n", r + 1, runs, done,
               (now_ms() - t0) / 1e3, load_1m());
        fflush(stdout);
    }
    for (int r = 0; extra && r < extra_runs; r++) {
        double t0 = now_ms();
        size_t done = 0;
        if (env_open(&v, tmp)) goto out;
        for (size_t i = 0; i < n; i++)
            if (s[i].accepted && s[i].set == SET_EXTRA)
                done += measure_one(&v, NULL, &s[i], (r + (int)i) % 2 == 0, r) == 0;
        env_close(&v);
        if (done)
            printf("  [optional set] run %d/%d: %zu images, %.1f s\n", r + 1, extra_runs, done,
                   (now_ms() - t0) / 1e3);
        fflush(stdout);
    }

    /* ---- the table ---- */
    const int corpus = 1 << SET_CORPUS, bigm = 1 << SET_BIG, extram = 1 << SET_EXTRA;
    printf("\n  per image: median over %d runs (wall ms). ratio = median over the images of "
           "intake/baseline;\n  sum-rat = total intake / total baseline; cpu-rat = ratio on "
           "process CPU time (all threads)\n",
           runs);
    printf("  %-28s %4s %9s %9s %7s %8s %8s  target ratio <= %.2f\n", "set", "n", "intake",
           "baseline", "ratio", "sum-rat", "cpu-rat", TARGET_RATIO);
    static const image_type types[] = {IMAGE_JPEG, IMAGE_PNG, IMAGE_WEBP, IMAGE_HEIC, IMAGE_AVIF};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        char label[64];
        snprintf(label, sizeof label, "corpus %s", type_label(types[t]));
        print_row(label, row_of(s, n, (selector){corpus, types[t], 0}), "");
    }
    for (size_t i = 0; i < n; i++)
        if (s[i].set == SET_BIG && s[i].accepted) {
            char label[64];
            snprintf(label, sizeof label, "12 MP JPEG %dx%d", s[i].width, s[i].height);
            print_row(label, row_of(s, n, (selector){bigm, IMAGE_UNKNOWN, 0}), "");
        }
    print_row("corpus photos >= 1 MP", row_of(s, n, (selector){corpus, IMAGE_UNKNOWN, 1}),
              " (subset, for insight)");
    if (extra)
        print_row("optional set", row_of(s, n, (selector){extram, IMAGE_UNKNOWN, 0}),
                  " (not in OVERALL)");
    row_stats all = row_of(s, n, (selector){corpus | bigm, IMAGE_UNKNOWN, 0});
    print_row("OVERALL corpus + 12 MP", all, "");
    printf("  overall median ratio: %.2f  %s\n", all.ratio,
           all.ratio > TARGET_RATIO ? "TARGET MISSED (target <= 1.30)" : "target met (<= 1.30)");

    printf("\n  highest ratios:\n");
    int shown[5] = {-1, -1, -1, -1, -1};
    for (int k = 0; k < 5; k++) {
        double best = -1;
        for (size_t i = 0; i < n; i++) {
            if (!selected(&s[i], (selector){corpus | bigm, IMAGE_UNKNOWN, 0})) continue;
            int seen = 0;
            for (int j = 0; j < k; j++)
                seen |= shown[j] == (int)i;
            double q = s_in(&s[i]) / s_base(&s[i]);
            if (!seen && q > best) {
                best = q;
                shown[k] = (int)i;
            }
        }
        if (shown[k] < 0) break;
        const sample *x = &s[shown[k]];
        printf("    %6.2f  %-46.46s %-4s %5dx%-5d intake %7.1f  baseline %7.1f ms\n", best, x->name,
               type_label(x->type), x->width, x->height, s_in(x), s_base(x));
    }

    printf("\n  where the time goes");
    print_breakdown(s, n, (selector){corpus, IMAGE_UNKNOWN, 0}, "corpus photos");
    print_breakdown(s, n, (selector){bigm, IMAGE_UNKNOWN, 0}, "12 MP JPEG");
    if (tsv) write_tsv(s, n, tsv);
    rc = 0;
out:
    for (size_t i = 0; s && i < n; i++)
        free(s[i].bytes);
    free(s);
    image_global_shutdown();
    return rc;
}
