-- Request nonces already used (ZEGO's SignatureNonce, Alibaba's SignatureNonce and
-- x-acs-signature-nonce), per credential, until the request's signature could no longer be
-- accepted anyway: a signed request is taken once, across restarts and across nodes that share
-- the database.
CREATE TABLE used_nonces (
    scope      TEXT    NOT NULL, -- the dialect and the credential, e.g. 'zego:1234567890'
    nonce      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL, -- unix ms after which the nonce may be forgotten
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);
