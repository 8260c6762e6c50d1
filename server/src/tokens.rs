//! Secrets and their hashes: tokens and enrolment codes are random, shown once, and
//! stored only as SHA-256 hashes, so a leaked database leaks no usable token.

use sha2::{Digest, Sha256};

/// 32 bytes from the operating system's CSPRNG.
pub fn new_secret() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// SHA-256 of a token or code.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_differ_and_hashes_are_stable() {
        assert_ne!(new_secret().ok(), new_secret().ok());
        assert_eq!(token_hash("a"), token_hash("a"));
        assert_eq!(token_hash("a").len(), 32);
    }
}
