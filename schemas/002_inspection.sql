-- 002: what intake learns from an image's bytes, stored once per blob: dimensions, the
-- metadata-free derivatives, and the recorded metadata (EXIF summary and every tag, XMP, IPTC
-- and ICC presence) as JSON. Per-item flags stay on evidence.flags.
ALTER TABLE blobs ADD COLUMN width INTEGER;
ALTER TABLE blobs ADD COLUMN height INTEGER;
ALTER TABLE blobs ADD COLUMN thumb_sha256 TEXT;
ALTER TABLE blobs ADD COLUMN preview_sha256 TEXT;
ALTER TABLE blobs ADD COLUMN meta TEXT;
