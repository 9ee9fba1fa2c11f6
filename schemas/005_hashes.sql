-- 005: perceptual hashes per blob (API `hashes`) and the reuse detector's signature, from
-- which the in-memory match index is rebuilt at start.
ALTER TABLE blobs ADD COLUMN pdq TEXT;
ALTER TABLE blobs ADD COLUMN pdq_quality INTEGER;
ALTER TABLE blobs ADD COLUMN phash64 TEXT;
ALTER TABLE blobs ADD COLUMN nd_sig BLOB;
