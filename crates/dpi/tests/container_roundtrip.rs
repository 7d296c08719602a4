//! Property test: `read_asice(write_asice(p)) == p` for generated packages (names needing URI
//! encoding, titles with any printable text, attachments, lenke extensions, optional parts), and
//! `cms::decrypt(cms::encrypt(zip)) == zip`.

mod container_common;
use container_common::*;

use std::sync::OnceLock;

use dpi::container::{
    ALLOWED_DOCUMENT_MIME, Avsender, Document, DocumentData, DocumentRole, Dokumentpakke,
    Extension, Lenke, Limits, Manifest, Mottaker, Tekst, cms, read_asice, write_asice,
};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use proptest::prelude::*;

fn keys() -> &'static (X509, PKey<Private>) {
    static K: OnceLock<(X509, PKey<Private>)> = OnceLock::new();
    K.get_or_init(|| self_signed("Avsender", 2048))
}

fn tekst(max: usize) -> impl Strategy<Value = Tekst> {
    let text = proptest::string::string_regex(&format!("\\PC{{1,{max}}}")).unwrap();
    (text, "[a-zA-Z]{2}").prop_map(|(t, l)| Tekst { text: t, lang: l })
}

fn lenke() -> impl Strategy<Value = Lenke> {
    (
        "https?://[a-z]{1,12}\\.no(/[a-zA-Z0-9_.~-]{0,12}){0,3}",
        proptest::option::of(tekst(70)),
        proptest::option::of(tekst(30)),
        proptest::option::of(
            "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T[01][0-9]:[0-5][0-9]:[0-5][0-9](Z|\\+0[12]:00)",
        ),
    )
        .prop_map(|(url, beskrivelse, knapp_tekst, frist)| Lenke {
            url,
            beskrivelse,
            knapp_tekst,
            frist,
        })
}

fn document(i: usize, role: DocumentRole) -> impl Strategy<Value = Document> {
    (
        "[a-zA-Z0-9 æøåÆØÅ()+%#&_.-]{1,40}",
        proptest::sample::select(ALLOWED_DOCUMENT_MIME),
        proptest::option::of(tekst(255)),
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::option::of(lenke()),
    )
        .prop_map(move |(name, mime, title, bytes, lenke)| Document {
            href: format!("d{i}-{name}"),
            mime: mime.to_string(),
            title: title.as_ref().map(|t| t.text.clone()),
            lang: title.map(|t| t.lang),
            role,
            bytes,
            data: lenke.map(|l| DocumentData {
                href: format!("d{i}-lenke.xml"),
                extension: Extension::Lenke(l),
            }),
        })
}

fn package() -> impl Strategy<Value = Dokumentpakke> {
    let vedlegg = (0usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|i| document(i + 1, DocumentRole::Vedlegg))
            .collect::<Vec<_>>()
    });
    (
        proptest::option::of(("[0-9]{11}", "\\PC{1,40}")),
        "0192:[0-9]{9}",
        proptest::option::of("[a-zA-Z0-9:]{0,100}"),
        proptest::option::of("\\PC{0,40}"),
        document(0, DocumentRole::Hoveddokument),
        vedlegg,
    )
        .prop_map(
            |(mottaker, org, avsid, faktura, hoved, vedlegg)| Dokumentpakke {
                manifest: Manifest {
                    mottaker: mottaker.map(|(p, adr)| Mottaker {
                        personidentifikator: Some(p),
                        postkasseadresse: adr,
                    }),
                    avsender: Avsender {
                        organisasjon: org,
                        avsenderidentifikator: avsid,
                        faktura_referanse: faktura,
                    },
                    lenke: None,
                },
                documents: std::iter::once(hoved).chain(vedlegg).collect(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn write_read_roundtrip(p in package(), secs in 0i64..4_000_000_000, millis in 0i64..1000) {
        let (cert, key) = keys();
        let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap() + time::Duration::milliseconds(millis);
        let zip = write_asice(&p, std::slice::from_ref(cert), key, t).unwrap();
        let v = read_asice(&zip, &Limits::default()).unwrap();
        prop_assert_eq!(&v.package, &p);
        prop_assert_eq!(v.signing_time, t);
        let c = cms::encrypt(&zip, cert).unwrap();
        prop_assert_eq!(cms::decrypt(&c, key, &Limits::default()).unwrap(), zip);
    }
}
