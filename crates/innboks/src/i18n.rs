//! Every user-facing string of the app in bokmål, nynorsk and English, in one typed
//! catalogue: a missing translation is a compile error, not a blank on the page.

use axum::http::{HeaderMap, header};

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Nb,
    Nn,
    En,
}

/// Name of the cookie that remembers the chosen language.
pub const LANG_COOKIE: &str = "innboks_lang";

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Nb, Lang::Nn, Lang::En];

    /// BCP 47 tag for `lang` attributes and ID-porten's `ui_locales`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::Nn => "nn",
            Lang::En => "en",
        }
    }

    /// The language's own name (shown in the switch in that language).
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::Nb => "Bokmål",
            Lang::Nn => "Nynorsk",
            Lang::En => "English",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nb" | "no" | "nb-no" | "no-nb" => Some(Lang::Nb),
            "nn" | "nn-no" => Some(Lang::Nn),
            "en" | "en-gb" | "en-us" => Some(Lang::En),
            _ => None,
        }
    }

    /// The cookie first, then the browser's `Accept-Language`, then bokmål.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(l) = crate::cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .filter_map(|part| part.split(';').next())
                    .find_map(Lang::parse)
            })
            .unwrap_or_default()
    }

    pub fn tr(self) -> Tr {
        Tr(self)
    }
}

macro_rules! catalogue {
    ($($key:ident => $nb:literal, $nn:literal, $en:literal;)*) => {
        /// The strings of one language: `tr.inbox()` and so on.
        #[derive(Debug, Clone, Copy)]
        pub struct Tr(pub Lang);

        impl Tr {
            $(
                pub fn $key(&self) -> &'static str {
                    match self.0 {
                        Lang::Nb => $nb,
                        Lang::Nn => $nn,
                        Lang::En => $en,
                    }
                }
            )*
        }

        #[cfg(test)]
        pub(crate) fn all_strings(l: Lang) -> Vec<&'static str> {
            let t = Tr(l);
            vec![$(t.$key()),*]
        }
    };
}

catalogue! {
    app_name => "Digital postkasse", "Digital postkasse", "Digital mailbox";
    skip_to_content => "Hopp til hovedinnhold", "Hopp til hovudinnhald", "Skip to main content";
    language => "Språk", "Språk", "Language";
    main_menu => "Hovedmeny", "Hovudmeny", "Main menu";
    inbox => "Innboks", "Innboks", "Inbox";
    archive => "Arkiv", "Arkiv", "Archive";
    bin => "Papirkurv", "Papirkorg", "Bin";
    my_documents => "Mine dokumenter", "Mine dokument", "My documents";
    notifications => "Varsler", "Varsel", "Notifications";
    log_in => "Logg inn", "Logg inn", "Log in";
    log_out => "Logg ut", "Logg ut", "Log out";
    logged_in_as => "Innlogget som", "Innlogga som", "Logged in as";
    welcome_title => "Velkommen til din digitale postkasse", "Velkomen til den digitale postkassa di", "Welcome to your digital mailbox";
    welcome_text => "Her leser du brev fra det offentlige. Logg inn med ID-porten for å se posten din.", "Her les du brev frå det offentlege. Logg inn med ID-porten for å sjå posten din.", "Read letters from the public sector here. Log in with ID-porten to see your mail.";
    log_in_idporten => "Logg inn med ID-porten", "Logg inn med ID-porten", "Log in with ID-porten";
    filters => "Filtrer og søk", "Filtrer og søk", "Filter and search";
    search => "Søk i tittel og avsender", "Søk i tittel og avsendar", "Search titles and senders";
    from_date => "Fra dato", "Frå dato", "From date";
    to_date => "Til dato", "Til dato", "To date";
    only_unread => "Bare uleste", "Berre ulesne", "Unread only";
    apply_filters => "Vis brev", "Vis brev", "Show letters";
    clear_filters => "Fjern filtre", "Fjern filter", "Clear filters";
    sender_filter => "Avsender", "Avsendar", "Sender";
    remove_sender_filter => "Vis alle avsendere", "Vis alle avsendarar", "Show all senders";
    letters => "Brev", "Brev", "Letters";
    no_letters => "Ingen brev her.", "Ingen brev her.", "No letters here.";
    select_letter => "Velg", "Vel", "Select";
    unread => "Ulest", "Ulese", "Unread";
    read => "Lest", "Lese", "Read";
    attachments => "vedlegg", "vedlegg", "attachments";
    sender => "Avsender", "Avsendar", "Sender";
    title => "Tittel", "Tittel", "Title";
    date => "Dato", "Dato", "Date";
    status => "Status", "Status", "Status";
    high_security => "Krever høyt sikkerhetsnivå", "Krev høgt tryggleiksnivå", "Requires high security level";
    opening_receipt_badge => "Åpningskvittering", "Opningskvittering", "Opening receipt";
    with_selected => "Med valgte brev", "Med valde brev", "With selected letters";
    do_archive => "Arkiver", "Arkiver", "Archive";
    do_bin => "Flytt til papirkurv", "Flytt til papirkorga", "Move to bin";
    bin_retention => "Brev slettes for godt når de har ligget i papirkurven i", "Brev blir sletta for godt når dei har lege i papirkorga i", "Letters are deleted for good once they have been in the bin for";
    days => "dager", "dagar", "days";
    deleted_for_good_on => "Slettes for godt", "Blir sletta for godt", "To be deleted for good on";
    do_restore => "Flytt til innboks", "Flytt til innboksen", "Move to inbox";
    do_mark_read => "Merk som lest", "Merk som lese", "Mark as read";
    do_mark_unread => "Merk som ulest", "Merk som ulese", "Mark as unread";
    next_page => "Eldre brev", "Eldre brev", "Older letters";
    first_page => "Nyeste brev", "Nyaste brev", "Newest letters";
    none_selected => "Du valgte ingen brev.", "Du valde ingen brev.", "You did not select any letters.";
    done_moved => "Brevene er flyttet.", "Breva er flytte.", "The letters were moved.";
    done_marked => "Brevene er oppdatert.", "Breva er oppdaterte.", "The letters were updated.";
    do_delete => "Slett for godt", "Slett for godt", "Delete for good";
    confirm_delete_title => "Slette for godt?", "Slette for godt?", "Delete for good?";
    confirm_delete_text => "Disse brevene og dokumentene deres blir slettet for godt. Det kan ikke angres.", "Desse breva og dokumenta deira blir sletta for godt. Det kan ikkje angrast.", "These letters and their documents will be deleted for good. This cannot be undone.";
    cancel => "Avbryt", "Avbryt", "Cancel";
    done_deleted => "Brevene er slettet for godt.", "Breva er sletta for godt.", "The letters were deleted for good.";
    back_to_list => "Tilbake til listen", "Tilbake til lista", "Back to the list";
    received => "Mottatt", "Motteke", "Received";
    documents => "Dokumenter", "Dokument", "Documents";
    main_document => "Hoveddokument", "Hovuddokument", "Main document";
    attachment => "Vedlegg", "Vedlegg", "Attachment";
    download => "Last ned", "Last ned", "Download";
    open_in_new => "Åpne i nytt vindu", "Opne i nytt vindauge", "Open in a new window";
    pdf_fallback => "Nettleseren din viser ikke PDF her. Last ned dokumentet for å lese det.", "Nettlesaren din viser ikkje PDF her. Last ned dokumentet for å lese det.", "Your browser does not show PDF here. Download the document to read it.";
    html_document => "Brevets innhold", "Innhaldet i brevet", "Contents of the letter";
    unsupported_inline => "Dette dokumentet kan ikke vises her. Last det ned for å åpne det.", "Dette dokumentet kan ikkje visast her. Last det ned for å opne det.", "This document cannot be shown here. Download it to open it.";
    locked_title => "Dette brevet krever høyere sikkerhetsnivå", "Dette brevet krev høgare tryggleiksnivå", "This letter needs a higher security level";
    locked_text => "Avsenderen har merket brevet som sensitivt. Logg inn med høyt sikkerhetsnivå (for eksempel BankID) for å lese det.", "Avsendaren har merkt brevet som sensitivt. Logg inn med høgt tryggleiksnivå (til dømes BankID) for å lese det.", "The sender marked this letter as sensitive. Log in at a high security level (for example BankID) to read it.";
    step_up => "Logg inn med høyt sikkerhetsnivå", "Logg inn med høgt tryggleiksnivå", "Log in at a high security level";
    receipt_title => "Avsenderen ber om åpningskvittering", "Avsendaren ber om opningskvittering", "The sender asks for an opening receipt";
    receipt_text => "Når du åpner brevet, får avsenderen beskjed om at du har åpnet det. Du må godta dette før du kan lese brevet.", "Når du opnar brevet, får avsendaren melding om at du har opna det. Du må godta dette før du kan lese brevet.", "When you open the letter, the sender is told that you have opened it. You must accept this before you can read the letter.";
    receipt_accept => "Godta og åpne brevet", "Godta og opne brevet", "Accept and open the letter";
    receipt_sent => "Avsenderen har fått beskjed om at du åpnet brevet.", "Avsendaren har fått melding om at du opna brevet.", "The sender has been told that you opened the letter.";
    move_to => "Flytt brevet", "Flytt brevet", "Move the letter";
    in_folder => "Ligger i", "Ligg i", "In folder";
    lenke_default_button => "Gå til tjenesten", "Gå til tenesta", "Go to the service";
    lenke_default_text => "Avsenderen har lagt ved en lenke til en tjeneste.", "Avsendaren har lagt ved ei lenke til ei teneste.", "The sender attached a link to a service.";
    deadline => "Frist", "Frist", "Deadline";
    deadline_passed => "Fristen har gått ut", "Fristen har gått ut", "The deadline has passed";
    external_link_note => "Lenken åpnes i et nytt vindu og går til avsenderens nettsted.", "Lenka blir opna i eit nytt vindauge og går til nettstaden til avsendaren.", "The link opens in a new window and goes to the sender's website.";
    arrangement => "Arrangement", "Arrangement", "Event";
    times => "Tidspunkt", "Tidspunkt", "Times";
    place => "Sted", "Stad", "Place";
    attendance => "Oppmøte", "Oppmøte", "Attendance";
    barcode => "Strekkode", "Strekkode", "Barcode";
    add_to_calendar => "Legg til i kalender (.ics)", "Legg til i kalender (.ics)", "Add to calendar (.ics)";
    more_info => "Mer informasjon", "Meir informasjon", "More information";
    proof => "Bevis", "Prov", "Proof";
    holder => "Innehaver", "Innehavar", "Holder";
    valid => "Gyldig", "Gyldig", "Valid";
    valid_period => "Gyldighet", "Gyldigheit", "Validity";
    not_valid_now => "Ikke gyldig nå", "Ikkje gyldig no", "Not valid now";
    valid_now => "Gyldig nå", "Gyldig no", "Valid now";
    every_year => "hvert år", "kvart år", "every year";
    issued => "Utstedt", "Utferda", "Issued";
    from => "fra", "frå", "from";
    to => "til", "til", "to";
    error_title => "Noe gikk galt", "Noko gjekk gale", "Something went wrong";
    not_found_title => "Fant ikke siden", "Fann ikkje sida", "Page not found";
    not_found_text => "Brevet eller dokumentet finnes ikke, eller det er ikke ditt.", "Brevet eller dokumentet finst ikkje, eller det er ikkje ditt.", "The letter or document does not exist, or it is not yours.";
    no_mailbox_title => "Du har ingen postkasse her", "Du har inga postkasse her", "You have no mailbox here";
    no_mailbox_text => "Vi fant ingen digital postkasse for deg hos denne leverandøren.", "Vi fann inga digital postkasse for deg hos denne leverandøren.", "We found no digital mailbox for you at this provider.";
    bad_request_title => "Ugyldig forespørsel", "Ugyldig førespurnad", "Invalid request";
    forbidden_title => "Ikke tillatt", "Ikkje tillate", "Not allowed";
    forbidden_text => "Skjemaet var utløpt eller kom ikke fra denne siden. Prøv igjen.", "Skjemaet var utgått eller kom ikkje frå denne sida. Prøv igjen.", "The form had expired or did not come from this page. Please try again.";
    upload_title => "Last opp dokument", "Last opp dokument", "Upload a document";
    upload_help => "PDF, PNG, JPEG eller tekst, høyst", "PDF, PNG, JPEG eller tekst, høgst", "PDF, PNG, JPEG or text, at most";
    upload_file => "Fil", "Fil", "File";
    upload_name => "Navn på dokumentet", "Namn på dokumentet", "Name of the document";
    upload_button => "Last opp", "Last opp", "Upload";
    upload_done => "Dokumentet er lastet opp.", "Dokumentet er lasta opp.", "The document was uploaded.";
    upload_too_large => "Filen er for stor.", "Fila er for stor.", "The file is too large.";
    upload_bad_type => "Denne filtypen kan ikke lastes opp. Bruk PDF, PNG, JPEG eller tekst.", "Denne filtypen kan ikkje lastast opp. Bruk PDF, PNG, JPEG eller tekst.", "This file type cannot be uploaded. Use PDF, PNG, JPEG or text.";
    upload_empty => "Velg en fil som ikke er tom.", "Vel ei fil som ikkje er tom.", "Choose a file that is not empty.";
    upload_quota => "Du har nådd grensen for antall dokumenter.", "Du har nådd grensa for tal på dokument.", "You have reached the limit on the number of documents.";
    no_documents => "Du har ikke lastet opp noen dokumenter.", "Du har ikkje lasta opp nokon dokument.", "You have not uploaded any documents.";
    size => "Størrelse", "Storleik", "Size";
    error_summary => "Rett opp dette", "Rett opp dette", "Please correct this";
    notifications_intro => "Varsler som er sendt om brevene dine (e-post og SMS).", "Varsel som er sende om breva dine (e-post og SMS).", "Notifications sent about your letters (e-mail and SMS).";
    no_notifications => "Ingen varsler er sendt.", "Ingen varsel er sende.", "No notifications have been sent.";
    channel => "Kanal", "Kanal", "Channel";
    message => "Melding", "Melding", "Message";
    sent_at => "Sendt", "Send", "Sent";
    footer_text => "Testmiljø for digital post. Ingen ekte personopplysninger.", "Testmiljø for digital post. Ingen ekte personopplysningar.", "Test environment for digital post. No real personal data.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_exists_in_every_language() {
        let n = all_strings(Lang::Nb).len();
        for l in Lang::ALL {
            let all = all_strings(l);
            assert_eq!(all.len(), n);
            assert!(all.iter().all(|s| !s.trim().is_empty()), "{l:?}");
        }
        // English differs from bokmål almost everywhere; a copy-paste slip would not.
        let same = all_strings(Lang::Nb)
            .iter()
            .zip(all_strings(Lang::En))
            .filter(|(a, b)| *a == b)
            .count();
        assert!(same < 8, "{same} strings identical in nb and en");
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::Nb);
        h.insert(header::ACCEPT_LANGUAGE, "en-GB,en;q=0.8".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert(header::COOKIE, "a=b; innboks_lang=nn".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::Nn);
        assert_eq!(Lang::parse("xx"), None);
    }
}
