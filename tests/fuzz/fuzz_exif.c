/* fuzz_exif.c - libFuzzer target: arbitrary bytes as an EXIF blob (exif_read) and as an XMP
 * packet (exif_scan_xmp), then the editor lookup on what came out. Besides memory errors it
 * aborts when a documented output invariant breaks: strings terminated inside their fields,
 * orientation 0..8, a valid position finite and in range, entry_count matching `all`.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude \
 *       tests/fuzz/fuzz_exif.c src/exif.c src/err.c $(pkg-config --cflags --libs libexif jansson) \
 *       -lm -o /tmp/fuzz_exif
 *   /tmp/fuzz_exif -max_len=70000 /tmp/corpus tests/fuzz/corpus/fuzz_exif
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exhibit/exif.h"

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

static void check_exif(const exif_info *x)
{
    if (!TERMINATED(x->make) || !TERMINATED(x->model) || !TERMINATED(x->software) ||
        !TERMINATED(x->datetime_original))
        abort();
    if (x->orientation < 0 || x->orientation > 8) abort();
    if (x->gps.valid && (!x->gps.present || !isfinite(x->gps.lat) || !isfinite(x->gps.lon) ||
                         fabs(x->gps.lat) > 90 || fabs(x->gps.lon) > 180))
        abort();
    if (!json_is_object(x->all)) abort();
    int n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(x->all, k, v) n += (int)json_object_size(v);
    if (n != x->entry_count) abort();
    /* Every string must be valid UTF-8, or jansson would not have taken it; dumping walks it. */
    char *s = json_dumps(x->all, JSON_COMPACT);
    free(s);
    (void)exif_editor_name(x->software);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    exif_info x;
    if (exif_read(data, size, &x, NULL) == EX_OK) {
        check_exif(&x);
        exif_info_release(&x);
    }

    xmp_info xi;
    exif_scan_xmp((const char *)data, size, &xi);
    if (!TERMINATED(xi.creator_tool) || !TERMINATED(xi.history_agents)) abort();
    (void)exif_editor_name(xi.creator_tool);
    (void)exif_editor_name(xi.history_agents);
    return 0;
}
