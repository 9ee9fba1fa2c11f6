-- 003: the warehouse's inspection of what came back, and the mediator's decision.
CREATE TABLE inspections (
    id             INTEGER PRIMARY KEY,
    inspection_id  TEXT NOT NULL UNIQUE,
    case_ref       INTEGER NOT NULL REFERENCES cases(id),
    grade          TEXT NOT NULL,
    notes          TEXT NOT NULL DEFAULT '',
    key_ref        INTEGER REFERENCES keys(id),
    created_at     TEXT NOT NULL
);
CREATE INDEX inspections_case ON inspections(case_ref);
ALTER TABLE evidence ADD COLUMN inspection_ref INTEGER REFERENCES inspections(id);

-- One decision per case; it closes the case (status 'decided').
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    case_ref    INTEGER NOT NULL UNIQUE REFERENCES cases(id),
    outcome     TEXT NOT NULL,
    amount      REAL,
    rationale   TEXT NOT NULL,
    key_ref     INTEGER REFERENCES keys(id),
    decided_at  TEXT NOT NULL
);
