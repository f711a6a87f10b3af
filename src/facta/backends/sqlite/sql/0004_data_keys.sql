-- facta SQLite schema, migration 4: each subject's data key, for personal fields (facta.personal).
-- The key is stored wrapped (encrypted) under the application's master key, which is never
-- stored. Forgetting a subject deletes its row, and its personal fields no longer open.
CREATE TABLE facta_data_keys (
    subject        TEXT    PRIMARY KEY,                -- whose personal data the key seals
    key_id         TEXT    NOT NULL,                   -- random, never reused
    master_key_id  TEXT    NOT NULL,                   -- the master key it is wrapped under
    wrapped        BLOB    NOT NULL,                   -- nonce, AES-GCM ciphertext and tag
    created_at     REAL    NOT NULL                    -- Unix seconds
) WITHOUT ROWID;
