/* reuse_eval.h - the reuse-detection evaluation, shared by tools/eval_reuse.c (the report) and
 * tests/unit/test_reuse_eval.c (the regression slice run by make test).
 *
 * Why a separate harness: a detector tuned on a fixed grid of edits (5/10/20% centre crops,
 * 3 and 8 degree tilts) scores in-sample. Here every variant draws its parameters from a seeded
 * RNG over continuous ranges (crop boxes anywhere, any tilt in [-15, 15], keystones, borders
 * per side...), photos are split into a tuning and a report half by a hash of the file name,
 * and the detector sits behind a small adapter (re_detector) so the same measurement scores
 * any detector, including ones that did not exist when the numbers were first taken.
 *
 * Everything goes through the server's own decoder: each generated image is encoded (JPEG
 * unless a family says PNG), written to a temp file and read back with image_process, so a
 * detector sees exactly the luma an upload would give it.
 */
#ifndef EXHIBIT_TOOLS_REUSE_EVAL_H
#define EXHIBIT_TOOLS_REUSE_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include <vips/vips.h>

/* ---- seeded randomness ------------------------------------------------------------------- */

/* splitmix64: tiny, good enough for drawing parameters, and identical on every platform, so a
 * seed names the same variants everywhere. */
typedef struct re_rng {
    uint64_t s;
} re_rng;

void re_rng_seed(re_rng *r, uint64_t seed);
uint64_t re_rng_next(re_rng *r);
double re_rng_uniform(re_rng *r, double lo, double hi); /* [lo, hi) */
int re_rng_int(re_rng *r, int lo, int hi);              /* [lo, hi] */

/* ---- families of variants ---------------------------------------------------------------- */

enum {
    /* benign: what happens to a photo on its way through apps and messengers */
    RE_JPEG,
    RE_RESIZE,
    RE_ROTATE,
    RE_MIRROR,
    RE_TONE,
    RE_GREY,
    RE_BLUR,
    /* edits: what is done to pass a photo off as new */
    RE_CROP,
    RE_TILT,
    RE_TILT_CROP,
    RE_PERSPECTIVE,
    RE_BORDER,
    RE_SCREENSHOT,
    RE_STICKER,
    RE_TEXTBAND,
    RE_WATERMARK,
    RE_JPEG15,
    RE_COMBO,
    RE_FAMILIES
};

enum { RE_BENIGN, RE_EDIT };

typedef struct re_family_info {
    const char *name;  /* short, for tables */
    const char *about; /* the parameter ranges */
    int group;         /* RE_BENIGN or RE_EDIT */
    double target;     /* recall the CI lower bound must reach */
} re_family_info;

extern const re_family_info re_families[RE_FAMILIES];

/* Photo p's half: 0 = tuning, 1 = report. A hash of the file's base name only, so it does not
 * depend on the directory, the order of listing or which other files are present. */
int re_split_of(const char *path);

/* The generators take an sRGB 3-band uchar image held in memory and write an encoded file
 * (JPEG, or PNG for the screenshot) into *buf (g_free it) and a one-line description of the
 * drawn parameters into desc. Same image + same RNG state = same bytes. Return 0, or -1 with
 * the libvips error buffer set. */
int re_variant_make(VipsImage *img, int family, re_rng *r, void **buf, size_t *len, char *desc,
                    size_t desc_len);

/* Hard negative: a product-on-white picture made of a random part of img (the "object") at a
 * random scale and position on a plain near-white canvas. Two of them made from different
 * photos share the layout, not the content, and must not match. */
int re_catalog_make(VipsImage *img, re_rng *r, void **buf, size_t *len, char *desc,
                    size_t desc_len);

/* Hard negative: two crops of img that do not overlap, each under 45% of its area (a stand-in
 * for two shots of one scene: same light and colours, no shared pixels). */
int re_scene_pair_make(VipsImage *img, re_rng *r, void *buf[2], size_t len[2], char *desc,
                       size_t desc_len);

/* ---- detector adapters ------------------------------------------------------------------- */

/* A detector under test. Signatures are computed from the upright luma of image_process
 * (row-major w x h floats, 0..255). The harness adds every indexed signature before the first
 * query, keeps each signature alive and unchanged until index_free, and then runs queries from
 * several threads at once, so query must be safe against concurrent queries (nothing else).
 * query writes the ids of the indexed images the detector ACCEPTS as the same picture
 * (shortlist and verification both done), each once, at most max of them (the harness passes
 * the number of ids added, so nothing is cut), and returns how many it wrote, or -1 on an error
 * (counted and reported, never as a match). */
typedef struct re_detector {
    const char *name;
    const char *about;
    void *(*sig)(const float *luma, int w, int h); /* NULL on failure */
    void (*sig_free)(void *sig);
    void *(*index_new)(void);
    void (*index_free)(void *ix);
    int (*index_add)(void *ix, uint32_t id, const void *sig); /* 0 or -1 */
    int (*query)(const void *ix, const void *sig, uint32_t *ids, size_t max);
} re_detector;

/* All adapters, best first; NULL-terminated. The first is the default. */
extern const re_detector *const re_detectors[];

/* The adapter called name, or NULL. */
const re_detector *re_detector_find(const char *name);

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct re_config {
    char **files; /* photos to use (already split by the caller) */
    int nfiles;
    uint64_t seed;
    int per_family;            /* variants per family per photo */
    int threads;               /* 1..16 */
    const re_detector *det[2]; /* [0] under test, [1] the baseline (may be the same) */
    long min_pairs; /* index extra variants until different-photo pairs reach this (0: none) */
    int verbose;    /* print each miss of det[0] */
    int progress;   /* progress lines on stderr */
    const char *tmpdir;
    const char *dump_dir; /* when set, every generated file is also written there */
} re_config;

typedef struct re_result {
    int photos;                    /* photos that loaded */
    int flat_photos;               /* of which near-flat: left out of recall (not of negatives) */
    long n[RE_FAMILIES];           /* variants per family that decoded and signed */
    long hit[2][RE_FAMILIES];      /* ... that found their own original, per detector */
    long cat_pairs, cat_fm[2];     /* catalog image vs catalog image of another photo */
    long scene_pairs, scene_fm[2]; /* crop vs the disjoint crop of the same photo */
    long pairs, fm[2];             /* every query vs every indexed image of another photo */
    long errors[2];                /* signature or query failures */
    long indexed, queries;         /* images in the index, queries made */
    int extra_indexed;             /* variants per photo indexed to reach min_pairs */
    double sig_ms[2], query_ms[2]; /* mean thread CPU time per signature / per query */
    double elapsed_s;
} re_result;

/* Makes every image, signs it with both detectors, indexes originals, catalog images, one crop
 * of each scene pair (and extra variants when min_pairs asks), queries everything and counts.
 * False matches are printed as they are found. Returns 0, or -1 on a setup error (message on
 * stderr). */
int re_run(const re_config *c, re_result *res);

/* 95% Wilson score interval of k successes in n. */
void re_wilson(long k, long n, double *lo, double *hi);

#endif
