-- 006: reused-image detection v2 (local features). rsig (reuse.h, versioned) replaces nd_sig,
-- the region-hash grid's signature; rows from before have rsig NULL until `exhibit reindex`.
-- A near match records the tier that decided and where the two pictures overlap, as JSON:
-- {"new":[x0,y0,x1,y1],"old":[x0,y0,x1,y1],"mirrored":false} in fractions of each image.
ALTER TABLE blobs ADD COLUMN rsig BLOB;
ALTER TABLE blobs DROP COLUMN nd_sig;
ALTER TABLE matches ADD COLUMN tier TEXT;
ALTER TABLE matches ADD COLUMN region TEXT;
