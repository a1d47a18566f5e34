//! Single-use request nonces: a signed request is taken once within its validity window, whatever
//! node or process serves it, and however often it is replayed.

use colloquy_model::UnixMillis;

use crate::{Engine, Records, Store, StoreError};

impl Store {
    /// Records `nonce` as used in `scope` (a dialect and credential) until `keep_until`. Answers
    /// `false`, recording nothing, when it was already used and is still remembered. Nonces
    /// remembered past their time are forgotten here, so the table holds one window of requests.
    pub async fn use_nonce(
        &self,
        scope: &str,
        nonce: &str,
        now: UnixMillis,
        keep_until: UnixMillis,
    ) -> Result<bool, StoreError> {
        on_engine!(self, records => records.use_nonce(scope, nonce, now, keep_until).await)
    }
}
