//! DPI wire formats, sans-I/O: SBD business messages signed as JWS, the ASiC-E dokumentpakke
//! with manifest and XAdES signature, CMS encryption, extensions and receipts. No I/O, no
//! panics on any input.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod container;
