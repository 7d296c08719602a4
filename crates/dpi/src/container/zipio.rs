//! ZIP reading and writing for ASiC-E with our own limits on top of the `zip` crate: entry
//! count, per-entry and total inflated size and compression ratio measured on the bytes actually
//! inflated, safe relative UTF-8 names (no absolute paths, `..`, backslashes, duplicates or
//! case collisions), stored/deflate only, no encryption. Entries are only ever names in memory.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};

use zip::CompressionMethod;
use zip::result::ZipError;
use zip::write::SimpleFileOptions;

use super::Limits;
use super::error::{ContainerError, write_err};

/// The ASiC media type, content of the `mimetype` entry.
pub const ASIC_MIMETYPE: &str = "application/vnd.etsi.asic-e+zip";

/// One file of the container, in archive order.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub data: Vec<u8>,
}

fn malformed(e: impl std::fmt::Display) -> ContainerError {
    ContainerError::ZipMalformed(e.to_string())
}

fn map_zip_err(e: ZipError) -> ContainerError {
    match e {
        ZipError::UnsupportedArchive(m) if m.to_ascii_lowercase().contains("compression") => {
            ContainerError::UnsupportedCompression(m.to_string())
        }
        ZipError::UnsupportedArchive(m) if m.to_ascii_lowercase().contains("encrypt") => {
            ContainerError::EncryptedEntry(m.to_string())
        }
        other => malformed(other),
    }
}

/// Checks one entry name against the path rules (directory entries end with `/`).
pub(crate) fn check_name(name: &str) -> Result<(), ContainerError> {
    let shown = || name.escape_debug().to_string();
    if name.is_empty() || name.len() > 255 {
        return Err(ContainerError::InvalidName(format!(
            "name of {} bytes",
            name.len()
        )));
    }
    if name.contains('\\') {
        return Err(ContainerError::BackslashInName(shown()));
    }
    let b = name.as_bytes();
    if name.starts_with('/')
        || (b.len() >= 2
            && b.get(1) == Some(&b':')
            && b.first().is_some_and(u8::is_ascii_alphabetic))
    {
        return Err(ContainerError::AbsolutePath(shown()));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ContainerError::InvalidName(shown()));
    }
    let body = name.strip_suffix('/').unwrap_or(name);
    for seg in body.split('/') {
        match seg {
            ".." => return Err(ContainerError::PathTraversal(shown())),
            "" | "." => return Err(ContainerError::InvalidName(shown())),
            _ => {}
        }
    }
    Ok(())
}

/// Reads all file entries of a zip under `limits`, in archive order (directory entries are
/// skipped). Verifies the ASiC `mimetype` entry when present.
pub(crate) fn read(bytes: &[u8], limits: &Limits) -> Result<Vec<Entry>, ContainerError> {
    if bytes.len() > limits.max_total_bytes {
        return Err(ContainerError::TooLarge(format!(
            "zip of {} bytes exceeds {}",
            bytes.len(),
            limits.max_total_bytes
        )));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(map_zip_err)?;
    if zip.len() > limits.max_entries {
        return Err(ContainerError::TooManyEntries(format!(
            "{} entries, limit {}",
            zip.len(),
            limits.max_entries
        )));
    }
    if zip.has_duplicate_names() {
        return Err(ContainerError::DuplicateName(
            "the central directory names one file twice".into(),
        ));
    }
    if zip.has_overlapping_entries().map_err(map_zip_err)? {
        return Err(malformed("overlapping entries"));
    }

    // Pass 1: names and methods from the central directory, before inflating anything.
    let mut meta = Vec::with_capacity(zip.len());
    let mut folded = HashSet::new();
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(map_zip_err)?;
        let name = f
            .name()
            .map_err(|e| ContainerError::InvalidName(e.to_string()))?
            .into_owned();
        check_name(&name)?;
        if !folded.insert(name.to_lowercase()) {
            return Err(ContainerError::CaseCollision(name));
        }
        if f.encrypted() {
            return Err(ContainerError::EncryptedEntry(name));
        }
        let method = f.compression();
        if method != CompressionMethod::Stored && method != CompressionMethod::Deflated {
            return Err(ContainerError::UnsupportedCompression(format!(
                "{name}: {method:?}"
            )));
        }
        let is_dir = name.ends_with('/');
        if is_dir && f.size() != 0 {
            return Err(ContainerError::InvalidName(format!(
                "{name}: directory entry with content"
            )));
        }
        meta.push((name, method, f.compressed_size(), is_dir));
    }
    zip.validate_header_consistency().map_err(map_zip_err)?;

    // Pass 2: inflate with hard caps on what is actually produced.
    let mut total = 0usize;
    let mut out = Vec::with_capacity(meta.len());
    for (i, (name, method, compressed, is_dir)) in meta.into_iter().enumerate() {
        if is_dir {
            continue;
        }
        let mut f = zip.by_index(i).map_err(map_zip_err)?;
        let cap = limits.max_entry_bytes.min(limits.max_total_bytes - total);
        let mut data = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| malformed(format!("{name}: {e}")))?;
            if n == 0 {
                break;
            }
            data.extend_from_slice(buf.get(..n).unwrap_or(&[]));
            if data.len() > limits.ratio_exempt_bytes
                && data.len() as u64
                    > limits
                        .max_compression_ratio
                        .saturating_mul(compressed.max(1))
            {
                return Err(ContainerError::CompressionRatio(format!(
                    "{name}: more than {}x its {compressed} compressed bytes",
                    limits.max_compression_ratio
                )));
            }
            if data.len() > cap {
                return Err(if data.len() > limits.max_entry_bytes {
                    ContainerError::EntryTooLarge(format!(
                        "{name}: over {} bytes",
                        limits.max_entry_bytes
                    ))
                } else {
                    ContainerError::TooLarge(format!(
                        "inflated content over {} bytes",
                        limits.max_total_bytes
                    ))
                });
            }
        }
        total += data.len();
        if name == "mimetype" {
            if i != 0 {
                return Err(ContainerError::InvalidMimetype(
                    "not the first entry".into(),
                ));
            }
            if method != CompressionMethod::Stored {
                return Err(ContainerError::InvalidMimetype("compressed".into()));
            }
            if data != ASIC_MIMETYPE.as_bytes() {
                return Err(ContainerError::InvalidMimetype(
                    String::from_utf8_lossy(&data).into_owned(),
                ));
            }
        }
        out.push(Entry { name, data });
    }
    Ok(out)
}

/// Writes a zip: `mimetype` first and stored, then the given entries in order, each deflated
/// only where that pays ([`worth_deflating`]).
pub(crate) fn write(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, ContainerError> {
    let mut seen = HashSet::new();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    // Level 1: documents are mostly PDFs and images that do not compress further; a higher
    // level costs sealing time (10 MB: ~4x) for a few per cent of size.
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(1));
    w.start_file("mimetype", stored).map_err(write_err)?;
    w.write_all(ASIC_MIMETYPE.as_bytes()).map_err(write_err)?;
    seen.insert("mimetype".to_string());
    for (name, data) in entries {
        check_name(name).map_err(write_err)?;
        if !seen.insert(name.to_lowercase()) {
            return Err(ContainerError::Write(format!(
                "duplicate entry name {name}"
            )));
        }
        let options = if worth_deflating(data) {
            deflated
        } else {
            stored
        };
        w.start_file(*name, options).map_err(write_err)?;
        w.write_all(data).map_err(write_err)?;
    }
    Ok(w.finish().map_err(write_err)?.into_inner())
}

/// Whether deflating `data` pays: not for formats compressed already, not for content that
/// looks random, and not for small entries, where setting up the deflater (a few hundred KB
/// of state to clear) costs more than the bytes it saves. Stored entries also open faster.
fn worth_deflating(data: &[u8]) -> bool {
    /// Below this an entry is stored (the manifest and the signature are 1–5 KB).
    const MIN_DEFLATE: usize = 8 * 1024;
    data.len() >= MIN_DEFLATE && !already_compressed(data) && !looks_random(data)
}

/// Content whose first bytes are close to 8 bits of entropy per byte (encrypted or compressed
/// data of a format not recognized by its magic number): deflate at level 1 spent ~0.8 ms on
/// 100 KB of it to make it a little larger.
fn looks_random(data: &[u8]) -> bool {
    const SAMPLE: usize = 4096;
    /// Bits per byte; text and XML are at 4–6, deflated or encrypted data above 7.9.
    const RANDOM_ENTROPY: f64 = 7.5;
    let sample = data.get(..SAMPLE).unwrap_or(data);
    if sample.is_empty() {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in sample {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy > RANDOM_ENTROPY
}

/// Formats whose content is compressed already (PDF streams, images, archives): deflating them
/// again makes the container larger and slower to open, so they are stored as they are.
fn already_compressed(data: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"%PDF",
        b"\x89PNG",
        b"\xFF\xD8\xFF",
        b"GIF8",
        b"PK\x03\x04",
        b"\x1F\x8B",
    ];
    MAGIC.iter().any(|m| data.starts_with(m))
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn compressed_formats_random_content_and_small_entries_are_stored_and_text_is_deflated() {
        let pdf = [b"%PDF-1.7\n".as_slice(), &[7u8; 40_000]].concat();
        let text = "Vedtak om skatt for 2026. ".repeat(2000).into_bytes();
        let small = "Vedtak om skatt. ".repeat(100).into_bytes();
        let mut random = vec![0u8; 40_000];
        openssl::rand::rand_bytes(&mut random).unwrap();
        let zip = write(&[
            ("brev.pdf", &pdf),
            ("brev.txt", &text),
            ("kort.txt", &small),
            ("data.bin", &random),
        ])
        .unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let methods: Vec<_> = (0..archive.len())
            .map(|i| {
                let f = archive.by_index(i).unwrap();
                (f.name().unwrap().to_string(), f.compression())
            })
            .collect();
        assert_eq!(
            methods,
            [
                ("mimetype".to_owned(), CompressionMethod::Stored),
                ("brev.pdf".to_owned(), CompressionMethod::Stored),
                ("brev.txt".to_owned(), CompressionMethod::Deflated),
                ("kort.txt".to_owned(), CompressionMethod::Stored),
                ("data.bin".to_owned(), CompressionMethod::Stored),
            ]
        );
    }
}
