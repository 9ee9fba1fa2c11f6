/* main.c - the `exhibit` command: serve, key create, audit verify (and later subcommands).
 *
 * Exit status: 0 success, 1 the operation failed (message on stderr), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exhibit/app.h"
#include "exhibit/audit.h"
#include "exhibit/blobstore.h"
#include "exhibit/http.h"
#include "exhibit/image.h"
#include "exhibit/keys.h"
#include "exhibit/log.h"
#include "exhibit/analyze.h"
#include "exhibit/hash.h"
#include "exhibit/matcher.h"
#include "exhibit/reindex.h"
#include "exhibit/util.h"

static void usage(FILE *f)
{
    fputs("usage:\n"
          "  exhibit serve [--data DIR] [--listen HOST:PORT] [--max-body BYTES]\n"
          "                [--max-connections N] [--return-window-days N]\n"
          "                [--non-returnable CAT,CAT] [--max-pixels N] [--max-side PX]\n"
          "                [--decode-slots N]\n"
          "  exhibit key create [--data DIR] --role ROLE [--subject ID]\n"
          "  exhibit audit verify [--data DIR]\n"
          "  exhibit hash FILE...   (one JSON line per file: sha256, pdq, pdq_quality, phash64)\n"
          "  exhibit reindex [--data DIR]   (recompute reuse signatures of an older version)\n"
          "roles: admin, platform, buyer (needs --subject BUYER_ID), warehouse, mediator\n"
          "DIR defaults to ./storage\n",
          f);
}

/* A positive whole number option; prints what is wrong otherwise. */
static int opt_number(const char *opt, const char *v, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || n == 0 || n > max || v[0] == '-') {
        fprintf(stderr, "exhibit: %s wants a whole number from 1 to %llu, got '%s'\n", opt, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* Options shared by every subcommand; unknown options are a usage error. */
static int parse_opts(int argc, char **argv, ex_config *cfg, const char **role,
                      const char **subject)
{
    ex_error e = {{0}, {0}};
    unsigned long long n;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "exhibit: option %s needs a value\n", o);
            return -1;
        }
        i++;
        if (strcmp(o, "--data") == 0) {
            snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", v);
        } else if (strcmp(o, "--listen") == 0) {
            if (config_set_listen(cfg, v, &e)) {
                fprintf(stderr, "exhibit: %s\n", e.message);
                return -1;
            }
        } else if (strcmp(o, "--max-body") == 0) {
            if (opt_number(o, v, 1ull << 32, &n)) return -1;
            cfg->max_body = n;
        } else if (strcmp(o, "--max-connections") == 0) {
            if (opt_number(o, v, 10000, &n)) return -1;
            cfg->max_connections = (unsigned)n;
        } else if (strcmp(o, "--return-window-days") == 0) {
            if (opt_number(o, v, 3650, &n)) return -1;
            cfg->return_window_days = (int)n;
        } else if (strcmp(o, "--max-pixels") == 0) {
            if (opt_number(o, v, 1ull << 40, &n)) return -1;
            cfg->max_pixels = n;
        } else if (strcmp(o, "--max-side") == 0) {
            if (opt_number(o, v, 1 << 20, &n)) return -1;
            cfg->max_width = cfg->max_height = (int)n;
        } else if (strcmp(o, "--decode-slots") == 0) {
            if (opt_number(o, v, 256, &n)) return -1;
            cfg->max_inflight_images = (unsigned)n;
        } else if (strcmp(o, "--non-returnable") == 0) {
            snprintf(cfg->non_returnable, sizeof cfg->non_returnable, "%s", v);
        } else if (strcmp(o, "--role") == 0 && role) {
            *role = v;
        } else if (strcmp(o, "--subject") == 0 && subject) {
            *subject = v;
        } else {
            fprintf(stderr, "exhibit: unknown option %s\n", o);
            return -1;
        }
    }
    return 0;
}

/* Opens the data directory: blobs, temp area (cleaned), database (migrated). */
static int open_data(app *a, int *cleaned)
{
    ex_error e = {{0}, {0}};
    char path[1024];
    if (blobstore_open(&a->bs, a->cfg.data_dir, cleaned, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        return -1;
    }
    snprintf(path, sizeof path, "%s/exhibit.db", a->cfg.data_dir);
    if (db_open(path, &a->db, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        return -1;
    }
    return 0;
}

static int cmd_key_create(int argc, char **argv)
{
    app a = {0};
    const char *role = NULL, *subject = NULL;
    config_defaults(&a.cfg);
    if (parse_opts(argc, argv, &a.cfg, &role, &subject)) return 2;
    if (!role) {
        fprintf(stderr, "exhibit: key create needs --role\n");
        return 2;
    }
    log_set_quiet(1);
    if (open_data(&a, NULL)) return 1;
    char secret[KEY_SECRET_LEN];
    key_info k;
    ex_error e = {{0}, {0}};
    int rc = 0;
    if (keys_create(a.db, key_role_parse(role), subject, "cli", secret, &k, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        rc = e.code[0] && strcmp(e.code, "database_error") ? 2 : 1;
    } else {
        printf("%s\n", secret);
        fprintf(stderr, "created %s key %lld%s%s (shown once; only its hash is stored)\n",
                key_role_name(k.role), (long long)k.id, k.subject[0] ? " for " : "", k.subject);
    }
    db_close(a.db);
    return rc;
}

static int cmd_audit_verify(int argc, char **argv)
{
    app a = {0};
    config_defaults(&a.cfg);
    if (parse_opts(argc, argv, &a.cfg, NULL, NULL)) return 2;
    log_set_quiet(1);
    if (open_data(&a, NULL)) return 1;
    int64_t rows = 0, bad = 0;
    ex_error e = {{0}, {0}};
    int rc = 0;
    if (audit_verify(a.db, &rows, &bad, &e)) {
        printf("audit: %s\n", e.message);
        rc = 1;
    } else {
        printf("audit: %lld rows verified\n", (long long)rows);
    }
    db_close(a.db);
    return rc;
}

typedef struct background_reindex {
    app *a;
    pthread_t thread;
    int started;
    volatile int stop;
} background_reindex;

static void *reindex_thread(void *arg)
{
    background_reindex *bg = arg;
    reindex_stats st;
    ex_error e = {{0}, {0}};
    log_event("info", "reindex_start", "background=1");
    if (reindex_run(bg->a, bg->a->matcher, &bg->stop, NULL, NULL, &st, &e))
        log_event("error", "reindex", "code=%s", e.code);
    else
        log_event("info", "reindex_done", "rows=%zu done=%zu failed=%zu", st.total, st.done,
                  st.failed);
    return NULL;
}

static void reindex_bar(const reindex_stats *s, void *arg)
{
    double t0 = *(const double *)arg, dt = util_mono_now() - t0;
    size_t k = s->done + s->failed;
    int width = 30, fill = s->total ? (int)(width * k / s->total) : width;
    fprintf(stderr, "\rreindex [%.*s%*s] %zu/%zu  %.1f/s  failed %zu", fill,
            "##############################", width - fill, "", k, s->total, dt > 0 ? k / dt : 0.0,
            s->failed);
    fflush(stderr);
}

/* Recomputes every stale reuse signature (a new REUSE_SIG_VERSION); safe beside a running
 * server on the same data, and resumable: interrupted, it goes on where it stopped. */
static int cmd_reindex(int argc, char **argv, const char *argv0)
{
    app a = {0};
    ex_error e = {{0}, {0}};
    config_defaults(&a.cfg);
    if (parse_opts(argc, argv, &a.cfg, NULL, NULL)) return 2;
    log_set_quiet(1);
    if (image_global_init(argv0, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        return 1;
    }
    if (open_data(&a, NULL)) return 1;
    double t0 = util_mono_now();
    reindex_stats st = {0};
    ex_rc rc = reindex_run(&a, NULL, NULL, isatty(2) ? reindex_bar : NULL, &t0, &st, &e);
    if (isatty(2) && st.total) fputc('\n', stderr);
    if (rc)
        fprintf(stderr, "exhibit: reindex: %s\n", e.message);
    else
        printf("reindex: %zu signatures recomputed, %zu failed, %zu were current\n", st.done,
               st.failed, (size_t)0);
    db_close(a.db);
    image_global_shutdown();
    return rc || st.failed ? 1 : 0;
}

static int cmd_serve(int argc, char **argv, const char *argv0)
{
    app a = {0};
    ex_error e = {{0}, {0}};
    config_defaults(&a.cfg);
    if (parse_opts(argc, argv, &a.cfg, NULL, NULL)) return 2;
    /* Signals are taken synchronously by the main thread; every other thread inherits the
     * block, so a SIGTERM never lands in the middle of a request. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* glibc gives every decoding thread its own arena and libvips' large short-lived buffers
     * fragment them: two arenas cut the server's peak RSS under 8 uploaders from ~600 to
     * ~360 MB at the same throughput (tools/bench_http.py). */
    mallopt(M_ARENA_MAX, 2);
    if (image_global_init(argv0, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        return 1;
    }
    /* One server per data directory: a second one would empty the first one's tmp/ (uploads
     * in flight) and run its own index. The lock goes with the process, however it ends. */
    char lock_path[1024];
    snprintf(lock_path, sizeof lock_path, "%s/serve.lock", a.cfg.data_dir);
    mkdir(a.cfg.data_dir, 0755); /* the blob store makes the rest; a missing parent fails here */
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
        fprintf(stderr, "exhibit: cannot open %s: %s\n", lock_path, strerror(errno));
        return 1;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr,
                "exhibit: %s is in use by another exhibit serve; stop it first or give "
                "another --data\n",
                a.cfg.data_dir);
        return 1;
    }
    int cleaned = 0;
    if (open_data(&a, &cleaned)) return 1;
    if (sem_init(&a.decode_slots, 0, a.cfg.max_inflight_images) == 0) a.decode_slots_ready = 1;
    if (cleaned) log_event("info", "tmp_cleaned", "files=%d", cleaned);
    double t0 = util_mono_now();
    size_t images = 0, stale = 0;
    if (matcher_open(a.db, &a.matcher, &images, &stale, &e)) {
        fprintf(stderr, "exhibit: cannot build the match index: %s\n", e.message);
        return 1;
    }
    log_event("info", "match_index", "images=%zu bytes=%zu ms=%.0f", images,
              matcher_memory(a.matcher), (util_mono_now() - t0) * 1000);
    if (keys_count(a.db) == 0) {
        char secret[KEY_SECRET_LEN];
        key_info k;
        if (keys_create(a.db, ROLE_ADMIN, NULL, "first-start", secret, &k, &e)) {
            fprintf(stderr, "exhibit: %s\n", e.message);
            return 1;
        }
        printf("admin key (shown once, keep it): %s\n"
               "create more with: build/exhibit key create --data %s --role ROLE "
               "[--subject BUYER_ID]\n",
               secret, a.cfg.data_dir);
    }
    /* Signatures of an older version are recomputed while the server serves. */
    background_reindex bg = {.a = &a};
    if (stale && pthread_create(&bg.thread, NULL, reindex_thread, &bg) == 0) bg.started = 1;
    http_server *srv = NULL;
    int port = 0;
    if (http_start(&a, &srv, &port, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        db_close(a.db);
        return 1;
    }
    printf("listening on http://%s:%d\n", a.cfg.listen_host, port);
    fflush(stdout);
    log_event("info", "start", "listen=%s:%d data=%s", a.cfg.listen_host, port, a.cfg.data_dir);
    int sig = 0;
    sigwait(&set, &sig);
    log_event("info", "stopping", "signal=%d", sig);
    bg.stop = 1;
    http_stop(srv, 30);
    if (bg.started) pthread_join(bg.thread, NULL);
    matcher_free(a.matcher);
    db_close(a.db);
    image_global_shutdown();
    log_event("info", "stopped", "clean=1");
    return 0;
}

/* One JSON line per file: the hashes the server computes for it (same decode, same upright
 * pixels), PDQ in the reference hex format so they can be compared with other PDQ systems. */
static int cmd_hash(int argc, char **argv, const char *argv0)
{
    ex_error e = {{0}, {0}};
    int failed = 0;
    app a = {0};
    config_defaults(&a.cfg);
    log_set_quiet(1);
    if (argc == 0) {
        fprintf(stderr, "usage: exhibit hash FILE...\n");
        return 2;
    }
    if (image_global_init(argv0, &e)) {
        fprintf(stderr, "exhibit: %s\n", e.message);
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        analysis an = {0};
        char sha[65];
        json_t *line = NULL;
        FILE *f = fopen(argv[i], "rb");
        sha256_ctx c = {0};
        uint8_t d[32], buf[65536];
        size_t n;
        ex_rc rc = f ? sha256_init(&c) : EX_EIO;
        while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
            rc = sha256_update(&c, buf, n);
        if (!rc) rc = sha256_final(&c, d);
        sha256_release(&c);
        if (f) fclose(f);
        if (!rc) {
            util_hex(d, 32, sha);
            rc = analyze_file(&a, argv[i], &an, &e);
        } else {
            ex_fail(&e, EX_EIO, "unreadable", "cannot read the file");
        }
        if (!rc) {
            line = json_pack("{s:s, s:s}", "file", argv[i], "sha256", sha);
            json_object_update(line, json_object_get(an.meta, "hashes"));
        } else {
            line = json_pack("{s:s, s:{s:s, s:s}}", "file", argv[i], "error", "code", e.code,
                             "message", e.message);
            failed = 1;
        }
        char *text = json_dumps(line, JSON_COMPACT);
        if (text) puts(text);
        free(text);
        json_decref(line);
        analysis_release(&an);
    }
    image_global_shutdown();
    return failed;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2, argv[0]);
    if (strcmp(cmd, "key") == 0 && argc >= 3 && strcmp(argv[2], "create") == 0)
        return cmd_key_create(argc - 3, argv + 3);
    if (strcmp(cmd, "hash") == 0) return cmd_hash(argc - 2, argv + 2, argv[0]);
    if (strcmp(cmd, "reindex") == 0) return cmd_reindex(argc - 2, argv + 2, argv[0]);
    if (strcmp(cmd, "audit") == 0 && argc >= 3 && strcmp(argv[2], "verify") == 0)
        return cmd_audit_verify(argc - 3, argv + 3);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
