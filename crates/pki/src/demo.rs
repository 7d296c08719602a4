//! The organizations of samspill's development setup, in one place so every stand-in, the
//! demo and the tests agree. Orgnrs are valid mod-11 numbers; the two mailbox providers use
//! the real provider orgnrs (Posten/Digipost, e-Boks) as KRR does.

use domain::Organisasjonsnummer;

/// A valid orgnr from an 8-digit prefix, stepping forward until the mod-11 check digit exists.
pub fn orgnr_near(prefix: u32) -> Organisasjonsnummer {
    let mut p = prefix;
    loop {
        let mut digits = [0u8; 8];
        let mut x = p;
        for d in digits.iter_mut().rev() {
            *d = (x % 10) as u8;
            x /= 10;
        }
        if let Some(o) = Organisasjonsnummer::from_prefix(digits) {
            return o;
        }
        p += 1;
    }
}

fn fixed(s: &str, fallback: u32) -> Organisasjonsnummer {
    Organisasjonsnummer::parse(s).unwrap_or_else(|_| orgnr_near(fallback))
}

/// "Samspill kommune": sends letters and runs Min side. Maskinporten client `samspill-kommune`.
pub fn kommune() -> Organisasjonsnummer {
    orgnr_near(94_000_000)
}
pub const KOMMUNE_NAME: &str = "Samspill kommune";

/// "Samspill databehandler": sends on the kommune's behalf (delegation).
pub fn databehandler() -> Organisasjonsnummer {
    orgnr_near(94_100_000)
}
pub const DATABEHANDLER_NAME: &str = "Samspill databehandler";

/// The access point (formidler, corners 2/3).
pub fn formidler() -> Organisasjonsnummer {
    orgnr_near(94_200_000)
}
pub const FORMIDLER_NAME: &str = "Samspill formidler";

/// Mailbox provider A: Posten/Digipost's real orgnr.
pub fn digipost() -> Organisasjonsnummer {
    fixed("984661185", 94_300_000)
}
pub const DIGIPOST_NAME: &str = "Digipost (Samspill test)";

/// Mailbox provider B: e-Boks' real orgnr.
pub fn eboks() -> Organisasjonsnummer {
    fixed("996460320", 94_400_000)
}
pub const EBOKS_NAME: &str = "e-Boks (Samspill test)";

/// The print provider (utskrift).
pub fn print() -> Organisasjonsnummer {
    orgnr_near(94_500_000)
}
pub const PRINT_NAME: &str = "Samspill utskrift";

/// Digdir (the real orgnr), who runs KRR; signs KRR's `application/jose` answers.
pub fn digdir() -> Organisasjonsnummer {
    fixed("991825827", 94_600_000)
}
pub const DIGDIR_NAME: &str = "Digitaliseringsdirektoratet (Samspill test)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_orgnrs_are_valid_and_distinct() {
        let all = [
            kommune(),
            databehandler(),
            formidler(),
            digipost(),
            eboks(),
            print(),
            digdir(),
        ];
        for o in &all {
            assert!(Organisasjonsnummer::parse(&o.to_string()).is_ok());
        }
        let mut s: Vec<String> = all.iter().map(|o| o.to_string()).collect();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 7);
        assert_eq!(digdir().to_string(), "991825827");
        assert_eq!(digipost().to_string(), "984661185");
        assert_eq!(eboks().to_string(), "996460320");
    }
}
