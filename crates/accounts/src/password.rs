//! Argon2id password hashing and generated passwords.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::{Rng, RngCore};

use crate::AccountsError;

/// Argon2 cost of new hashes. Checking a stored hash uses the cost written
/// in it, so a changed cost applies to passwords set from then on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordCost {
    /// The OWASP Password Storage Cheat Sheet's first Argon2id choice
    /// (19 MiB, 2 iterations, 1 lane), which is also argon2 0.5's default.
    pub const RECOMMENDED: PasswordCost = PasswordCost {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The lowest cost argon2 accepts, for tests that hash many passwords.
    pub const MINIMUM: PasswordCost = PasswordCost {
        memory_kib: Params::MIN_M_COST,
        iterations: Params::MIN_T_COST,
        parallelism: Params::MIN_P_COST,
    };

    pub(crate) fn hasher(self) -> Result<Argon2<'static>, AccountsError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(AccountsError::PasswordCost)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Returns the PHC string of `password` under a new random salt.
pub(crate) fn hash(password: &str, cost: PasswordCost) -> Result<String, AccountsError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(AccountsError::PasswordHash)?;
    let hash = cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(AccountsError::PasswordHash)?;
    Ok(hash.to_string())
}

/// Returns whether `password` matches the PHC string `stored`.
pub(crate) fn verify(password: &str, stored: &str) -> Result<bool, AccountsError> {
    let parsed = PasswordHash::new(stored).map_err(AccountsError::PasswordHash)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(AccountsError::PasswordHash(error)),
    }
}

/// Letters and digits without look-alikes (0/O/o, 1/l/I), so a password
/// read off a terminal is typed right the first time. 56 symbols give
/// about 93 bits for 16 characters.
const ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
const GENERATED_LENGTH: usize = 16;

/// Returns a new random password of 16 characters.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_LENGTH)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
