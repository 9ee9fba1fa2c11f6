/* blobstore.c - atomic content-addressed files (see blobstore.h). */
#include "exhibit/blobstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exhibit/util.h"

/* mkdir -p; *created (when non-NULL) counts the directories that did not exist. */
static ex_rc mkdir_p(const char *path, int *created, ex_error *e)
{
    char tmp[BLOB_PATH_MAX];
    int n = 0;
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(tmp, 0755) == 0)
            n++;
        else if (errno != EEXIST)
            return ex_fail(e, EX_EIO, "storage_error", "cannot create %s: %s", tmp,
                           strerror(errno));
        *p = c;
        if (!c) break;
    }
    if (created) *created = n;
    return EX_OK;
}

static ex_rc fsync_dir(const char *dir, ex_error *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ex_fail(e, EX_EIO, "storage_error", "cannot open %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0)
        return ex_fail(e, EX_EIO, "storage_error", "fsync %s failed: %s", dir, strerror(err));
    return EX_OK;
}

ex_rc blobstore_open(blobstore *bs, const char *dir, int *cleaned, ex_error *e)
{
    if (strlen(dir) >= sizeof bs->root)
        return ex_fail(e, EX_EINVAL, "invalid_data_dir", "data directory path is too long");
    snprintf(bs->root, sizeof bs->root, "%s", dir);
    char path[BLOB_PATH_MAX];
    ex_rc rc;
    snprintf(path, sizeof path, "%s/blobs", dir);
    if ((rc = mkdir_p(path, NULL, e))) return rc;
    snprintf(path, sizeof path, "%s/tmp", dir);
    if ((rc = mkdir_p(path, NULL, e))) return rc;
    if (!cleaned) return EX_OK; /* CLI tools may run beside a live server: leave its uploads */
    int n = 0;
    DIR *d = opendir(path);
    if (!d) return ex_fail(e, EX_EIO, "storage_error", "cannot read %s", path);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[BLOB_PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        if (unlink(p) == 0) n++;
    }
    closedir(d);
    *cleaned = n;
    return EX_OK;
}

void blobstore_path(const blobstore *bs, const char *hex, char *out, size_t cap)
{
    snprintf(out, cap, "%s/blobs/%.2s/%.2s/%s", bs->root, hex, hex + 2, hex);
}

int blobstore_exists(const blobstore *bs, const char *hex)
{
    char p[BLOB_PATH_MAX];
    blobstore_path(bs, hex, p, sizeof p);
    return access(p, F_OK) == 0;
}

ex_rc blob_writer_open(const blobstore *bs, blob_writer *w, ex_error *e)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s/tmp/up-XXXXXX", bs->root);
    w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
    if (w->fd < 0) {
        w->tmp_path[0] = '\0';
        return ex_fail(e, EX_EIO, "storage_error", "cannot create a temp file: %s",
                       strerror(errno));
    }
    if (sha256_init(&w->sha)) {
        blob_writer_abort(w);
        return ex_fail(e, EX_ENOMEM, "out_of_memory", "cannot start hashing");
    }
    return EX_OK;
}

ex_rc blob_writer_write(blob_writer *w, const void *data, size_t len, ex_error *e)
{
    const uint8_t *p = data;
    if (w->fd < 0) return ex_fail(e, EX_EINTERNAL, "internal_error", "write on closed blob");
    if (w->head_len < sizeof w->head) {
        size_t take = sizeof w->head - w->head_len;
        if (take > len) take = len;
        memcpy(w->head + w->head_len, p, take);
        w->head_len += take;
    }
    if (sha256_update(&w->sha, p, len))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return ex_fail(e, EX_EIO, "storage_error", "cannot write upload: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
        w->size += (uint64_t)n;
    }
    return EX_OK;
}

ex_rc blob_writer_finish(blob_writer *w, ex_error *e)
{
    uint8_t d[32];
    if (w->fd < 0) return ex_fail(e, EX_EINTERNAL, "internal_error", "finish on closed blob");
    if (fsync(w->fd) != 0)
        return ex_fail(e, EX_EIO, "storage_error", "fsync failed: %s", strerror(errno));
    if (sha256_final(&w->sha, d))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "hashing failed");
    util_hex(d, 32, w->hex);
    return EX_OK;
}

ex_rc blob_writer_commit(const blobstore *bs, blob_writer *w, ex_error *e)
{
    char dst[BLOB_PATH_MAX], dir[BLOB_PATH_MAX];
    ex_rc rc;
    if (w->fd < 0 || !util_is_sha256_hex(w->hex))
        return ex_fail(e, EX_EINTERNAL, "internal_error", "commit of an unfinished blob");
    blobstore_path(bs, w->hex, dst, sizeof dst);
    snprintf(dir, sizeof dir, "%s/blobs/%.2s/%.2s", bs->root, w->hex, w->hex + 2);
    if (access(dst, F_OK) == 0) {
        blob_writer_abort(w);
        return EX_OK;
    }
    int created = 0;
    if ((rc = mkdir_p(dir, &created, e))) return rc;
    if (rename(w->tmp_path, dst) != 0)
        return ex_fail(e, EX_EIO, "storage_error", "cannot store blob: %s", strerror(errno));
    close(w->fd);
    w->fd = -1;
    w->tmp_path[0] = '\0';
    /* The new name, and each fan-out directory this commit created, must reach the disk. */
    if ((rc = fsync_dir(dir, e))) return rc;
    if (created >= 1) {
        snprintf(dir, sizeof dir, "%s/blobs/%.2s", bs->root, w->hex);
        if ((rc = fsync_dir(dir, e))) return rc;
    }
    if (created >= 2) {
        snprintf(dir, sizeof dir, "%s/blobs", bs->root);
        if ((rc = fsync_dir(dir, e))) return rc;
    }
    return EX_OK;
}

void blob_writer_abort(blob_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    if (w->tmp_path[0]) unlink(w->tmp_path);
    sha256_release(&w->sha);
    w->fd = -1;
    w->tmp_path[0] = '\0';
}

ex_rc blobstore_put(const blobstore *bs, const void *data, size_t len, char hex[65], ex_error *e)
{
    blob_writer w;
    ex_rc rc = sha256_hex(data, len, hex);
    if (rc) return ex_fail(e, rc, "internal_error", "hashing failed");
    if (blobstore_exists(bs, hex)) return EX_OK;
    if ((rc = blob_writer_open(bs, &w, e))) return rc;
    if (!(rc = blob_writer_write(&w, data, len, e)) && !(rc = blob_writer_finish(&w, e)))
        rc = blob_writer_commit(bs, &w, e);
    blob_writer_abort(&w);
    return rc;
}
