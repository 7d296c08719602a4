//! One error type for everything in the dokumentpakke, with a stable snake_case code per
//! refusal reason so that receipts, logs and tests can name the exact defence that fired.

/// Why a dokumentpakke (CMS, ASiC-E zip, manifest, XAdES signature or extension) was refused,
/// or why writing one failed. `code()` is stable; the `Display` text is a human detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    // --- BER / CMS -------------------------------------------------------------------------
    /// The BER/DER input ends before a declared length or before an end-of-contents marker.
    #[error("truncated BER: {0}")]
    BerTruncated(String),
    /// Not valid BER (bad tag, bad length, trailing bytes, wrong type where one is required).
    #[error("malformed BER: {0}")]
    BerMalformed(String),
    /// BER nesting deeper than the limit, or more TLV nodes than the limit.
    #[error("BER nesting or node count exceeds the limit: {0}")]
    BerLimit(String),
    /// Well-formed BER but not the CMS EnvelopedData profile of the dokumentpakke.
    #[error("unexpected CMS structure: {0}")]
    CmsStructure(String),
    /// An algorithm we do not accept (key transport other than RSAES-OAEP, cipher other than AES-CBC…).
    #[error("unsupported CMS algorithm: {0}")]
    CmsUnsupportedAlgorithm(String),
    /// More than one recipientInfo: the profile has exactly one KeyTransRecipientInfo (§5.4).
    #[error("more than one recipient: {0}")]
    CmsRecipientCount(String),
    /// No recipientInfo names the given recipient certificate (issuer and serial, or SKI).
    #[error("no recipient matches the certificate: {0}")]
    CmsRecipientMismatch(String),
    /// The content-encryption key could not be recovered with the given private key.
    #[error("cannot decrypt the content-encryption key: {0}")]
    CmsKeyDecrypt(String),
    /// The content could not be decrypted (wrong key material or bad padding).
    #[error("cannot decrypt the content: {0}")]
    CmsContentDecrypt(String),

    // --- ZIP / ASiC-E ----------------------------------------------------------------------
    /// Input or inflated content larger than the total-size limit (30 MB by default).
    #[error("package too large: {0}")]
    TooLarge(String),
    /// More zip entries than allowed.
    #[error("too many zip entries: {0}")]
    TooManyEntries(String),
    /// One entry inflates to more than the per-entry limit.
    #[error("zip entry too large: {0}")]
    EntryTooLarge(String),
    /// An entry inflates to more than the allowed ratio of its compressed size (zip bomb).
    #[error("compression ratio exceeds the limit: {0}")]
    CompressionRatio(String),
    /// Not a readable zip (bad central directory, CRC mismatch, inconsistent headers…).
    #[error("malformed zip: {0}")]
    ZipMalformed(String),
    /// A compression method other than stored or deflate.
    #[error("unsupported zip compression method: {0}")]
    UnsupportedCompression(String),
    /// An encrypted zip entry.
    #[error("encrypted zip entry: {0}")]
    EncryptedEntry(String),
    /// An absolute entry name (`/x`, `C:x`).
    #[error("absolute path in zip entry name: {0}")]
    AbsolutePath(String),
    /// A `..` path segment.
    #[error("path traversal in zip entry name: {0}")]
    PathTraversal(String),
    /// A backslash in an entry name.
    #[error("backslash in zip entry name: {0}")]
    BackslashInName(String),
    /// Two entries with the same name.
    #[error("duplicate zip entry name: {0}")]
    DuplicateName(String),
    /// Two entries whose names differ only by case.
    #[error("zip entry names collide when case is ignored: {0}")]
    CaseCollision(String),
    /// An otherwise unacceptable entry name (empty, control characters, empty segments…).
    #[error("invalid zip entry name: {0}")]
    InvalidName(String),
    /// The `mimetype` entry is present but not first, not stored or has the wrong content.
    #[error("invalid ASiC mimetype entry: {0}")]
    InvalidMimetype(String),
    /// A mandatory entry is missing (`manifest.xml`, `META-INF/signatures.xml`).
    #[error("missing entry: {0}")]
    MissingEntry(String),
    /// A file outside `META-INF/` that neither the manifest nor the signature accounts for.
    #[error("file not listed in the manifest: {0}")]
    UnlistedFile(String),

    // --- XML -------------------------------------------------------------------------------
    /// A document type declaration (DTD), the vehicle of XXE and entity-expansion attacks.
    #[error("XML with a DTD or entity declarations is refused: {0}")]
    XmlDtd(String),
    /// XML larger than the size cap or with more nodes than the node limit.
    #[error("XML exceeds the size or node limit: {0}")]
    XmlLimit(String),
    /// Not well-formed XML (or not UTF-8).
    #[error("malformed XML: {0}")]
    XmlMalformed(String),

    // --- manifest ----------------------------------------------------------------------------
    /// manifest.xml does not follow `sdp-manifest.xsd` (element, cardinality, length, pattern).
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    /// A document MIME type outside the allowed list.
    #[error("MIME type not allowed: {0}")]
    MimeNotAllowed(String),
    /// A manifest `href` (document or `data`) that is not in the container.
    #[error("manifest href not found in the container: {0}")]
    HrefNotFound(String),
    /// More than 200 vedlegg.
    #[error("too many attachments: {0}")]
    TooManyAttachments(String),

    // --- extensions --------------------------------------------------------------------------
    /// An extension document (lenke, bevis, arrangement) violating its XSD.
    #[error("invalid extension: {0}")]
    ExtensionInvalid(String),

    // --- XAdES -------------------------------------------------------------------------------
    /// signatures.xml does not have the XAdES/ASiC structure we accept.
    #[error("invalid signature structure: {0}")]
    SignatureStructure(String),
    /// An algorithm (C14N, signature, digest, transform) outside the accepted profile.
    #[error("unsupported signature algorithm: {0}")]
    SignatureAlgorithm(String),
    /// The SignatureValue does not verify over the canonical SignedInfo.
    #[error("signature value does not verify: {0}")]
    SignatureInvalid(String),
    /// A Reference digest does not match the referenced file or SignedProperties.
    #[error("digest mismatch: {0}")]
    DigestMismatch(String),
    /// A file outside META-INF that no Reference covers (signature wrapping: unsigned extra file).
    #[error("file not covered by the signature: {0}")]
    UnsignedFile(String),
    /// A file covered by more than one Reference.
    #[error("file referenced more than once: {0}")]
    DuplicateReference(String),
    /// A Reference URI naming no file in the container (or a file inside META-INF).
    #[error("reference target not found: {0}")]
    ReferenceNotFound(String),
    /// The SignedProperties reference points at something other than this signature's
    /// SignedProperties (signature wrapping: Id pointing elsewhere).
    #[error("reference points at the wrong element: {0}")]
    ReferenceTarget(String),
    /// The same Id value on two elements.
    #[error("duplicate Id attribute: {0}")]
    DuplicateId(String),
    /// SigningCertificate(V2) does not match the certificate in KeyInfo.
    #[error("signing certificate mismatch: {0}")]
    SigningCertificateMismatch(String),
    /// A certificate in KeyInfo is not a parsable X.509 certificate or has an unusable key.
    #[error("invalid certificate: {0}")]
    CertificateInvalid(String),
    /// An RSA key shorter than 2048 bits.
    #[error("key too weak: {0}")]
    WeakKey(String),
    /// SigningTime missing or not an xsd:dateTime.
    #[error("invalid signing time: {0}")]
    SigningTime(String),

    // --- writing -----------------------------------------------------------------------------
    /// Building a container failed (invalid input to the writer, or a crypto library error).
    #[error("cannot write the container: {0}")]
    Write(String),
}

impl ContainerError {
    /// Stable snake_case code, the same in every release.
    pub fn code(&self) -> &'static str {
        use ContainerError::*;
        match self {
            BerTruncated(_) => "ber_truncated",
            BerMalformed(_) => "ber_malformed",
            BerLimit(_) => "ber_limit",
            CmsStructure(_) => "cms_structure",
            CmsUnsupportedAlgorithm(_) => "cms_unsupported_algorithm",
            CmsRecipientCount(_) => "cms_recipient_count",
            CmsRecipientMismatch(_) => "cms_recipient_mismatch",
            CmsKeyDecrypt(_) => "cms_key_decrypt_failed",
            CmsContentDecrypt(_) => "cms_content_decrypt_failed",
            TooLarge(_) => "package_too_large",
            TooManyEntries(_) => "too_many_entries",
            EntryTooLarge(_) => "entry_too_large",
            CompressionRatio(_) => "compression_ratio",
            ZipMalformed(_) => "zip_malformed",
            UnsupportedCompression(_) => "unsupported_compression",
            EncryptedEntry(_) => "encrypted_entry",
            AbsolutePath(_) => "absolute_path",
            PathTraversal(_) => "path_traversal",
            BackslashInName(_) => "backslash_in_name",
            DuplicateName(_) => "duplicate_name",
            CaseCollision(_) => "case_collision",
            InvalidName(_) => "invalid_name",
            InvalidMimetype(_) => "invalid_mimetype",
            MissingEntry(_) => "missing_entry",
            UnlistedFile(_) => "unlisted_file",
            XmlDtd(_) => "xml_dtd_forbidden",
            XmlLimit(_) => "xml_limit",
            XmlMalformed(_) => "xml_malformed",
            ManifestInvalid(_) => "manifest_invalid",
            MimeNotAllowed(_) => "mime_not_allowed",
            HrefNotFound(_) => "href_not_found",
            TooManyAttachments(_) => "too_many_attachments",
            ExtensionInvalid(_) => "extension_invalid",
            SignatureStructure(_) => "signature_structure",
            SignatureAlgorithm(_) => "signature_algorithm",
            SignatureInvalid(_) => "signature_invalid",
            DigestMismatch(_) => "digest_mismatch",
            UnsignedFile(_) => "unsigned_file",
            DuplicateReference(_) => "duplicate_reference",
            ReferenceNotFound(_) => "reference_not_found",
            ReferenceTarget(_) => "reference_target_mismatch",
            DuplicateId(_) => "duplicate_id",
            SigningCertificateMismatch(_) => "signing_certificate_mismatch",
            CertificateInvalid(_) => "certificate_invalid",
            WeakKey(_) => "weak_key",
            SigningTime(_) => "signing_time_invalid",
            Write(_) => "write_failed",
        }
    }

    /// Every code `code()` can return, for tests and documentation.
    pub const ALL_CODES: &'static [&'static str] = &[
        "ber_truncated",
        "ber_malformed",
        "ber_limit",
        "cms_structure",
        "cms_unsupported_algorithm",
        "cms_recipient_count",
        "cms_recipient_mismatch",
        "cms_key_decrypt_failed",
        "cms_content_decrypt_failed",
        "package_too_large",
        "too_many_entries",
        "entry_too_large",
        "compression_ratio",
        "zip_malformed",
        "unsupported_compression",
        "encrypted_entry",
        "absolute_path",
        "path_traversal",
        "backslash_in_name",
        "duplicate_name",
        "case_collision",
        "invalid_name",
        "invalid_mimetype",
        "missing_entry",
        "unlisted_file",
        "xml_dtd_forbidden",
        "xml_limit",
        "xml_malformed",
        "manifest_invalid",
        "mime_not_allowed",
        "href_not_found",
        "too_many_attachments",
        "extension_invalid",
        "signature_structure",
        "signature_algorithm",
        "signature_invalid",
        "digest_mismatch",
        "unsigned_file",
        "duplicate_reference",
        "reference_not_found",
        "reference_target_mismatch",
        "duplicate_id",
        "signing_certificate_mismatch",
        "certificate_invalid",
        "weak_key",
        "signing_time_invalid",
        "write_failed",
    ];
}

pub(crate) fn write_err(e: impl std::fmt::Display) -> ContainerError {
    ContainerError::Write(e.to_string())
}
