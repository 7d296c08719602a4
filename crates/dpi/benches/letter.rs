//! `seal` and `open` of a whole letter (JWS + XAdES-signed ASiC-E + CMS) for a 100 KB and a
//! 10 MB document, plus the primitive costs the target is stated in: one RSA-2048
//! private-key operation, and SHA-256 + AES-256-CBC over the same bytes.
//! `scripts/bench-dpi` runs this and prints the ratio.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use domain::{ActorId, ConversationId, MessageId};
use dpi::container::{
    Avsender as MAvsender, Document, DocumentRole, Dokumentpakke, Limits, Manifest, Mottaker,
};
use dpi::letter::{LetterSpec, open_letter, seal_letter};
use dpi::message::{
    Avsender, Body, Digital, Dokumentpakkefingeravtrykk, Header, MessageType, Personmottaker,
    Process, Sbd, Sikkerhetsnivaa, Timestamp,
};
use dpi::testkit::{TestPki, maskinporten_token};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use openssl::symm::{Cipher, encrypt};

const AVSENDER: &str = "0192:991825827";

fn spec(size: usize) -> LetterSpec {
    let at = time::macros::datetime!(2026-03-16 13:16:08.903 UTC);
    let avsender = ActorId::parse(AVSENDER).unwrap();
    // Incompressible content: the realistic worst case for zip and the honest one for AES.
    let mut bytes = vec![0u8; size];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    LetterSpec {
        sbd: Sbd {
            header: Header::new(
                MessageType::Digital,
                &avsender,
                &ActorId::parse("0192:922020175").unwrap(),
                MessageId::new(),
                ConversationId::new(),
                Process::Digital,
                Timestamp(at),
                None,
            ),
            body: Body::Digital(Digital {
                avsender: Avsender::new(&avsender),
                mottaker: Personmottaker {
                    postkasseadresse: "ola#1".into(),
                },
                dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk {
                    digest_method: dpi::message::SHA256_URI.into(),
                    digest_value: String::new(),
                },
                maskinportentoken: String::new(),
                sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa4,
                virkningsdato: None,
                virkningstidspunkt: None,
                aapningskvittering: None,
                ikkesensitivtittel: "Brev".into(),
                spraak: "no".into(),
                varsler: None,
            }),
        },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: Some(Mottaker {
                    personidentifikator: None,
                    postkasseadresse: "ola#1".into(),
                }),
                avsender: MAvsender {
                    organisasjon: AVSENDER.into(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: vec![Document {
                href: "brev.pdf".into(),
                mime: "application/pdf".into(),
                title: Some("Brev".into()),
                lang: Some("no".into()),
                role: DocumentRole::Hoveddokument,
                bytes,
                data: None,
            }],
        },
        signing_time: at,
    }
}

fn benches(c: &mut Criterion) {
    let pki = TestPki::new().unwrap();
    let (cert, key) = pki.enterprise("991825827", true, 2048).unwrap();
    let (pcert, pkey) = pki.enterprise("922020175", false, 2048).unwrap();
    let chain = pki.chain_for(&cert);
    let anchors = pki.anchors();
    let at = time::macros::datetime!(2026-03-16 13:16:08.903 UTC);
    let token = maskinporten_token(AVSENDER, None, at.unix_timestamp()).unwrap();
    let limits = Limits::default();

    let mut g = c.benchmark_group("primitives");
    g.bench_function("rsa2048_private_op", |b| {
        b.iter(|| {
            let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
            s.update(b"x").unwrap();
            black_box(s.sign_to_vec().unwrap())
        })
    });
    for (name, size) in [("100KB", 100 * 1024), ("10MB", 10 * 1024 * 1024)] {
        let data = vec![7u8; size];
        let k = [1u8; 32];
        let iv = [2u8; 16];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("sha256_aes256cbc", name), &data, |b, d| {
            b.iter(|| {
                black_box(openssl::sha::sha256(d));
                black_box(encrypt(Cipher::aes_256_cbc(), &k, Some(&iv), d).unwrap())
            })
        });
    }
    g.finish();

    interleaved_ratio(&key, &chain, &pcert, &pkey, &anchors, &token);

    for (name, size, samples) in [("100KB", 100 * 1024, 50), ("10MB", 10 * 1024 * 1024, 10)] {
        let s = spec(size);
        let mut g = c.benchmark_group("letter");
        g.sample_size(samples);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter(|| black_box(seal_letter(&s, &chain, &key, &pcert, &token).unwrap()))
        });
        let (sealed, _) = seal_letter(&s, &chain, &key, &pcert, &token).unwrap();
        let check = open_letter(&sealed.jwt, &sealed.cms, &pkey, &anchors, at, &limits);
        assert!(check.valid, "{:?}", check.errors);
        g.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter(|| {
                let o = open_letter(&sealed.jwt, &sealed.cms, &pkey, &anchors, at, &limits);
                black_box(o.valid)
            })
        });
        g.finish();
    }
}

/// The ratio measured so that background load hits numerator and denominator alike:
/// one RSA-2048 private op, SHA-256 + AES-256-CBC over 100 KB and one `open` of a 100 KB letter,
/// interleaved round by round; medians. Printed (never asserted) for `scripts/bench-dpi`.
fn interleaved_ratio(
    key: &dpi::testkit::Key,
    chain: &[openssl::x509::X509],
    pcert: &openssl::x509::X509,
    pkey: &dpi::testkit::Key,
    anchors: &dpi::trust::TrustAnchors,
    token: &str,
) {
    use std::time::Instant;
    let at = time::macros::datetime!(2026-03-16 13:16:08.903 UTC);
    let limits = Limits::default();
    let s = spec(100 * 1024);
    let (sealed, _) = seal_letter(&s, chain, key, pcert, token).unwrap();
    let data = vec![7u8; 100 * 1024];
    let (mut rsa, mut sa, mut open) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..300 {
        let t = Instant::now();
        let mut sg = Signer::new(MessageDigest::sha256(), key).unwrap();
        sg.update(b"x").unwrap();
        black_box(sg.sign_to_vec().unwrap());
        rsa.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(openssl::sha::sha256(&data));
        black_box(encrypt(Cipher::aes_256_cbc(), &[1u8; 32], Some(&[2u8; 16]), &data).unwrap());
        sa.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(open_letter(&sealed.jwt, &sealed.cms, pkey, anchors, at, &limits).valid);
        open.push(t.elapsed().as_secs_f64());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (r, a, o) = (med(&mut rsa), med(&mut sa), med(&mut open));
    println!(
        "interleaved medians: rsa2048_private_op {:.1} us, sha256+aes256cbc_100KB {:.1} us, open_100KB {:.1} us, ratio {:.2}",
        r * 1e6,
        a * 1e6,
        o * 1e6,
        o / (r + a)
    );
}

criterion_group!(letter, benches);
criterion_main!(letter);
