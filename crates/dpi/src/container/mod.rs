//! The dokumentpakke: ASiC-E container, manifest, XAdES, CMS, extensions.
