/* blobstore.h - content-addressed files under DIR/blobs/<2 hex>/<2 hex>/<sha256>.
 *
 * Writes are atomic: bytes go to a temp file in DIR/tmp (same filesystem), are fsynced, then
 * renamed into place and the directory is fsynced, so a blob path either does not exist or holds
 * exactly the bytes its name hashes to. Putting a hash that exists is a no-op. Paths are built
 * only from hashes computed here, never from user input. The server empties DIR/tmp when it
 * starts: anything there belongs to an upload that was never acknowledged.
 */
#ifndef EXHIBIT_BLOBSTORE_H
#define EXHIBIT_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"
#include "exhibit/hash.h"

#define BLOB_PATH_MAX 1024

typedef struct blobstore {
    char root[BLOB_PATH_MAX - 200]; /* the data directory; leaves room for the fan-out */
} blobstore;

/* Creates DIR/blobs and DIR/tmp as needed. With cleaned non-NULL (the server at start) it also
 * removes stale temp files and stores their count there; command-line tools pass NULL, since a
 * server may be receiving uploads into DIR/tmp at that moment. EX_EIO names the path. */
ex_rc blobstore_open(blobstore *bs, const char *dir, int *cleaned, ex_error *e) EX_MUST_CHECK;

/* Path of the blob with this hex digest (which must be util_is_sha256_hex). */
void blobstore_path(const blobstore *bs, const char *hex, char *out, size_t cap);
/* 1 when the blob exists. */
int blobstore_exists(const blobstore *bs, const char *hex);

/* A streaming writer: bytes are hashed as they arrive. The first bytes are kept in `head`
 * for magic-byte sniffing. Caller-owned struct; every opened writer must end in
 * blob_writer_commit or blob_writer_abort (both idempotent on a closed writer). */
typedef struct blob_writer {
    int fd;
    char tmp_path[BLOB_PATH_MAX];
    sha256_ctx sha;
    uint64_t size;
    uint8_t head[64];
    size_t head_len;
    char hex[65]; /* set by blob_writer_finish */
} blob_writer;

ex_rc blob_writer_open(const blobstore *bs, blob_writer *w, ex_error *e) EX_MUST_CHECK;
ex_rc blob_writer_write(blob_writer *w, const void *data, size_t len, ex_error *e) EX_MUST_CHECK;
/* Ends the stream: fsyncs the temp file and computes w->hex. The temp file stays in DIR/tmp
 * (readable at w->tmp_path) until commit or abort. */
ex_rc blob_writer_finish(blob_writer *w, ex_error *e) EX_MUST_CHECK;
/* Moves a finished writer's file to its content address (or drops it if that blob exists),
 * then fsyncs the directory. */
ex_rc blob_writer_commit(const blobstore *bs, blob_writer *w, ex_error *e) EX_MUST_CHECK;
/* Closes and unlinks the temp file. */
void blob_writer_abort(blob_writer *w);

/* Stores a whole buffer (derivatives); writes its digest to hex. */
ex_rc blobstore_put(const blobstore *bs, const void *data, size_t len, char hex[65],
                    ex_error *e) EX_MUST_CHECK;

#endif
