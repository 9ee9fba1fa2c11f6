/* embedded.h - files compiled into the binary by tools/embed.sh (SQL migrations, UI assets,
 * the visual vocabulary).
 * Arrays are sorted by name and end with a {NULL} entry; data is NUL-terminated. */
#ifndef EXHIBIT_EMBEDDED_H
#define EXHIBIT_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};

extern const struct embedded_file schema_files[];
extern const size_t schema_files_count;
extern const struct embedded_file ui_files[];
extern const size_t ui_files_count;
extern const struct embedded_file vocab_files[];
extern const size_t vocab_files_count;

#endif
