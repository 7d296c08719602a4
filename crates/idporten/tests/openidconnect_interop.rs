//! An independent relying party — the `openidconnect` crate — logs in against the stand-in:
//! discovery, authorization code with PKCE, token exchange with both secret methods, id token
//! validation (signature via JWKS, iss, aud, exp, nonce) and userinfo.

mod common;

use common::*;
use openidconnect::{
    AuthType, AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims},
};

#[tokio::test]
async fn openidconnect_crate_completes_a_login() {
    let s = start(idporten::Config::default()).await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(s.base.clone()).unwrap(), &http)
        .await
        .expect("discovery document accepted");

    for (client_id, auth, acr) in [
        ("rp-a", AuthType::BasicAuth, "idporten-loa-substantial"),
        ("rp-b", AuthType::RequestBody, "idporten-loa-high"),
    ] {
        let secret = format!("secret-{}", client_id.trim_start_matches("rp-"));
        let client = CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(client_id.into()),
            Some(ClientSecret::new(secret)),
        )
        .set_redirect_uri(RedirectUrl::new(s.redirect_uri(client_id)).unwrap())
        .set_auth_type(auth);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_auth_context_value(AuthenticationContextClass::new(acr.into()))
            .set_pkce_challenge(challenge)
            .url();

        // The browser part: the stand-in's own login form.
        let browser = browser();
        let r = browser.get(url.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{client_id}: login form");
        let page = r.text().await.unwrap();
        let r = s.submit_login(&browser, &page, &s.pid_b, acr).await;
        let q = query(&location(&r));
        assert_eq!(&q["state"], csrf.secret());

        let tokens = client
            .exchange_code(AuthorizationCode::new(q["code"].clone()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{client_id}: token exchange: {e:?}"));
        let id_token = tokens.id_token().expect("id_token");
        let verifier = client.id_token_verifier();
        let c = id_token
            .claims(&verifier, &nonce)
            .unwrap_or_else(|e| panic!("{client_id}: id token rejected by openidconnect: {e:?}"));
        assert_eq!(c.issuer().as_str(), s.base);
        assert_eq!(c.auth_context_ref().map(|a| a.as_str()), Some(acr));
        assert!(c.auth_time().is_some());
        // ID-porten's own claims, read after openidconnect verified the token.
        let raw = claims(&id_token.to_string());
        assert_eq!(raw["pid"], s.pid_b.as_str());

        let info: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)
            .unwrap()
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{client_id}: userinfo: {e:?}"));
        assert_eq!(info.subject(), c.subject());
    }
}
