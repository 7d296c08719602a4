//! A small process-wide cache of parsed certificates, keyed by the SHA-256 of their DER.
//!
//! OpenSSL 3.0 spends ~150 µs decoding one certificate and as much again on its first
//! public-key use; a letter carries the same enterprise certificate up to four times (JWS x5c,
//! ASiC KeyInfo chain), and a mailbox sees the same few hundred senders' certificates all day.
//! Parsing each distinct DER once turns ~1 ms of every `open` into a hash lookup. The cache is
//! bounded (cleared when full), holds only public data, and a hit returns exactly what a fresh
//! parse of the same bytes would.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use openssl::error::ErrorStack;
use openssl::x509::X509;

/// Distinct certificates kept before the cache is cleared.
const CAPACITY: usize = 4096;

fn cache() -> &'static Mutex<HashMap<[u8; 32], X509>> {
    static C: OnceLock<Mutex<HashMap<[u8; 32], X509>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `X509::from_der`, memoised. The public key is decoded once on insertion so later signature
/// checks do not pay for it either.
pub fn x509_from_der(der: &[u8]) -> Result<X509, ErrorStack> {
    let key = crate::sha256(der);
    if let Ok(c) = cache().lock()
        && let Some(x) = c.get(&key)
    {
        return Ok(x.clone());
    }
    let x = X509::from_der(der)?;
    let _ = x.public_key();
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CAPACITY {
            c.clear();
        }
        c.insert(key, x.clone());
    }
    Ok(x)
}
