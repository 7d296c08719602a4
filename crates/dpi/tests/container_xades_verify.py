#!/usr/bin/env python3
"""Independent verifier for the XAdES signature of an ASiC-E container (used by
container_interop.rs). Uses lxml's own C14N and `cryptography`, shares no code with samspill.

usage: container_xades_verify.py CONTAINER.zip
exit 0 and prints "OK <n> references" when SignedInfo's RSA signature and every Reference digest
verify and every file outside META-INF/ is covered; exit 1 with a reason otherwise; exit 3 when
lxml or cryptography is not installed.
"""
import base64
import copy
import hashlib
import sys
import urllib.parse
import zipfile

try:
    from lxml import etree
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
except ImportError as e:  # pragma: no cover
    print(f"MISSING {e}")
    sys.exit(3)

DS = "http://www.w3.org/2000/09/xmldsig#"
C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def c14n(el, alg):
    if alg not in (C14N10, C14N11):
        fail(f"canonicalization {alg}")
    # For documents without xml:base/xml:id the two versions give the same bytes. lxml mis-renders
    # default namespaces when canonicalizing an element in place (spurious xmlns=""), so the
    # subtree is first copied into its own document, which carries the in-scope declarations.
    return etree.tostring(copy.deepcopy(el), method="c14n", exclusive=False, with_comments=False)


def main(path):
    z = zipfile.ZipFile(path)
    files = {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(files["META-INF/signatures.xml"], parser)
    sig = root.find(f"{{{DS}}}Signature")
    si = sig.find(f"{{{DS}}}SignedInfo")
    cm = si.find(f"{{{DS}}}CanonicalizationMethod").get("Algorithm")
    sm = si.find(f"{{{DS}}}SignatureMethod").get("Algorithm")
    if sm != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":
        fail(f"signature method {sm}")
    certs = [
        x509.load_der_x509_certificate(base64.b64decode("".join(c.text.split())))
        for c in sig.iter(f"{{{DS}}}X509Certificate")
    ]
    value = base64.b64decode("".join(sig.find(f"{{{DS}}}SignatureValue").text.split()))
    signed = c14n(si, cm)
    ok = False
    for cert in certs:
        try:
            cert.public_key().verify(value, signed, padding.PKCS1v15(), hashes.SHA256())
            ok = True
            break
        except Exception:
            pass
    if not ok:
        fail("SignatureValue does not verify with any KeyInfo certificate")

    ids = {el.get("Id"): el for el in root.iter() if el.get("Id") is not None}
    covered = set()
    refs = si.findall(f"{{{DS}}}Reference")
    for ref in refs:
        uri = ref.get("URI")
        alg = ref.find(f"{{{DS}}}DigestMethod").get("Algorithm")
        expected = base64.b64decode("".join(ref.find(f"{{{DS}}}DigestValue").text.split()))
        if uri.startswith("#"):
            target = ids.get(uri[1:])
            if target is None:
                fail(f"no element with Id {uri}")
            transforms = ref.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
            talg = transforms[0].get("Algorithm") if transforms else C14N10
            data = c14n(target, talg)
        else:
            name = urllib.parse.unquote_plus(uri)
            if name not in files:
                name = urllib.parse.unquote(uri)
            if name not in files:
                fail(f"reference to missing file {uri}")
            covered.add(name)
            data = files[name]
        if DIGESTS[alg](data).digest() != expected:
            fail(f"digest mismatch for {uri}")
    outside = {n for n in files if not n.startswith("META-INF/") and n != "mimetype"}
    if outside - covered:
        fail(f"unsigned files {sorted(outside - covered)}")
    print(f"OK {len(refs)} references")


if __name__ == "__main__":
    main(sys.argv[1])
