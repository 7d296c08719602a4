//! Business messages against Digdir's published samples and JSON-schema rules.

use std::path::PathBuf;

use dpi::message::{Body, MessageType, Sbd};

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        println!("SKIPPED: ../shared/vectors not found");
        None
    }
}

const NYINF: &str = "felleslosninger-docs/resources/begrep/sikkerDigitalPost/nyinf/eksempler";
const EFM: &str = "felleslosninger-efm-integrasjonspunkt/dpi-client/src/test/resources";

fn schema_valid_samples() -> Vec<String> {
    let mut v: Vec<String> = [
        "komplette/digital-forretningsmelding.json",
        "komplette/utskrift-forretningsmelding.json",
        "innbyggerpost_dpi_digital_1_0.json",
        "innbyggerpost_dpi_utskrift_1_0.json",
        "innbyggerpost_dpi_1_0_nav_sample.json",
        "innbyggerpost_dpi_1_0_budnad_sample.json",
        "innbyggerpost_dpi_1_0_budnad2_sample.json",
        "lerveringskvittering_nav_sample.json",
        "lerveringskvittering_budnad_sample.json",
        "lerveringskvittering_budnad2_sample.json",
    ]
    .iter()
    .map(|f| format!("{NYINF}/{f}"))
    .collect();
    v.push(format!("{EFM}/digital_ready_for_send-sbd.json"));
    v.push(format!("{EFM}/utskrift_ready_for_send-sbd.json"));
    v
}

#[test]
fn every_schema_valid_sample_parses_and_round_trips() {
    let Some(root) = vectors() else { return };
    for f in schema_valid_samples() {
        let bytes = std::fs::read(root.join(&f)).unwrap();
        let sbd = Sbd::parse(&bytes).unwrap_or_else(|e| panic!("{f}: {e}"));
        let again = Sbd::parse(&sbd.to_json()).unwrap();
        assert_eq!(sbd, again, "{f} round trip");
        // JSON-level equality with the original (member order aside).
        let orig: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let ours = sbd.to_value();
        assert_eq!(
            normalise_times(orig),
            normalise_times(ours),
            "{f} JSON equal"
        );
    }
}

/// Our serializer writes RFC 3339 in canonical form; compare times by value.
fn normalise_times(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => match dpi::message::Timestamp::parse(&s) {
            Some(t) if s.len() > 10 => Value::String(t.0.unix_timestamp_nanos().to_string()),
            _ => Value::String(s),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalise_times).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, normalise_times(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn the_three_schema_invalid_samples_are_refused() {
    let Some(root) = vectors() else { return };
    for (f, code) in [
        (
            format!("{NYINF}/fysiskpost_print_1_0_sample.json"),
            "sbd_format",
        ),
        (
            format!("{NYINF}/innbyggerpost_dpi_lerveringskvittering_1_0.json"),
            "sbd_unknown_member",
        ),
        (format!("{EFM}/feil-sbd.json"), "sbd_unknown_member"),
    ] {
        let bytes = std::fs::read(root.join(&f)).unwrap();
        let e = Sbd::parse(&bytes).expect_err(&f);
        assert_eq!(e.code, code, "{f}: {e}");
    }
}

#[test]
fn real_complete_examples_follow_the_dpi_profile() {
    let Some(root) = vectors() else { return };
    for (f, t) in [
        (
            "komplette/digital-forretningsmelding.json",
            MessageType::Digital,
        ),
        (
            "komplette/utskrift-forretningsmelding.json",
            MessageType::Utskrift,
        ),
    ] {
        let sbd = Sbd::parse(&std::fs::read(root.join(NYINF).join(f)).unwrap()).unwrap();
        assert_eq!(sbd.message_type(), t);
        assert_eq!(sbd.dpi_issues(), vec![], "{f}");
        assert!(sbd.conversation_id().is_some());
    }
    // budnad2 uses type "digitalpost" and a hex digest: schema-valid, profile-invalid.
    let sbd = Sbd::parse(
        &std::fs::read(
            root.join(NYINF)
                .join("innbyggerpost_dpi_1_0_budnad2_sample.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let codes: Vec<_> = sbd.dpi_issues().iter().map(|e| e.code).collect();
    assert!(codes.contains(&"sbd_type_mismatch"), "{codes:?}");
    assert!(codes.contains(&"fingerprint_method"), "{codes:?}");
}

fn digital_sample() -> serde_json::Value {
    serde_json::json!({"standardBusinessDocument":{
     "standardBusinessDocumentHeader":{"headerVersion":"1.0",
      "sender":[{"identifier":{"value":"0192:991825827","authority":"iso6523-actorid-upis"}}],
      "receiver":[{"identifier":{"value":"0192:922020175","authority":"iso6523-actorid-upis"}}],
      "documentIdentification":{"standard":"urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost##urn:fdc:digdir.no:2020:innbyggerpost:schema:digital::1.0",
       "typeVersion":"1.0","instanceIdentifier":"4c96fb25-54b0-4560-a954-afdeed10077b","type":"digital","creationDateAndTime":"2022-03-16T14:16:08.903+01:00"},
      "businessScope":{"scope":[{"type":"ConversationId","instanceIdentifier":"b63b72a3-ec7a-4d70-94f1-699ef899864f",
       "identifier":"urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:digital:ver1.0"}]}},
     "digital":{"avsender":{"virksomhetsidentifikator":{"authority":"iso6523-actorid-upis","value":"0192:991825827"}},
      "mottaker":{"postkasseadresse":"0000487204"},
      "dokumentpakkefingeravtrykk":{"digestMethod":"http://www.w3.org/2001/04/xmlenc#sha256","digestValue":"BDjOg00Iiv5eQGm5adwGnW8ktSfvQ/0jYvgkYCRnryw="},
      "maskinportentoken":"x.y.z", "sikkerhetsnivaa":3, "virkningstidspunkt":"2022-03-16T00:00:00+01:00",
      "aapningskvittering":false, "ikkesensitivtittel":"Test", "spraak":"no",
      "varsler":{"epostvarsel":{"epostadresse":"a@b.no","varslingstekst":"Hei","repetisjoner":[0,7]},
                 "smsvarsel":{"mobiltelefonnummer":"+47 12345678","varslingstekst":"Hei","repetisjoner":[0]}}}}})
}

fn mutate(f: impl FnOnce(&mut serde_json::Value)) -> Result<Sbd, dpi::message::MessageError> {
    let mut v = digital_sample();
    f(&mut v);
    Sbd::parse(&serde_json::to_vec(&v).unwrap())
}

fn d(v: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut v["standardBusinessDocument"]["digital"]
}
fn h(v: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut v["standardBusinessDocument"]["standardBusinessDocumentHeader"]
}

#[test]
fn base_sample_is_valid() {
    let sbd = mutate(|_| {}).unwrap();
    assert!(matches!(sbd.body, Body::Digital(_)));
    assert_eq!(sbd.dpi_issues(), vec![]);
}

#[test]
fn every_schema_rule_has_a_code() {
    use serde_json::json;
    type M = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, M)> = vec![
        ("sbd_unknown_member", Box::new(|v| d(v)["extra"] = json!(1))),
        ("sbd_unknown_member", Box::new(|v| h(v)["extra"] = json!(1))),
        ("sbd_unknown_member", Box::new(|v| v["x"] = json!(1))),
        (
            "sbd_unknown_member",
            Box::new(|v| d(v)["mottaker"]["personidentifikator"] = json!("1")),
        ),
        (
            "sbd_unknown_member",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["spraak"] = json!("no")),
        ),
        (
            "sbd_missing_member",
            Box::new(|v| {
                d(v).as_object_mut().unwrap().remove("spraak");
            }),
        ),
        (
            "sbd_missing_member",
            Box::new(|v| {
                d(v).as_object_mut().unwrap().remove("maskinportentoken");
            }),
        ),
        (
            "sbd_missing_member",
            Box::new(|v| {
                h(v).as_object_mut().unwrap().remove("businessScope");
            }),
        ),
        (
            "sbd_missing_member",
            Box::new(|v| {
                v["standardBusinessDocument"]
                    .as_object_mut()
                    .unwrap()
                    .remove("digital");
            }),
        ),
        (
            "sbd_cardinality",
            Box::new(|v| {
                let s = h(v)["sender"][0].clone();
                h(v)["sender"].as_array_mut().unwrap().push(s);
            }),
        ),
        (
            "sbd_cardinality",
            Box::new(|v| h(v)["receiver"] = json!([])),
        ),
        (
            "sbd_cardinality",
            Box::new(|v| {
                let b = d(v).clone();
                v["standardBusinessDocument"]["utskrift"] = b;
            }),
        ),
        (
            "sbd_too_long",
            Box::new(|v| d(v)["ikkesensitivtittel"] = json!("x".repeat(256))),
        ),
        (
            "sbd_too_short",
            Box::new(|v| d(v)["ikkesensitivtittel"] = json!("")),
        ),
        ("sbd_too_long", Box::new(|v| d(v)["spraak"] = json!("nob"))),
        (
            "sbd_too_long",
            Box::new(|v| d(v)["avsender"]["avsenderidentifikator"] = json!("x".repeat(101))),
        ),
        (
            "sbd_too_long",
            Box::new(|v| d(v)["avsender"]["fakturaReferanse"] = json!("x".repeat(41))),
        ),
        (
            "sbd_too_long",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["varslingstekst"] = json!("x".repeat(501))),
        ),
        (
            "sbd_too_long",
            Box::new(|v| d(v)["varsler"]["smsvarsel"]["varslingstekst"] = json!("x".repeat(161))),
        ),
        (
            "sbd_too_short",
            Box::new(|v| d(v)["varsler"]["smsvarsel"]["mobiltelefonnummer"] = json!("1234")),
        ),
        (
            "sbd_pattern",
            Box::new(|v| d(v)["varsler"]["smsvarsel"]["mobiltelefonnummer"] = json!("12345678a")),
        ),
        (
            "sbd_format",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["epostadresse"] = json!("not-an-address")),
        ),
        (
            "sbd_cardinality",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["repetisjoner"] = json!([])),
        ),
        (
            "sbd_cardinality",
            Box::new(|v| {
                d(v)["varsler"]["epostvarsel"]["repetisjoner"] =
                    json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
            }),
        ),
        (
            "sbd_range",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["repetisjoner"] = json!([26])),
        ),
        (
            "sbd_type",
            Box::new(|v| d(v)["varsler"]["epostvarsel"]["repetisjoner"] = json!([-1])),
        ),
        ("sbd_enum", Box::new(|v| d(v)["sikkerhetsnivaa"] = json!(2))),
        (
            "sbd_type",
            Box::new(|v| d(v)["sikkerhetsnivaa"] = json!("3")),
        ),
        (
            "sbd_enum",
            Box::new(|v| {
                d(v)["avsender"]["virksomhetsidentifikator"]["authority"] = json!("iso3166")
            }),
        ),
        (
            "sbd_pattern",
            Box::new(|v| {
                d(v)["avsender"]["virksomhetsidentifikator"]["value"] = json!("991825827")
            }),
        ),
        (
            "sbd_format",
            Box::new(|v| d(v)["virkningsdato"] = json!("2022-13-01")),
        ),
        (
            "sbd_format",
            Box::new(|v| d(v)["virkningstidspunkt"] = json!("2022-03-16T00:00:00")),
        ),
        (
            "sbd_format",
            Box::new(|v| h(v)["documentIdentification"]["instanceIdentifier"] = json!("nope")),
        ),
        (
            "sbd_format",
            Box::new(|v| {
                h(v)["documentIdentification"]["instanceIdentifier"] =
                    json!("{4c96fb25-54b0-4560-a954-afdeed10077b}")
            }),
        ),
        (
            "sbd_format",
            Box::new(|v| {
                h(v)["businessScope"]["scope"][0]["instanceIdentifier"] =
                    json!("b63b72a3ec7a4d7094f1699ef899864f")
            }),
        ),
        (
            "sbd_format",
            Box::new(|v| {
                h(v)["documentIdentification"]["creationDateAndTime"] =
                    json!("20xx-01-01T00:00:00Z")
            }),
        ),
        (
            "sbd_type",
            Box::new(|v| d(v)["aapningskvittering"] = json!("false")),
        ),
        ("sbd_json_malformed", Box::new(|_| {})),
    ];
    for (i, (code, m)) in cases.into_iter().enumerate() {
        let r = if code == "sbd_json_malformed" {
            Sbd::parse(b"{\"standardBusinessDocument\": {")
        } else {
            mutate(m)
        };
        let e = r.expect_err(&format!("case {i} ({code}) accepted"));
        assert_eq!(e.code, code, "case {i}: {e}");
    }
}

#[test]
fn duplicate_members_are_refused() {
    let ok = serde_json::to_string(&digital_sample()).unwrap();
    let dup = ok.replacen(
        "\"spraak\":\"no\"",
        "\"spraak\":\"no\",\"spraak\":\"en\"",
        1,
    );
    assert_ne!(ok, dup);
    assert_eq!(
        Sbd::parse(dup.as_bytes()).unwrap_err().code,
        "sbd_duplicate_member"
    );
    let dup = ok.replacen("\"varsler\":{", "\"varsler\":{\"x\":1,\"x\":2,", 1);
    assert_eq!(
        Sbd::parse(dup.as_bytes()).unwrap_err().code,
        "sbd_duplicate_member"
    );
}

#[test]
fn profile_rules_are_reported() {
    use serde_json::json;
    let sbd = mutate(|v| {
        h(v)["documentIdentification"]["type"] = json!("utskrift");
        h(v)["sender"][0]["identifier"]["value"] = json!("0192:123456789");
        d(v)["dokumentpakkefingeravtrykk"]["digestValue"] = json!("abc");
        d(v)["varsler"]["smsvarsel"]["repetisjoner"] = json!([1, 1]);
        h(v)["businessScope"]["scope"][0]["identifier"] =
            json!("urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:utskrift:ver1.0");
    })
    .unwrap();
    let codes: Vec<_> = sbd.dpi_issues().iter().map(|e| e.code).collect();
    for c in [
        "sbd_type_mismatch",
        "sbd_orgnr",
        "fingerprint_encoding",
        "sbd_repetisjoner_unique",
        "sbd_process",
    ] {
        assert!(codes.contains(&c), "{c} missing in {codes:?}");
    }
}

#[test]
fn utskrift_address_rules() {
    let Some(root) = vectors() else { return };
    let bytes = std::fs::read(
        root.join(NYINF)
            .join("komplette/utskrift-forretningsmelding.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["standardBusinessDocument"]["utskrift"]["mottaker"]["landkode"] = serde_json::json!("SE");
    let e = Sbd::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(e.code, "sbd_address_rule");
    v["standardBusinessDocument"]["utskrift"]["mottaker"]["postnummer"] = serde_json::json!("123");
    let e = Sbd::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(e.code, "sbd_pattern");
    v["standardBusinessDocument"]["utskrift"]["utskriftstype"] = serde_json::json!("SORT_HVITT");
    let e = Sbd::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(e.code, "sbd_enum");
}
