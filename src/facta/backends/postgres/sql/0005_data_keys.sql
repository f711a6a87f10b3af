-- facta PostgreSQL schema, version 5: each subject's data key, for personal fields
-- (facta.personal). The key is stored wrapped (encrypted) under the application's master
-- key, which is never stored. Forgetting a subject deletes its row, and its personal fields
-- no longer open. (Numbered 5 ahead of time: another branch takes 4.)

CREATE TABLE {schema}.facta_data_keys (
    subject        text COLLATE "C" NOT NULL,  -- whose personal data the key seals
    key_id         text NOT NULL,              -- random, never reused
    master_key_id  text NOT NULL,              -- the master key it is wrapped under
    wrapped        bytea NOT NULL,             -- nonce, AES-GCM ciphertext and tag
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT facta_data_keys_pkey PRIMARY KEY (subject)
);
