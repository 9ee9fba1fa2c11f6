/* app.h - the process-wide service context handed to every request handler.
 *
 * Owned by `exhibit serve` (main.c): created once at start, read-only afterwards except for
 * the parts that carry their own locks (db, metrics).
 */
#ifndef EXHIBIT_APP_H
#define EXHIBIT_APP_H

#include <semaphore.h>

#include "exhibit/blobstore.h"
#include "exhibit/config.h"
#include "exhibit/db.h"

struct metrics;
struct matcher;

typedef struct app {
    ex_config cfg;
    db *db;
    blobstore bs;
    struct metrics *metrics;
    struct matcher *matcher; /* reuse index over every stored image (NULL in CLI tools) */
    sem_t decode_slots;      /* bounds concurrent image decodes (cfg.max_inflight_images) */
    int decode_slots_ready;
} app;

#endif
