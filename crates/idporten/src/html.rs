//! Server-rendered pages (login, error, logout, form_post) in bokmål, nynorsk and English.
//! Every interpolated value goes through [`esc`]; the pages need no JavaScript.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::Acr;

/// The page language, from `ui_locales` (first supported tag wins; bokmål otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nb,
    Nn,
    En,
}

impl Lang {
    pub fn from_ui_locales(s: Option<&str>) -> Self {
        s.unwrap_or("")
            .split_whitespace()
            .find_map(|t| match t.to_ascii_lowercase().as_str() {
                "nb" | "nb-no" | "no" => Some(Lang::Nb),
                "nn" | "nn-no" => Some(Lang::Nn),
                "en" | "en-gb" | "en-us" => Some(Lang::En),
                _ => None,
            })
            .unwrap_or(Lang::Nb)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::Nn => "nn",
            Lang::En => "en",
        }
    }

    fn t(self, nb: &'static str, nn: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Nb => nb,
            Lang::Nn => nn,
            Lang::En => en,
        }
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f6;color:#1e2b3c}\
main{max-width:34rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:.5rem}\
h1{font-size:1.6rem;margin-top:0}label,legend{font-weight:600;display:block;margin:.8rem 0 .3rem}\
select,input[type=text]{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;border:1px solid #68707c;border-radius:.25rem}\
fieldset{border:0;padding:0;margin:1rem 0}.radio label{display:inline;font-weight:400}\
button{font-size:1rem;padding:.6rem 1.2rem;margin:1rem .5rem 0 0;border-radius:.25rem;border:2px solid #0062ba;background:#0062ba;color:#fff}\
button.secondary{background:#fff;color:#0062ba}:focus-visible{outline:3px solid #ffda06;outline-offset:2px}\
.test{background:#fff3cd;padding:.4rem .8rem;border-radius:.25rem}iframe{width:1px;height:1px;border:0}";

/// Content-Security-Policy for our pages: inline CSS only, no script. `form-action` must allow
/// the redirect that follows the login form (browsers apply it to redirects too).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; \
frame-src http: https:; frame-ancestors 'none'; base-uri 'none'";

pub fn page(status: StatusCode, lang: Lang, title: &str, body: &str, head_extra: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{head_extra}\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        lang.code(),
        esc(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The page shown when the request cannot be sent back to the client (unknown client or
/// redirect URI), as OAuth2 §4.1.2.1 requires.
pub fn error_page(lang: Lang, status: StatusCode, error: &str, description: &str) -> Response {
    let title = lang.t("Noe gikk galt", "Noko gjekk gale", "Something went wrong");
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<dl><dt>error</dt><dd><code>{}</code></dd>\
         <dt>error_description</dt><dd>{}</dd></dl>",
        esc(title),
        esc(lang.t(
            "Innloggingen kan ikke fullføres. Gå tilbake til tjenesten og prøv igjen.",
            "Innlogginga kan ikkje fullførast. Gå tilbake til tenesta og prøv igjen.",
            "The login cannot be completed. Go back to the service and try again."
        )),
        esc(error),
        esc(description)
    );
    page(status, lang, title, &body, "")
}

pub struct LoginForm<'a> {
    pub lang: Lang,
    pub action: &'a str,
    pub rid: &'a str,
    pub client_name: &'a str,
    pub persons: &'a [(String, String)],
    pub min_acr: Acr,
    pub error: Option<&'a str>,
}

pub fn login_page(f: &LoginForm<'_>) -> Response {
    let l = f.lang;
    let title = l.t(
        "Logg inn – ID-porten (testmiljø)",
        "Logg inn – ID-porten (testmiljø)",
        "Log in – ID-porten (test environment)",
    );
    let mut options = String::new();
    for (i, (pid, name)) in f.persons.iter().enumerate() {
        options.push_str(&format!(
            "<option value=\"{}\"{}>{} ({})</option>\n",
            esc(pid),
            if i == 0 { " selected" } else { "" },
            esc(name),
            esc(pid)
        ));
    }
    let mut levels = String::new();
    for (acr, label) in [
        (
            Acr::Substantial,
            l.t("Betydelig", "Betydeleg", "Substantial"),
        ),
        (Acr::High, l.t("Høyt", "Høgt", "High")),
    ] {
        if acr < f.min_acr {
            continue;
        }
        let v = acr.as_str();
        levels.push_str(&format!(
            "<div class=\"radio\"><input type=\"radio\" id=\"acr-{v}\" name=\"acr\" value=\"{v}\"{}>\
             <label for=\"acr-{v}\">{} <code>{v}</code></label></div>\n",
            if acr == f.min_acr { " checked" } else { "" },
            esc(label)
        ));
    }
    let error = f
        .error
        .map(|e| format!("<p role=\"alert\" class=\"test\">{}</p>\n", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{title}</h1>\n<p class=\"test\">{test}</p>\n<p>{to} <strong>{client}</strong>.</p>\n{error}\
         <form method=\"post\" action=\"{action}\">\n<input type=\"hidden\" name=\"rid\" value=\"{rid}\">\n\
         <label for=\"pid\">{choose}</label>\n<select id=\"pid\" name=\"pid\">\n{options}</select>\n\
         <label for=\"pid_other\">{other}</label>\n<input type=\"text\" id=\"pid_other\" name=\"pid_other\" \
         inputmode=\"numeric\" autocomplete=\"off\" pattern=\"[0-9]{{11}}\" aria-describedby=\"pid_other_help\">\n\
         <p id=\"pid_other_help\">{other_help}</p>\n\
         <fieldset>\n<legend>{level}</legend>\n{levels}</fieldset>\n\
         <button type=\"submit\" name=\"action\" value=\"login\">{login}</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\" class=\"secondary\">{cancel}</button>\n</form>",
        title = esc(title),
        test = esc(l.t(
            "Dette er en testtjeneste. Velg en syntetisk testperson.",
            "Dette er ei testteneste. Vel ein syntetisk testperson.",
            "This is a test service. Choose a synthetic test person."
        )),
        to = esc(l.t(
            "Du logger inn på",
            "Du loggar inn på",
            "You are logging in to"
        )),
        client = esc(f.client_name),
        action = esc(f.action),
        rid = esc(f.rid),
        choose = esc(l.t("Velg testperson", "Vel testperson", "Choose a test person")),
        other = esc(l.t(
            "Eller skriv inn et annet syntetisk fødselsnummer",
            "Eller skriv inn eit anna syntetisk fødselsnummer",
            "Or enter another synthetic national identity number"
        )),
        other_help = esc(l.t(
            "11 siffer. Fyller du inn dette feltet, brukes det i stedet for valget over.",
            "11 siffer. Fyller du inn dette feltet, vert det brukt i staden for valet over.",
            "11 digits. If filled in, it is used instead of the choice above."
        )),
        level = esc(l.t("Sikkerhetsnivå", "Tryggleiksnivå", "Level of assurance")),
        login = esc(l.t("Logg inn", "Logg inn", "Log in")),
        cancel = esc(l.t("Avbryt", "Avbryt", "Cancel")),
    );
    page(StatusCode::OK, l, title, &body, "")
}

/// Front-channel logout: one hidden iframe per client that shared the session, then on to
/// the client's `post_logout_redirect_uri` (meta refresh plus a visible link, no script).
pub fn logout_page(lang: Lang, iframes: &[String], continue_to: Option<&str>) -> Response {
    let title = lang.t("Du er logget ut", "Du er logga ut", "You are logged out");
    let mut body = format!("<h1>{}</h1>\n", esc(title));
    for (i, src) in iframes.iter().enumerate() {
        body.push_str(&format!(
            "<iframe src=\"{}\" title=\"{} {}\"></iframe>\n",
            esc(src),
            esc(lang.t("Utlogging", "Utlogging", "Logout")),
            i + 1
        ));
    }
    let mut head = String::new();
    if let Some(url) = continue_to {
        head = format!(
            "<meta http-equiv=\"refresh\" content=\"2;url={}\">\n",
            esc(url)
        );
        body.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            esc(url),
            esc(lang.t(
                "Gå tilbake til tjenesten",
                "Gå tilbake til tenesta",
                "Return to the service"
            ))
        ));
    }
    page(StatusCode::OK, lang, title, &body, &head)
}

/// `response_mode=form_post`: a form posting the response to the client. Without script the
/// user presses the button; that is the price of working without JavaScript.
pub fn form_post_page(lang: Lang, action: &str, fields: &[(&str, &str)]) -> Response {
    let title = lang.t("Fortsett", "Hald fram", "Continue");
    let mut inputs = String::new();
    for (k, v) in fields {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            esc(k),
            esc(v)
        ));
    }
    let body = format!(
        "<h1>{t}</h1>\n<form method=\"post\" action=\"{a}\">\n{inputs}<button type=\"submit\">{t}</button>\n</form>",
        t = esc(title),
        a = esc(action)
    );
    page(StatusCode::OK, lang, title, &body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn locale_choice() {
        assert_eq!(Lang::from_ui_locales(Some("se nn")), Lang::Nn);
        assert_eq!(Lang::from_ui_locales(Some("en")), Lang::En);
        assert_eq!(Lang::from_ui_locales(Some("de")), Lang::Nb);
        assert_eq!(Lang::from_ui_locales(None), Lang::Nb);
    }
}
