//! ASiC-E dokumentpakke: the published Digdir containers read and verify; our writer's output
//! reads back to the same package (documents, titles, extensions, names needing URI encoding);
//! manifest and extension samples parse and round-trip.

mod container_common;
use container_common::*;

use dpi::container::{
    Arrangement, ArrangementLenke, Avsender, Bevis, Bevisholder, Document, DocumentData,
    DocumentRole, Dokumentpakke, Extension, Gyldighetsperiode, Lenke, Limits, Maanedstidspunkt,
    Manifest, Moteplass, Mottaker, Strekkode, StrekkodeType, Tekst, extensions, manifest,
    read_asice, write_asice,
};

fn t0() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

#[test]
fn digdir_containers_read() {
    let Some(v) = vectors() else { return };
    let z = read(v.komplette.join("digital-dokumentpakke.zip"));
    let a = read_asice(&z, &Limits::default()).unwrap();
    let p = &a.package;
    assert_eq!(p.manifest.avsender.organisasjon, "0192:991825827");
    assert_eq!(
        p.manifest.mottaker.as_ref().unwrap().postkasseadresse,
        "0000487204"
    );
    assert_eq!(p.documents.len(), 1);
    let d = &p.documents[0];
    assert_eq!(
        (d.href.as_str(), d.mime.as_str(), d.role),
        ("Test.txt", "text/plain", DocumentRole::Hoveddokument)
    );
    assert_eq!(
        (d.title.as_deref(), d.lang.as_deref()),
        (Some("Test.txt"), Some("no"))
    );
    assert_eq!(a.signing_time.unix_timestamp(), 1_647_436_568);
    assert_eq!(a.signer_chain.len(), 3);

    let z = read(v.komplette.join("utskrift-dokumentpakke.zip"));
    let a = read_asice(&z, &Limits::default()).unwrap();
    assert!(a.package.manifest.mottaker.is_none());
    let d = &a.package.documents[0];
    assert_eq!(
        (d.href.as_str(), d.mime.as_str(), d.bytes.len()),
        ("my.pdf", "application/pdf", 35957)
    );
    assert!(d.bytes.starts_with(b"%PDF"));
}

fn tekst(t: &str) -> Tekst {
    Tekst::new(t, "nb")
}

pub fn sample_package() -> Dokumentpakke {
    let lenke = Lenke {
        url: "https://www.avsender.no/svar".into(),
        beskrivelse: Some(tekst("Vennligst svar på denne viktige meldingen")),
        knapp_tekst: Some(tekst("Svar")),
        frist: Some("2027-10-01T12:00:00+02:00".into()),
    };
    let bevis = Bevis {
        utsteder_visningsnavn: Some(tekst("Bekkestua Bibliotek")),
        bakgrunnsfarge: Some("#F0EC99".into()),
        utstedt_tidspunkt: None,
        gyldighetsperiode: Some(Gyldighetsperiode::AarligRepeterendePeriode {
            start_aar: Some(2020),
            slutt_aar: Some(2119),
            fra: Maanedstidspunkt {
                maaned: 4,
                dag: None,
                time: None,
                minutt: None,
                tidssone: Some("+02:00".into()),
            },
            til: Maanedstidspunkt {
                maaned: 10,
                dag: Some(31),
                time: Some(23),
                minutt: Some(59),
                tidssone: None,
            },
        }),
        bevisholder: Bevisholder {
            fornavn: "Tore".into(),
            etternavn: "Hund".into(),
            foedselsnummer: None,
            adresse: None,
        },
        tittel: tekst("Medlemskort"),
        bevis_id_navn: None,
        bevis_id_verdi: Some("000000012321123".into()),
        attributt: vec![],
        info: vec![],
    };
    let arrangement = Arrangement {
        tittel: tekst("Vaksinering"),
        tidsrom_tittel: None,
        tidsrom: vec![],
        oppmote_informasjon: Some(tekst("Møt opp i tide <&>\n\ttakk")),
        moteplass: Moteplass {
            tittel: tekst("Legevakten"),
            navn: "Sagene".into(),
            gateadresse: None,
            postnummer: Some("0473".into()),
            sted: Some("Oslo".into()),
            land: None,
        },
        strekkode: Some(Strekkode {
            tittel: None,
            verdi: "1234567890".into(),
            kind: StrekkodeType::Code128,
            tekst: None,
            vis_verdi: Some(false),
        }),
        info: vec![],
        lenker: vec![ArrangementLenke {
            navn: tekst("Les mer"),
            url: "https://valg.no".into(),
        }],
    };
    let doc = |href: &str, mime: &str, role, data: Option<DocumentData>| Document {
        href: href.into(),
        mime: mime.into(),
        title: Some(format!("Tittel for {href}")),
        lang: Some("no".into()),
        role,
        bytes: format!("innhold i {href}").repeat(50).into_bytes(),
        data,
    };
    Dokumentpakke {
        manifest: Manifest {
            mottaker: Some(Mottaker {
                personidentifikator: Some("04817197073".into()),
                postkasseadresse: "ola.nordmann#0ABC".into(),
            }),
            avsender: Avsender {
                organisasjon: "0192:991825827".into(),
                avsenderidentifikator: Some("991825827:prosjekt".into()),
                faktura_referanse: Some("ABC barnehage".into()),
            },
            lenke: None,
        },
        documents: vec![
            doc(
                "vedtak 2024 (endelig).pdf",
                "application/pdf",
                DocumentRole::Hoveddokument,
                Some(DocumentData {
                    href: "lenke.xml".into(),
                    extension: Extension::Lenke(lenke),
                }),
            ),
            doc("info.html", "text/html", DocumentRole::Vedlegg, None),
            doc(
                "kort.txt",
                "text/plain",
                DocumentRole::Vedlegg,
                Some(DocumentData {
                    href: "bevis.xml".into(),
                    extension: Extension::Bevis(bevis),
                }),
            ),
            doc(
                "æøå.png",
                "image/png",
                DocumentRole::Vedlegg,
                Some(DocumentData {
                    href: "arrangement.xml".into(),
                    extension: Extension::Arrangement(arrangement),
                }),
            ),
        ],
    }
}

#[test]
fn write_then_read_roundtrips() {
    let (cert, key) = self_signed("Avsender AS", 2048);
    let p = sample_package();
    let zip = write_asice(&p, std::slice::from_ref(&cert), &key, t0()).unwrap();
    let a = read_asice(&zip, &Limits::default()).unwrap();
    assert_eq!(a.package, p);
    assert_eq!(a.signer_cert.to_der().unwrap(), cert.to_der().unwrap());
    assert_eq!(a.signing_time, t0());
    assert_eq!(
        a.package.lenke().unwrap().url,
        "https://www.avsender.no/svar"
    );
    assert!(a.package.unknown_extensions().is_empty());
    // mimetype is the first entry, stored, with the ASiC media type right after the header.
    assert_eq!(&zip[30..38], b"mimetype");
    assert_eq!(&zip[38..38 + 31], dpi::container::ASIC_MIMETYPE.as_bytes());
}

#[test]
fn unknown_extension_kept_and_reported() {
    let (cert, key) = self_signed("Avsender AS", 2048);
    let mut p = sample_package();
    p.documents[1].data = Some(DocumentData {
        href: "ukjent.json".into(),
        extension: Extension::Unknown {
            mime: "application/vnd.example+json".into(),
            bytes: b"{\"a\":1}".to_vec(),
        },
    });
    let zip = write_asice(&p, &[cert], &key, t0()).unwrap();
    let a = read_asice(&zip, &Limits::default()).unwrap();
    assert_eq!(a.package.unknown_extensions(), vec!["ukjent.json"]);
    match &a.package.documents[1].data.as_ref().unwrap().extension {
        Extension::Unknown { mime, bytes } => {
            assert_eq!(mime, "application/vnd.example+json");
            assert_eq!(bytes, b"{\"a\":1}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_manifest_lenke_read_and_written_as_data() {
    let Some(v) = vectors() else { return };
    let sdp = v
        .root
        .join("felleslosninger-docs/resources/begrep/sikkerDigitalPost");
    let m = manifest::parse(
        &read(sdp.join("eksempler/sdpManifest.xml")),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(m.vedlegg.len(), 2);
    let l = m.lenke.clone().unwrap();
    assert_eq!(
        l.knapp_tekst.as_ref().unwrap().text,
        "Svar på den viktige meldingen"
    );
    // klient-java manifest with the data form.
    let kj = v.root.join("digipost-sikker-digital-post-klient-java/src/test/resources/asic/expected-asic-manifest.xml");
    let m2 = manifest::parse(&read(kj), &Limits::default()).unwrap();
    assert_eq!(
        m2.hoveddokument.data,
        Some(("lenke.xml".to_string(), extensions::MIME_LENKE.to_string()))
    );
    // A package carrying the legacy form is written with the data form.
    let (cert, key) = self_signed("Avsender AS", 2048);
    let mut p = sample_package();
    p.documents[0].data = None;
    p.manifest.lenke = Some(l.clone());
    let zip = write_asice(&p, &[cert], &key, t0()).unwrap();
    let a = read_asice(&zip, &Limits::default()).unwrap();
    assert!(a.package.manifest.lenke.is_none());
    assert_eq!(a.package.lenke(), Some(&l));
    assert!(
        String::from_utf8(a.manifest_xml)
            .unwrap()
            .contains("<data href=\"lenke.xml\"")
    );
}

#[test]
fn extension_samples_parse_and_roundtrip() {
    let Some(v) = vectors() else { return };
    for (file, mime) in [
        ("lenke.xml", extensions::MIME_LENKE),
        ("bevis.xml", extensions::MIME_BEVIS),
        ("arrangement.xml", extensions::MIME_ARRANGEMENT),
    ] {
        let bytes = read(v.utvidelser.join(file));
        let e = Extension::parse(mime, &bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let again = Extension::parse(mime, &e.to_xml().unwrap(), &Limits::default()).unwrap();
        assert_eq!(again, e, "{file}");
        match (&e, file) {
            (Extension::Lenke(l), _) => {
                assert_eq!(l.frist.as_deref(), Some("2017-10-01T12:00:00+02:00"))
            }
            (Extension::Bevis(b), _) => {
                assert_eq!(b.bevisholder.foedselsnummer.as_deref(), Some("17058400000"));
                assert_eq!(b.attributt.len(), 1);
                assert_eq!(
                    b.info[0].verdi.text,
                    "Det er ikke lov å rive ut sider i bøkene, eller søle med ketchup."
                );
            }
            (Extension::Arrangement(a), _) => {
                assert_eq!(a.moteplass.postnummer.as_deref(), Some("0473"));
                assert_eq!(a.tidsrom.len(), 2);
                assert!(a.info[0].tekst.text.contains("Krets: 400\nRode: 24"));
                assert_eq!(a.strekkode.as_ref().unwrap().kind, StrekkodeType::Code39);
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn extension_limits_enforced() {
    let l = |url: &str, knapp: &str| {
        Extension::Lenke(Lenke {
            url: url.into(),
            beskrivelse: None,
            knapp_tekst: Some(Tekst::new(knapp, "nb")),
            frist: None,
        })
    };
    assert!(l("https://a.no", &"x".repeat(30)).to_xml().is_ok());
    assert_eq!(
        l("https://a.no", &"x".repeat(31))
            .to_xml()
            .unwrap_err()
            .code(),
        "extension_invalid"
    );
    assert_eq!(
        l("ftp://a.no", "ok").to_xml().unwrap_err().code(),
        "extension_invalid"
    );
    let bad_lang = Extension::Lenke(Lenke {
        url: "https://a.no".into(),
        beskrivelse: Some(Tekst::new("x", "nor")),
        knapp_tekst: None,
        frist: None,
    });
    assert_eq!(bad_lang.to_xml().unwrap_err().code(), "extension_invalid");
    let bad_date = b"<lenke xmlns=\"http://begrep.difi.no/sdp/utvidelser/lenke\"><url>https://a.no</url><frist>i morgen</frist></lenke>";
    assert_eq!(
        Extension::parse(extensions::MIME_LENKE, bad_date, &Limits::default())
            .unwrap_err()
            .code(),
        "extension_invalid"
    );
    let wrong_order = b"<lenke xmlns=\"http://begrep.difi.no/sdp/utvidelser/lenke\"><frist>2020-01-01T00:00:00Z</frist><url>https://a.no</url></lenke>";
    assert_eq!(
        Extension::parse(extensions::MIME_LENKE, wrong_order, &Limits::default())
            .unwrap_err()
            .code(),
        "extension_invalid"
    );
    let mut a = match sample_package().documents[3]
        .data
        .clone()
        .unwrap()
        .extension
    {
        Extension::Arrangement(a) => a,
        _ => unreachable!(),
    };
    a.strekkode.as_mut().unwrap().verdi = "1".repeat(21);
    assert_eq!(
        Extension::Arrangement(a).to_xml().unwrap_err().code(),
        "extension_invalid"
    );
}
