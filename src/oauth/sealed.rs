//! Sealing a rotated refresh token's successor pair (AES-256-GCM) under a key derived from
//! the old token itself. During the grace window a retried refresh can then be answered with
//! the very same pair, while the store holds nothing a thief could turn into a token.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// Encrypts `plaintext` for whoever holds `refresh_token`.
pub fn seal(refresh_token: &str, plaintext: &[u8]) -> Option<Vec<u8>> {
    let key = key_for(refresh_token)?;
    let nonce_bytes = rand::random::<[u8; NONCE_LEN]>();
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::empty(),
        &mut in_out,
    )
    .ok()?;
    let mut sealed = nonce_bytes.to_vec();
    sealed.extend_from_slice(&in_out);
    Some(sealed)
}

/// Decrypts what `seal` produced for the same `refresh_token`.
pub fn open(refresh_token: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let key = key_for(refresh_token)?;
    let (nonce_bytes, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plaintext = key.open_in_place(nonce, Aad::empty(), &mut in_out).ok()?;
    Some(plaintext.to_vec())
}

// The stored lookup hash is SHA-256(token); this key uses a distinct prefix, so it cannot be
// computed from anything in the store.
fn key_for(refresh_token: &str) -> Option<LessSafeKey> {
    let mut hasher = Sha256::new();
    hasher.update(b"nexus-gateway refresh grace key v1\0");
    hasher.update(refresh_token.as_bytes());
    let key_bytes = hasher.finalize();
    UnboundKey::new(&AES_256_GCM, key_bytes.as_slice())
        .ok()
        .map(LessSafeKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_opens_the_seal() {
        let sealed = seal("token-a", b"pair").expect("seals");
        assert_eq!(open("token-a", &sealed).as_deref(), Some(&b"pair"[..]));
        assert_eq!(open("token-b", &sealed), None);
        assert_eq!(open("token-a", &sealed[..5]), None);
    }
}
