-- 001: keys, return cases, content-addressed blobs, evidence links, matches, audit trail.
-- Times are RFC 3339 UTC text. Public ids (case_id, evidence_id) are random opaque strings;
-- integer rowids stay internal.

CREATE TABLE keys (
    id          INTEGER PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,      -- sha256 hex of the secret; the secret is never stored
    role        TEXT NOT NULL CHECK (role IN ('admin','platform','buyer','warehouse','mediator')),
    subject     TEXT,                      -- buyer id for buyer keys
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE cases (
    id                INTEGER PRIMARY KEY,
    case_id           TEXT NOT NULL UNIQUE,
    order_id          TEXT NOT NULL,
    buyer_id          TEXT NOT NULL,
    seller_id         TEXT NOT NULL,
    reason            TEXT NOT NULL,
    category          TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    delivered_at      TEXT NOT NULL,
    opened_at         TEXT NOT NULL,
    window_ends_at    TEXT NOT NULL,
    shipping_paid_by  TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'open',
    created_at        TEXT NOT NULL
);
CREATE INDEX cases_order ON cases(order_id);
CREATE INDEX cases_buyer ON cases(buyer_id);

-- One row per distinct content; the file lives at blobs/<2>/<2>/<sha256>.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    bytes       INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- A link from a case to a blob. The same bytes twice in one case are one item.
CREATE TABLE evidence (
    id           INTEGER PRIMARY KEY,
    evidence_id  TEXT NOT NULL UNIQUE,
    case_ref     INTEGER NOT NULL REFERENCES cases(id),
    sha256       TEXT NOT NULL REFERENCES blobs(sha256),
    source       TEXT NOT NULL,
    key_ref      INTEGER REFERENCES keys(id),
    note         TEXT,
    captured_at  TEXT,
    flags        TEXT NOT NULL DEFAULT '[]', -- JSON array of flag names
    created_at   TEXT NOT NULL,
    UNIQUE (case_ref, sha256)
);
CREATE INDEX evidence_sha ON evidence(sha256);

-- Earlier evidence in another case that is the same image; stored from the newer item's side.
CREATE TABLE matches (
    evidence_ref  INTEGER NOT NULL REFERENCES evidence(id),
    other_ref     INTEGER NOT NULL REFERENCES evidence(id),
    kind          TEXT NOT NULL CHECK (kind IN ('exact','near')),
    distance      INTEGER NOT NULL,
    PRIMARY KEY (evidence_ref, other_ref)
);
CREATE INDEX matches_other ON matches(other_ref);

-- Append-only hash chain: hash = sha256(prev_hash | seq | at | actor | action | subject | detail).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
