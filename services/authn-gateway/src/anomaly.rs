//! The SPID anomaly codes (`saml-error-codes.md`): which ones the user sees
//! as a page and which go back to the service provider as a SAML status.

pub const STATUS: &str = "urn:oasis:names:tc:SAML:2.0:status:";

/// An SPID error code, `nrNN` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// System unavailable (page).
    Nr02,
    /// System error (page, HTTP 500).
    Nr03,
    /// Binding format wrong (page, HTTP 403).
    Nr04,
    /// Redirect signature not verified (page, HTTP 403).
    Nr05,
    /// Binding on the wrong HTTP method (page, HTTP 403).
    Nr06,
    /// POST signature not verified (page, HTTP 403).
    Nr07,
    Nr08,
    Nr09,
    /// Issuer missing, malformed or not the signer (page, HTTP 403).
    Nr10,
    Nr11,
    Nr12,
    Nr13,
    Nr14,
    Nr15,
    Nr16,
    Nr17,
    Nr18,
    Nr19,
    Nr20,
    Nr21,
    Nr22,
    Nr23,
    Nr25,
    Nr30,
}

/// Where an anomaly is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An error page with this HTTP status; nothing goes to the SP.
    Page(u16),
    /// A SAML Response to the SP with this status and sub-status.
    Status(&'static str, Option<&'static str>),
}

impl ErrorCode {
    pub fn number(self) -> u8 {
        use ErrorCode::*;
        match self {
            Nr02 => 2,
            Nr03 => 3,
            Nr04 => 4,
            Nr05 => 5,
            Nr06 => 6,
            Nr07 => 7,
            Nr08 => 8,
            Nr09 => 9,
            Nr10 => 10,
            Nr11 => 11,
            Nr12 => 12,
            Nr13 => 13,
            Nr14 => 14,
            Nr15 => 15,
            Nr16 => 16,
            Nr17 => 17,
            Nr18 => 18,
            Nr19 => 19,
            Nr20 => 20,
            Nr21 => 21,
            Nr22 => 22,
            Nr23 => 23,
            Nr25 => 25,
            Nr30 => 30,
        }
    }

    /// `ErrorCode nrNN`, the StatusMessage the SPID rules prescribe.
    pub fn message(self) -> String {
        format!("ErrorCode nr{:02}", self.number())
    }

    pub fn answer(self) -> Answer {
        use ErrorCode::*;
        match self {
            Nr02 => Answer::Page(503),
            Nr03 => Answer::Page(500),
            Nr04 | Nr05 | Nr06 | Nr07 | Nr10 => Answer::Page(403),
            Nr08 | Nr11 => Answer::Status("Requester", None),
            Nr09 => Answer::Status("VersionMismatch", None),
            Nr12 => Answer::Status("Requester", Some("NoAuthnContext")),
            Nr13 => Answer::Status("Requester", Some("RequestDenied")),
            Nr14 | Nr16 | Nr17 | Nr18 => Answer::Status("Requester", Some("RequestUnsupported")),
            Nr15 => Answer::Status("Requester", Some("NoPassive")),
            Nr19 | Nr20 | Nr21 | Nr22 | Nr23 | Nr25 | Nr30 => Answer::Status("Responder", Some("AuthnFailed")),
        }
    }

    /// What the user reads (Italian, English).
    pub fn user_text(self) -> (&'static str, &'static str) {
        use ErrorCode::*;
        match self {
            Nr02 => (
                "Sistema di autenticazione non disponibile: riprova più tardi.",
                "The authentication system is unavailable: please try again later.",
            ),
            Nr03 => ("Errore di sistema: riprova più tardi.", "System error: please try again later."),
            Nr04 => (
                "Formato della richiesta non corretto: contatta il gestore del servizio.",
                "The request is not in the right format: please contact the service provider.",
            ),
            Nr05 | Nr07 => (
                "Impossibile stabilire l'autenticità della richiesta di autenticazione.",
                "The authenticity of the authentication request cannot be established.",
            ),
            Nr06 => ("Richiesta non ricevibile.", "The request cannot be received."),
            Nr10 => (
                "Il servizio che ha inviato la richiesta non è riconosciuto.",
                "The service that sent the request is not recognised.",
            ),
            Nr12 => (
                "Autenticazione SPID non conforme o non specificata.",
                "SPID authentication not conforming or not specified.",
            ),
            Nr19 => ("Credenziali errate per troppe volte.", "Wrong credentials too many times."),
            Nr20 => (
                "Non hai credenziali del livello richiesto dal servizio.",
                "You have no credentials of the level the service asks for.",
            ),
            Nr21 => ("Tempo scaduto per l'autenticazione.", "The authentication timed out."),
            Nr22 => ("Hai negato il consenso all'invio dei dati.", "You refused to send your data."),
            Nr23 => ("Credenziali sospese o revocate.", "Credentials suspended or revoked."),
            Nr25 => ("Hai annullato l'autenticazione.", "You cancelled the authentication."),
            Nr30 => (
                "Il tipo di identità non è accettato dal servizio.",
                "The service does not accept this type of identity.",
            ),
            _ => ("La richiesta di autenticazione non è conforme.", "The authentication request does not conform."),
        }
    }

    /// What the page tells the user to do, and what it tells the SP's
    /// integrator (pages only).
    pub fn troubleshooting(self) -> (&'static str, &'static str) {
        use ErrorCode::*;
        match self {
            Nr04 => (
                "Il servizio ha inviato una richiesta incompleta: torna al servizio e riprova; se l'errore persiste, segnalalo al servizio.",
                "SP integrators: HTTP-Redirect needs SAMLRequest, SigAlg and Signature (RelayState optional); HTTP-POST needs SAMLRequest (RelayState optional), base64-encoded, the Redirect one DEFLATE-compressed.",
            ),
            Nr05 | Nr07 => (
                "Torna al servizio e riprova; se l'errore persiste, segnalalo al servizio.",
                "SP integrators: sign with a key whose certificate is in your registered metadata (RSA-SHA256 or stronger, exclusive canonicalisation for POST), and check that the certificate has not expired.",
            ),
            Nr06 => (
                "Torna al servizio e riprova.",
                "SP integrators: send HTTP-Redirect requests with GET to the Redirect endpoint and HTTP-POST requests with POST to the POST endpoint named in our metadata.",
            ),
            Nr10 => (
                "Torna al servizio e riprova; se l'errore persiste, segnalalo al servizio.",
                "SP integrators: the Issuer must be your registered entityID, with Format urn:oasis:names:tc:SAML:2.0:nameid-format:entity and NameQualifier.",
            ),
            _ => ("Torna al servizio e riprova più tardi.", "Please go back to the service and try again later."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_with_two_digits_and_answered_as_the_table_says() {
        assert_eq!(ErrorCode::Nr08.message(), "ErrorCode nr08");
        assert_eq!(ErrorCode::Nr19.message(), "ErrorCode nr19");
        assert_eq!(ErrorCode::Nr05.answer(), Answer::Page(403));
        assert_eq!(ErrorCode::Nr03.answer(), Answer::Page(500));
        assert_eq!(ErrorCode::Nr09.answer(), Answer::Status("VersionMismatch", None));
        assert_eq!(ErrorCode::Nr15.answer(), Answer::Status("Requester", Some("NoPassive")));
        assert_eq!(ErrorCode::Nr25.answer(), Answer::Status("Responder", Some("AuthnFailed")));
    }
}
