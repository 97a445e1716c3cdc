//! Random bearer secrets and the digests stored in their place.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 bytes: 256 bits, beyond any guessing, and as long as the digest.
const TOKEN_BYTES: usize = 32;

/// Prefix of API tokens, so secret scanners and people can tell them from
/// session cookies in logs or pasted configuration.
pub(crate) const API_TOKEN_PREFIX: &str = "pbx_";

/// Returns a new random secret as lowercase hex.
pub(crate) fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    // ThreadRng is a CSPRNG seeded from the operating system (rand 0.9).
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Returns the lowercase hex SHA-256 of `token`, the form kept in the
/// database. A plain digest suffices because the secret is random and long,
/// unlike a password.
pub(crate) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
