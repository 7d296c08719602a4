//! The dokumentpakke: ASiC-E container, manifest, XAdES, CMS, extensions.

mod ber;
mod c14n;
pub mod cms;
mod error;
pub mod xades;
mod xml;
mod zipio;

pub use error::ContainerError;

/// Limits applied while reading untrusted dokumentpakker. `Default` follows dpi-spec §5/§8.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum zip size, and maximum sum of inflated entry sizes (30 MB).
    pub max_total_bytes: usize,
    /// Maximum number of zip entries.
    pub max_entries: usize,
    /// Maximum inflated size of one entry.
    pub max_entry_bytes: usize,
    /// Maximum ratio inflated/compressed for one entry (checked on bytes actually inflated)…
    pub max_compression_ratio: u64,
    /// …for entries inflating to more than this many bytes (small entries are exempt).
    pub ratio_exempt_bytes: usize,
    /// Maximum size of one XML document (manifest, signatures, extension) before parsing.
    pub max_xml_bytes: usize,
    /// Maximum number of XML nodes in one document.
    pub max_xml_nodes: u32,
    /// Maximum BER nesting depth in CMS.
    pub max_ber_depth: usize,
    /// Maximum number of BER nodes in CMS.
    pub max_ber_nodes: usize,
    /// Maximum number of vedlegg (attachments) in the manifest.
    pub max_attachments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 30 * 1024 * 1024,
            max_entries: 512,
            max_entry_bytes: 30 * 1024 * 1024,
            max_compression_ratio: 100,
            ratio_exempt_bytes: 1024 * 1024,
            max_xml_bytes: 1024 * 1024,
            max_xml_nodes: 100_000,
            max_ber_depth: 32,
            max_ber_nodes: 200_000,
            max_attachments: 200,
        }
    }
}

/// Reads a zip under `limits` and verifies its `META-INF/signatures.xml` over every file outside
/// `META-INF/`. Lower level than [`read_asice`]: no manifest checks.
pub fn verify_zip_signature(
    zip: &[u8],
    limits: &Limits,
) -> Result<xades::VerifiedSignature, ContainerError> {
    let entries = zipio::read(zip, limits)?;
    let sig = entries
        .iter()
        .find(|e| e.name == "META-INF/signatures.xml")
        .ok_or_else(|| ContainerError::MissingEntry("META-INF/signatures.xml".into()))?;
    let files = entries
        .iter()
        .filter(|e| !e.name.starts_with("META-INF/") && e.name != "mimetype")
        .map(|e| (e.name.clone(), e.data.as_slice()))
        .collect();
    xades::verify(&sig.data, &files, limits)
}
