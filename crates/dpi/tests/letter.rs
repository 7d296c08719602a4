//! Whole letters: seal/open round trip (property test), corner-4 rules (§3.6 a–e), the bit-flip
//! corpus at letter level, and a bounded fuzz-style run over every parser on the open path.

use std::sync::OnceLock;

use domain::{ActorId, ConversationId, MessageId};
use dpi::container::{
    self, Avsender as MAvsender, Document, DocumentData, DocumentRole, Dokumentpakke, Extension,
    Lenke, Limits, Manifest, Mottaker, Tekst,
};
use dpi::letter::{LetterSpec, OpenedLetter, open_letter, seal_letter};
use dpi::message::{
    AdresseInformasjon, Avsender, Body, Digital, Dokumentpakkefingeravtrykk, Epostvarsel, Header,
    MessageType, Personmottaker, Process, Retur, Returposthaandtering, Sbd, Sikkerhetsnivaa,
    Timestamp, Utskrift, Utskriftstype, Varsler,
};
use dpi::testkit::{Key, TestPki, maskinporten_token};
use dpi::trust::TrustAnchors;
use openssl::x509::X509;
use proptest::prelude::*;
use time::OffsetDateTime;

struct World {
    pki: TestPki,
    /// Avsender (controller) 991825827, SEID-2 certificate.
    avsender: (X509, Key),
    /// Databehandler 810969342, old-style certificate.
    databehandler: (X509, Key),
    /// Mailbox provider 922020175 (the CMS recipient).
    provider: (X509, Key),
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let pki = TestPki::new().unwrap();
        let avsender = pki.enterprise("991825827", true, 2048).unwrap();
        let databehandler = pki.enterprise("810969342", false, 2048).unwrap();
        let provider = pki.enterprise("922020175", false, 2048).unwrap();
        World {
            pki,
            avsender,
            databehandler,
            provider,
        }
    })
}

const AVSENDER: &str = "0192:991825827";
const DATABEHANDLER: &str = "0192:810969342";
const PROVIDER: &str = "0192:922020175";

fn at() -> OffsetDateTime {
    time::macros::datetime!(2026-03-16 13:16:08.903 UTC)
}

fn placeholder_fp() -> Dokumentpakkefingeravtrykk {
    Dokumentpakkefingeravtrykk {
        digest_method: dpi::message::SHA256_URI.into(),
        digest_value: String::new(),
    }
}

fn digital_spec(sender: &str, docs: Vec<Document>, title: &str, postkasse: &str) -> LetterSpec {
    let avsender = ActorId::parse(AVSENDER).unwrap();
    let header = Header::new(
        MessageType::Digital,
        &ActorId::parse(sender).unwrap(),
        &ActorId::parse(PROVIDER).unwrap(),
        MessageId::new(),
        ConversationId::new(),
        Process::Digital,
        Timestamp(at()),
        None,
    );
    let body = Body::Digital(Digital {
        avsender: Avsender::new(&avsender),
        mottaker: Personmottaker {
            postkasseadresse: postkasse.into(),
        },
        dokumentpakkefingeravtrykk: placeholder_fp(),
        maskinportentoken: String::new(),
        sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa4,
        virkningsdato: None,
        virkningstidspunkt: None,
        aapningskvittering: Some(false),
        ikkesensitivtittel: title.into(),
        spraak: "no".into(),
        varsler: None,
    });
    LetterSpec {
        sbd: Sbd { header, body },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: Some(Mottaker {
                    personidentifikator: None,
                    postkasseadresse: postkasse.into(),
                }),
                avsender: MAvsender {
                    organisasjon: AVSENDER.into(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: docs,
        },
        signing_time: at(),
    }
}

fn doc(href: &str, bytes: &[u8]) -> Document {
    Document {
        href: href.into(),
        mime: "text/plain".into(),
        title: Some("Brev".into()),
        lang: Some("no".into()),
        role: DocumentRole::Hoveddokument,
        bytes: bytes.to_vec(),
        data: None,
    }
}

fn seal(spec: &LetterSpec, signer: &(X509, Key), supplier: Option<&str>) -> (String, Vec<u8>, Sbd) {
    let w = world();
    let token = maskinporten_token(AVSENDER, supplier, at().unix_timestamp()).unwrap();
    let (sealed, sbd) = seal_letter(
        spec,
        &w.pki.chain_for(&signer.0),
        &signer.1,
        &w.provider.0,
        &token,
    )
    .unwrap();
    (sealed.jwt, sealed.cms, sbd)
}

fn open(jwt: &str, cms: &[u8]) -> OpenedLetter {
    let w = world();
    open_letter(
        jwt,
        cms,
        &w.provider.1,
        &w.pki.anchors(),
        at(),
        &Limits::default(),
    )
}

fn codes(o: &OpenedLetter) -> Vec<String> {
    o.errors.iter().map(|e| e.code.clone()).collect()
}

#[test]
fn sealed_letter_opens_valid_and_untrusted_without_anchors() {
    let w = world();
    let spec = digital_spec(AVSENDER, vec![doc("brev.txt", b"Hei Ola")], "Brev", "ola#1");
    let (jwt, cms, sbd) = seal(&spec, &w.avsender, None);
    let o = open(&jwt, &cms);
    assert!(o.valid, "{:?}", o.errors);
    assert_eq!(o.sbd.as_ref().unwrap(), &sbd);
    assert_eq!(o.package.as_ref().unwrap(), &spec.package);
    assert!(o.zip.as_ref().unwrap().starts_with(b"PK"));

    let o = open_letter(
        &jwt,
        &cms,
        &w.provider.1,
        &TrustAnchors::none(),
        at(),
        &Limits::default(),
    );
    assert!(!o.valid);
    assert_eq!(codes(&o), vec!["chain_untrusted_no_anchors"]);
    // A time outside the certificates' validity.
    let late = time::macros::datetime!(2101-01-01 0:00 UTC);
    let o = open_letter(
        &jwt,
        &cms,
        &w.provider.1,
        &w.pki.anchors(),
        late,
        &Limits::default(),
    );
    assert_eq!(codes(&o), vec!["chain_validity_period"]);
}

#[test]
fn databehandler_signs_for_the_avsender_with_supplier_in_the_token() {
    let w = world();
    let spec = digital_spec(
        DATABEHANDLER,
        vec![doc("brev.txt", b"Hei")],
        "Brev",
        "ola#1",
    );
    let (jwt, cms, _) = seal(&spec, &w.databehandler, Some(DATABEHANDLER));
    let o = open(&jwt, &cms);
    assert!(o.valid, "{:?}", o.errors);

    // Same letter, but the token names no supplier: the databehandler's signature is wrong.
    let (jwt, cms, _) = seal(&spec, &w.databehandler, None);
    let c = codes(&open(&jwt, &cms));
    for code in [
        "jws_signer_mismatch",
        "sbd_sender_mismatch",
        "asic_signer_mismatch",
    ] {
        assert!(c.contains(&code.to_string()), "{code} not in {c:?}");
    }
}

#[test]
fn corner_four_rules_each_have_a_code() {
    let w = world();
    // d) avsender != consumer: message avsender changed to another org.
    let mut spec = digital_spec(AVSENDER, vec![doc("brev.txt", b"x")], "Brev", "ola#1");
    if let Body::Digital(d) = &mut spec.sbd.body {
        d.avsender = Avsender::new(&ActorId::parse("0192:974761076").unwrap());
    }
    let (jwt, cms, _) = seal(&spec, &w.avsender, None);
    let c = codes(&open(&jwt, &cms));
    assert!(c.contains(&"avsender_not_consumer".into()), "{c:?}");
    assert!(c.contains(&"manifest_avsender_mismatch".into()), "{c:?}");

    // The provider answers such a letter with a KLIENT feil naming the codes.
    let o = open(&jwt, &cms);
    let provider = ActorId::parse(PROVIDER).unwrap();
    let feil = dpi::receipt::klient_feil_for(&o, &provider, Timestamp(at()), MessageId::new())
        .unwrap()
        .unwrap();
    assert_eq!(feil.message_type(), MessageType::Feil);
    assert_eq!(
        feil.conversation_id(),
        o.sbd.as_ref().unwrap().conversation_id()
    );
    match &feil.body {
        Body::Feil(f) => assert!(
            f.detaljer
                .as_deref()
                .unwrap()
                .contains("avsender_not_consumer")
        ),
        other => panic!("{other:?}"),
    }
    assert!(feil.dpi_issues().is_empty());

    // manifest mottaker differs from the message's
    let mut spec = digital_spec(AVSENDER, vec![doc("brev.txt", b"x")], "Brev", "ola#1");
    spec.package
        .manifest
        .mottaker
        .as_mut()
        .unwrap()
        .postkasseadresse = "kari#2".into();
    let (jwt, cms, _) = seal(&spec, &w.avsender, None);
    assert_eq!(codes(&open(&jwt, &cms)), vec!["manifest_mottaker_mismatch"]);

    // c) fingerprint: a different (valid) dokumentpakke under the same message
    let spec = digital_spec(AVSENDER, vec![doc("brev.txt", b"x")], "Brev", "ola#1");
    let (jwt, _, _) = seal(&spec, &w.avsender, None);
    let (_, other_cms, _) = seal(&spec, &w.avsender, None);
    let o = open(&jwt, &other_cms);
    assert_eq!(codes(&o), vec!["fingerprint_mismatch"]);
    assert!(
        o.zip.is_none(),
        "no decryption of a dokumentpakke nobody vouched for"
    );

    // The recipient identifier is checked when the recipient certificate is given.
    let (jwt, cms, _) = seal(&spec, &w.avsender, None);
    let o = dpi::letter::open_letter_as(
        &jwt,
        &cms,
        &w.provider.1,
        &w.provider.0,
        &w.pki.anchors(),
        at(),
        &Limits::default(),
    );
    assert!(o.valid, "{:?}", o.errors);
    let o = dpi::letter::open_letter_as(
        &jwt,
        &cms,
        &w.provider.1,
        &w.databehandler.0,
        &w.pki.anchors(),
        at(),
        &Limits::default(),
    );
    assert_eq!(codes(&o), vec!["cms_recipient_mismatch"]);

    // Wrong recipient key
    let other = dpi::testkit::rsa_key(2048).unwrap();
    let (jwt, cms, _) = seal(&spec, &w.avsender, None);
    let o = open_letter(
        &jwt,
        &cms,
        &other,
        &w.pki.anchors(),
        at(),
        &Limits::default(),
    );
    assert!(!o.valid);
    assert!(o.errors[0].code.starts_with("cms_"), "{:?}", o.errors);

    // A receipt is not a letter; a JWS by a non-trusted PKI; a receipt-typed body.
    let other_pki = TestPki::new().unwrap();
    let (c2, k2) = other_pki.enterprise("991825827", true, 2048).unwrap();
    let token = maskinporten_token(AVSENDER, None, at().unix_timestamp()).unwrap();
    let (sealed, _) =
        seal_letter(&spec, &other_pki.chain_for(&c2), &k2, &w.provider.0, &token).unwrap();
    assert_eq!(
        codes(&open(&sealed.jwt, &sealed.cms)),
        vec!["chain_untrusted"]
    );
}

/// `token` with one claim replaced (the signature no longer fits, which open_letter cannot
/// tell: the embedded token's claims are read unverified).
fn with_claim(token: &str, claim: &str, value: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    claims[claim] = value;
    parts[1] = b64.encode(serde_json::to_vec(&claims).unwrap());
    parts.join(".")
}

#[test]
fn token_times_beyond_any_calendar_are_refused_without_overflow() {
    let w = world();
    let spec = digital_spec(AVSENDER, vec![doc("brev.txt", b"x")], "Brev", "ola#1");
    let good = maskinporten_token(AVSENDER, None, at().unix_timestamp()).unwrap();
    for (claim, value) in [
        ("exp", i64::MAX),
        ("exp", i64::MIN),
        ("iat", i64::MAX),
        ("iat", i64::MIN),
    ] {
        let token = with_claim(&good, claim, value.into());
        let (sealed, _) = seal_letter(
            &spec,
            &w.pki.chain_for(&w.avsender.0),
            &w.avsender.1,
            &w.provider.0,
            &token,
        )
        .unwrap();
        let o = open(&sealed.jwt, &sealed.cms);
        assert_eq!(codes(&o), vec!["token_claims_invalid"], "{claim} {value}");
        assert!(o.errors[0].detail.contains(claim), "{:?}", o.errors);
    }
    // The largest representable times are ordinary comparisons.
    let far = time::macros::datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
    let token = with_claim(&good, "exp", far.into());
    let (sealed, _) = seal_letter(
        &spec,
        &w.pki.chain_for(&w.avsender.0),
        &w.avsender.1,
        &w.provider.0,
        &token,
    )
    .unwrap();
    assert!(open(&sealed.jwt, &sealed.cms).valid);
}

#[test]
fn utskrift_round_trip() {
    let w = world();
    let mut spec = digital_spec(AVSENDER, vec![doc("brev.pdf", b"%PDF-1.4 test")], "x", "y");
    spec.package.documents[0].mime = "application/pdf".into();
    spec.package.manifest.mottaker = None;
    let adr = AdresseInformasjon {
        navn: Some("Ola Nordmann".into()),
        adresselinje1: Some("Liksomveien 22".into()),
        postnummer: Some("1234".into()),
        poststed: Some("Nordby".into()),
        ..Default::default()
    };
    spec.sbd.header = Header::new(
        MessageType::Utskrift,
        &ActorId::parse(AVSENDER).unwrap(),
        &ActorId::parse("0192:974761076").unwrap(),
        MessageId::new(),
        ConversationId::new(),
        Process::Utskrift,
        Timestamp(at()),
        Some("2026-03-17T14:16:08.729+01:00".into()),
    );
    spec.sbd.body = Body::Utskrift(Utskrift {
        avsender: Avsender::new(&ActorId::parse(AVSENDER).unwrap()),
        mottaker: adr.clone(),
        dokumentpakkefingeravtrykk: placeholder_fp(),
        maskinportentoken: String::new(),
        utskriftstype: Utskriftstype::Farge,
        retur: Retur {
            mottaker: AdresseInformasjon {
                landkode: Some("SE".into()),
                postnummer: None,
                poststed: None,
                ..adr
            },
            returposthaandtering: Returposthaandtering::MakuleringMedMelding,
        },
        posttype: Some(dpi::message::Posttype::A),
    });
    let (jwt, cms, sbd) = seal(&spec, &w.avsender, None);
    let o = open(&jwt, &cms);
    assert!(o.valid, "{:?}", o.errors);
    assert_eq!(o.sbd.unwrap(), sbd);
    assert_eq!(o.package.unwrap(), spec.package);
}

// ---------------------------------------------------------------------------------------------
// Property test: open(seal(x)) reproduces x.

fn title_strategy() -> impl Strategy<Value = String> {
    "[a-zA-ZæøåÆØÅ0-9 ,.!?-]{1,60}"
}

fn mime_strategy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "application/pdf",
        "text/plain",
        "text/html",
        "image/png",
        "application/vnd.oasis.opendocument.text",
    ])
}

prop_compose! {
    fn document_strategy()(
        stem in "[a-z][a-z0-9_]{3,20}",
        mime in mime_strategy(),
        title in prop::option::of(title_strategy()),
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        lenke in prop::option::of(("[a-z]{1,20}", title_strategy(), "[A-Za-z ]{1,30}")),
    ) -> Document {
        Document {
            href: format!("{stem}.dat"),
            mime: mime.into(),
            lang: title.as_ref().map(|_| "nb".to_string()),
            title,
            role: DocumentRole::Vedlegg,
            bytes,
            data: lenke.map(|(path, besk, knapp)| DocumentData {
                href: format!("{stem}-lenke.xml"),
                extension: Extension::Lenke(Lenke {
                    url: format!("https://minside.example.no/{path}"),
                    beskrivelse: Some(Tekst::new(besk, "nb")),
                    knapp_tekst: Some(Tekst::new(knapp, "nb")),
                    frist: Some("2026-04-01T12:00:00+02:00".into()),
                }),
            }),
        }
    }
}

prop_compose! {
    fn letter_strategy()(
        docs in prop::collection::vec(document_strategy(), 1..4),
        title in title_strategy(),
        postkasse in "[a-z]{2,10}#[A-Z0-9]{4}",
        nivaa in prop::bool::ANY,
        aapning in prop::option::of(prop::bool::ANY),
        epost in prop::option::of(("[a-z]{1,10}@[a-z]{1,10}\\.no", "[a-zA-Z ]{1,100}", prop::collection::btree_set(0u8..=25, 1..5))),
        avsenderidentifikator in prop::option::of("[a-z0-9]{1,30}"),
        use_databehandler in prop::bool::ANY,
        print in prop::option::of((
            "[A-Za-zæøå ]{1,40}",
            "[A-Za-z0-9 ]{1,40}",
            "[0-9]{4}",
            "[A-Za-z]{1,20}",
            prop::option::of("[A-Z]{2}"),
            prop::bool::ANY,
        )),
    ) -> (LetterSpec, bool) {
        let mut docs = docs;
        for (i, d) in docs.iter_mut().enumerate() {
            d.href = format!("{i}-{}", d.href);
            if let Some(data) = &mut d.data {
                data.href = format!("{i}-{}", data.href);
            }
        }
        docs[0].role = DocumentRole::Hoveddokument;
        let sender = if use_databehandler { DATABEHANDLER } else { AVSENDER };
        let mut spec = digital_spec(sender, docs, &title, &postkasse);
        if let Body::Digital(d) = &mut spec.sbd.body {
            d.sikkerhetsnivaa = if nivaa { Sikkerhetsnivaa::Nivaa3 } else { Sikkerhetsnivaa::Nivaa4 };
            d.aapningskvittering = aapning;
            d.avsender.avsenderidentifikator = avsenderidentifikator.clone();
            d.varsler = epost.map(|(adr, tekst, rep)| Varsler {
                epostvarsel: Some(Epostvarsel {
                    epostadresse: adr,
                    varslingstekst: tekst,
                    repetisjoner: rep.into_iter().collect(),
                }),
                smsvarsel: None,
                extra: Default::default(),
            });
        }
        spec.package.manifest.avsender.avsenderidentifikator = avsenderidentifikator.clone();
        if let Some((navn, linje, postnr, sted, landkode, farge)) = print {
            let adr = match landkode {
                None => AdresseInformasjon {
                    navn: Some(navn),
                    adresselinje1: Some(linje),
                    postnummer: Some(postnr),
                    poststed: Some(sted),
                    ..Default::default()
                },
                Some(k) => AdresseInformasjon {
                    navn: Some(navn),
                    adresselinje1: Some(linje),
                    adresselinje2: Some(format!("{postnr} {sted}")),
                    landkode: Some(k),
                    ..Default::default()
                },
            };
            let mut av = Avsender::new(&ActorId::parse(AVSENDER).unwrap());
            av.avsenderidentifikator = avsenderidentifikator;
            spec.sbd.header = Header::new(
                MessageType::Utskrift,
                &ActorId::parse(sender).unwrap(),
                &ActorId::parse("0192:974761076").unwrap(),
                MessageId::new(),
                ConversationId::new(),
                Process::Utskrift,
                Timestamp(at()),
                None,
            );
            spec.sbd.body = Body::Utskrift(Utskrift {
                avsender: av,
                mottaker: adr.clone(),
                dokumentpakkefingeravtrykk: placeholder_fp(),
                maskinportentoken: String::new(),
                utskriftstype: if farge { Utskriftstype::Farge } else { Utskriftstype::SortHvit },
                retur: Retur {
                    mottaker: adr,
                    returposthaandtering: Returposthaandtering::DirekteRetur,
                },
                posttype: None,
            });
            spec.package.manifest.mottaker = None;
        }
        (spec, use_databehandler)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn open_of_seal_reproduces_every_field((spec, via_databehandler) in letter_strategy()) {
        let w = world();
        let (signer, supplier) = if via_databehandler {
            (&w.databehandler, Some(DATABEHANDLER))
        } else {
            (&w.avsender, None)
        };
        let (jwt, cms, sent) = seal(&spec, signer, supplier);
        let o = open(&jwt, &cms);
        prop_assert!(o.valid, "{:?}", o.errors);
        let got = o.sbd.unwrap();
        prop_assert_eq!(&got, &sent);
        // Every field of the spec, apart from the two that sealing fills in.
        let mut got_spec_body = got.body.clone();
        match (&mut got_spec_body, &spec.sbd.body) {
            (Body::Digital(g), Body::Digital(s)) => {
                g.dokumentpakkefingeravtrykk = s.dokumentpakkefingeravtrykk.clone();
                g.maskinportentoken = s.maskinportentoken.clone();
            }
            (Body::Utskrift(g), Body::Utskrift(s)) => {
                g.dokumentpakkefingeravtrykk = s.dokumentpakkefingeravtrykk.clone();
                g.maskinportentoken = s.maskinportentoken.clone();
            }
            _ => prop_assert!(false, "letter type changed"),
        }
        prop_assert_eq!(&got_spec_body, &spec.sbd.body);
        prop_assert_eq!(&got.header, &spec.sbd.header);
        prop_assert_eq!(o.package.unwrap(), spec.package.clone());
        prop_assert_eq!(o.signing_time, Some(spec.signing_time));
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile corpus at the letter level.

fn small_letter() -> (String, Vec<u8>) {
    static L: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    L.get_or_init(|| {
        let spec = digital_spec(AVSENDER, vec![doc("a.txt", b"hi")], "B", "o#1");
        let (jwt, cms, _) = seal(&spec, &world().avsender, None);
        (jwt, cms)
    })
    .clone()
}

#[test]
fn every_bit_flip_of_the_forretningsmelding_is_refused() {
    let (jwt, cms) = small_letter();
    assert!(open(&jwt, &cms).valid);
    let bytes = jwt.as_bytes();
    let mut tried = 0;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << bit;
            // Non-UTF-8 cannot even be handed over as a JWS string: refused at the boundary.
            let Ok(s) = std::str::from_utf8(&b) else {
                continue;
            };
            let o = open(s, &cms);
            assert!(!o.valid, "flip {i}:{bit} accepted");
            assert!(
                o.errors.iter().any(|e| e.code.starts_with("jws_")),
                "flip {i}:{bit}: {:?}",
                o.errors
            );
            assert!(o.zip.is_none());
            tried += 1;
        }
    }
    assert!(tried > bytes.len() * 6);
}

#[test]
fn every_bit_flip_of_the_dokumentpakke_is_refused() {
    let (jwt, cms) = small_letter();
    for i in 0..cms.len() {
        for bit in 0..8 {
            let mut b = cms.clone();
            b[i] ^= 1 << bit;
            let o = open(&jwt, &b);
            assert!(!o.valid, "flip {i}:{bit} accepted");
            assert_eq!(codes(&o), vec!["fingerprint_mismatch"], "flip {i}:{bit}");
        }
    }
}

#[test]
fn truncations_and_garbage_are_refused_without_panic() {
    let (jwt, cms) = small_letter();
    for n in (0..cms.len()).step_by(7) {
        assert!(!open(&jwt, &cms[..n]).valid);
    }
    for n in (0..jwt.len()).step_by(5) {
        if let Some(s) = jwt.get(..n) {
            assert!(!open(s, &cms).valid);
        }
    }
    assert!(!open("", &[]).valid);
    assert!(!open(&"A.".repeat(600_000), &cms).valid);
}

/// Bounded fuzz-style run: pseudo-random mutations (flips, insertions, deletions, splices) of
/// valid inputs into every parser on the open path: SBD JSON, JWS, token, CMS/BER, ASiC zip,
/// manifest and signature XML, extensions. The only assertion is "no panic, bounded output".
#[test]
fn fuzz_parsers_bounded() {
    let w = world();
    let spec = digital_spec(AVSENDER, vec![doc("a.txt", b"hello")], "B", "o#1");
    let (jwt, cms, sbd) = seal(&spec, &w.avsender, None);
    let zip = container::cms::decrypt(&cms, &w.provider.1, &Limits::default()).unwrap();
    let json = sbd.to_json();
    let lenke = br#"<lenke xmlns="http://begrep.difi.no/sdp/utvidelser/lenke"><url>https://a.no</url></lenke>"#;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut mutate = |input: &[u8]| -> Vec<u8> {
        let mut v = input.to_vec();
        for _ in 0..(1 + next() % 4) {
            let len = v.len().max(1) as u64;
            match next() % 5 {
                0 if !v.is_empty() => {
                    let i = (next() % len) as usize;
                    v[i] ^= 1 << (next() % 8);
                }
                1 if !v.is_empty() => {
                    let i = (next() % len) as usize;
                    v[i] = next() as u8;
                }
                2 => {
                    let i = (next() % (len + 1)) as usize;
                    v.insert(i.min(v.len()), next() as u8);
                }
                3 if !v.is_empty() => {
                    let i = (next() % len) as usize;
                    let n = (next() % 16) as usize;
                    v.drain(i..(i + n).min(v.len()));
                }
                _ if v.len() > 2 => {
                    let a = (next() % len) as usize;
                    let b = (next() % len) as usize;
                    let (a, b) = (a.min(b), a.max(b));
                    let chunk = v[a..b].to_vec();
                    v.extend_from_slice(&chunk);
                }
                _ => {}
            }
        }
        v
    };
    let limits = Limits::default();
    for _ in 0..1500 {
        let _ = Sbd::parse(&mutate(&json));
        let m = mutate(jwt.as_bytes());
        let s = String::from_utf8_lossy(&m);
        let _ = dpi::jws::verify(&s);
        let _ = dpi::token::parse_unverified(&s);
        let _ = container::read_asice(&mutate(&zip), &limits);
        let _ = container::Extension::parse(
            dpi::container::extensions::MIME_LENKE,
            &mutate(lenke),
            &limits,
        );
    }
    // CMS mutations go through the private-key path: fewer of them.
    for _ in 0..150 {
        let _ = container::cms::decrypt(&mutate(&cms), &w.provider.1, &limits);
    }
}
