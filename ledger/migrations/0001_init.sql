-- Placeholder so the migration machinery has something to apply; the ledger
-- schema proper arrives in 0002 and later files.
CREATE TABLE IF NOT EXISTS service_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);
