/* features.h - local features for reuse detection: SIFT keypoints as visual words.
 *
 * A grid of region hashes only catches the crops and tilts that sit on its grid. Local
 * features do not care where a crop falls: ft_extract finds SIFT keypoints (VLFeat) on the
 * image shrunk to about FT_AREA pixels, keeps the FT_MAX_FEATS strongest and reduces
 * each to what verification needs: its visual word (the nearest of FT_WORDS centres of a
 * vocabulary trained once on photos, embedded in the binary; tools/train_vocab.c retrains it),
 * a 32-bit Hamming-embedding code (which side of its word's centre the descriptor lies on, on
 * 32 fixed dimensions: two features of one word agree on most bits only when their descriptors
 * are close), and its position, scale and angle. The features of the mirrored image come from
 * the same keypoints with the descriptor's bins reflected, so a mirrored copy needs no second
 * extraction.
 *
 * ft_verify decides whether two feature sets show the same picture: tentative pairs share a
 * word and a close code; each pair proposes a similarity transform (scale and angle ratio,
 * then translation), the one most pairs agree on is refined to an affine map, and the match
 * is accepted only when enough pairs agree, they cover a fair part of the overlap, and most
 * of the features either image has inside the overlap found their partner. A crop, frame or
 * tilt of one photo re-detects most of the same keypoints; another shot of the same object,
 * seen from elsewhere under other light, does not.
 *
 * Every function is thread-safe; sets are immutable once made.
 */
#ifndef EXHIBIT_FEATURES_H
#define EXHIBIT_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "exhibit/err.h"

#define FT_AREA (512 * 384) /* pixels of the image features are extracted on ... */
#define FT_MAX_SIDE 1000    /* ... with no side longer than this */
#define FT_MAX_FEATS 400    /* strongest features kept per image */
#define FT_WORDS_L1 128     /* vocabulary: a two-level tree of k-means centres ... */
#define FT_WORDS_L2 128     /* ... 128 x 128 = 16384 visual words */
#define FT_WORDS (FT_WORDS_L1 * FT_WORDS_L2)
#define FT_DESC 128        /* SIFT descriptor length (uint8 per bin) */
#define FT_VOCAB_VERSION 1 /* bumped whenever the vocabulary or the words change */
#define FT_MIN_INLIERS 9   /* fewest agreeing features ft_verify accepts */

typedef struct ft_feat {
    uint32_t word; /* 0..FT_WORDS-1 */
    uint32_t code; /* Hamming embedding */
    float x, y;    /* in the shrunk image (ft_set w x h), pixels */
    float scale;   /* SIFT sigma, same unit */
    float angle;   /* radians */
} ft_feat;

typedef struct ft_set {
    int w, h; /* the shrunk image features were found on */
    size_t n; /* features, sorted by word */
    ft_feat *f;
    size_t nm;  /* the mirrored image's features (left-right), sorted by word; */
    ft_feat *m; /* kept in memory only, never serialised */
} ft_set;

/* Raw keypoints and uint8 descriptors (for training and tests). On success *kp (4 floats a
 * point: x, y, sigma, angle) and *desc (FT_DESC bytes a point) are malloc'd, *n is their count
 * and *w / *h the size of the shrunk image. */
EX_MUST_CHECK ex_rc ft_describe(const float *luma, int w, int h, float **kp, uint8_t **desc,
                                size_t *n, int *sw, int *sh, ex_error *e);

/* Features of an upright luma image (row-major, 0..255, as image_process gives it). A flat
 * image yields a set with n = 0. Errors: EX_EINVAL "ft_bad_image", EX_ENOMEM "ft_no_memory",
 * EX_EINTERNAL "ft_no_vocabulary" (the embedded vocabulary is missing or corrupt). */
EX_MUST_CHECK ex_rc ft_extract(const float *luma, int w, int h, ft_set **out, ex_error *e);
void ft_free(ft_set *s);

/* Compact bytes (12 per feature plus a header) and back; parse checks every field and
 * recomputes the mirrored features' words from the stored ones when possible: a parsed set has
 * nm = 0 (it is a stored candidate; the query side keeps its mirror). */
EX_MUST_CHECK ex_rc ft_serialize(const ft_set *s, uint8_t **buf, size_t *len, ex_error *e);
EX_MUST_CHECK ex_rc ft_parse(const uint8_t *buf, size_t len, ft_set **out, ex_error *e);

/* The decision for a query set q against a stored set c. */
typedef struct ft_result {
    int match;       /* 1: the same picture */
    int inliers;     /* pairs agreeing on the transform */
    int tentative;   /* pairs sharing a word and a close code */
    int places;      /* distinct spots the inliers come from */
    int q_in, c_in;  /* features of each inside the overlap, at a scale the other can detect */
    int mirrored;    /* 1 when q's mirrored features matched */
    double coverage; /* inliers' extent over that of the features that could match (the
                      * smaller of the two sides), 0..1 */
    double ratio;    /* inliers / features inside the overlap (the side with more) */
    double overlap;  /* share of the better-covered image inside the other, 0..1 */
    double a[6];     /* affine map from c's shrunk pixels to q's: x' = a0 x + a1 y + a2 */
    double q_box[4]; /* inliers' bounding box in q, fractions of its width/height: x0 y0 x1 y1 */
    double c_box[4]; /* the same in c */
} ft_result;

void ft_verify(const ft_set *q, const ft_set *c, ft_result *r);

/* The vocabulary (embedded): word of a descriptor and its code. For tools and tests. */
EX_MUST_CHECK ex_rc ft_vocab_ready(ex_error *e);
uint32_t ft_word(const uint8_t desc[FT_DESC], uint32_t *code);

#endif
