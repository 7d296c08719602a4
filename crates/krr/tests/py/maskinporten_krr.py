"""Independent client: obtains a Maskinporten token from the samspill stand-in with PyJWT and
requests, verifies it against the published JWKS, checks that a replayed grant is refused,
and looks persons up in the KRR stand-in. Exit status 0 and "OK" on success."""

import argparse
import base64
import sys
import time
import uuid

import jwt
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")


def pem_chain_to_x5c(path):
    data = open(path, "rb").read()
    certs = x509.load_pem_x509_certificates(data)
    from cryptography.hazmat.primitives.serialization import Encoding

    return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--orgnr", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--krr", required=True)
    ap.add_argument("--pid-mailbox", required=True)
    ap.add_argument("--pid-reserved", required=True)
    ap.add_argument("--provider", required=True)
    a = ap.parse_args()

    meta = requests.get(a.issuer + ".well-known/oauth-authorization-server", timeout=10).json()
    assert meta["issuer"] == a.issuer, meta
    token_endpoint = meta["token_endpoint"]

    now = int(time.time())
    grant = jwt.encode(
        {
            "aud": a.issuer,
            "iss": a.client_id,
            "scope": "krr:global/kontaktinformasjon.read krr:global/digitalpost.read",
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        },
        open(a.key, "rb").read(),
        algorithm="RS256",
        headers={"x5c": pem_chain_to_x5c(a.chain)},
    )
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": grant}
    r = requests.post(token_endpoint, data=form, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert body["token_type"] == "Bearer", body
    token = body["access_token"]

    # Verify the access token independently with the published JWKS.
    signing_key = jwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, signing_key.key, algorithms=["RS256"], issuer=a.issuer, options={"verify_aud": False}
    )
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": "0192:" + a.orgnr}, claims
    assert "krr:global/digitalpost.read" in claims["scope"].split(), claims

    # The same grant again is refused.
    r = requests.post(token_endpoint, data=form, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (r.status_code, r.text)

    # KRR lookup.
    r = requests.post(
        a.krr + "/rest/v2/personer",
        json={"personidentifikatorer": [a.pid_mailbox, a.pid_reserved]},
        headers={"Authorization": "Bearer " + token},
        timeout=10,
    )
    assert r.status_code == 200, (r.status_code, r.text)
    mailbox, reserved = r.json()["personer"]
    assert mailbox["personidentifikator"] == a.pid_mailbox
    assert mailbox["status"] == "AKTIV" and mailbox["reservasjon"] == "NEI", mailbox
    assert mailbox["varslingsstatus"] == "KAN_VARSLES", mailbox
    assert mailbox["digital_post"]["postkasseleverandoeradresse"] == a.provider, mailbox
    cert = x509.load_der_x509_certificate(base64.b64decode(mailbox["sertifikat"]))
    org_ids = [v.value for v in cert.subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)]
    assert org_ids == ["NTRNO-" + a.provider], org_ids
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == a.provider
    assert reserved["reservasjon"] == "JA" and "digital_post" not in reserved, reserved

    # Without a token: problem+json 401.
    r = requests.post(a.krr + "/rest/v2/personer", json={"personidentifikatorer": [a.pid_mailbox]}, timeout=10)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", r.text
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr)
        sys.exit(1)
