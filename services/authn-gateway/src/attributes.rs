//! The SPID attributes (SAML-5): their names, and the XML Schema type each
//! is sent with. identity-manager gives the values already in the SPID
//! formats (`TINIT-…`, `VATIT-…`, dates `YYYY-MM-DD`).

/// Every attribute name the SPID rules define.
pub const SPID_ATTRIBUTES: [&str; 23] = [
    "spidCode",
    "name",
    "familyName",
    "placeOfBirth",
    "countyOfBirth",
    "dateOfBirth",
    "gender",
    "companyName",
    "registeredOffice",
    "fiscalNumber",
    "companyFiscalNumber",
    "ivaCode",
    "idCard",
    "mobilePhone",
    "email",
    "address",
    "digitalAddress",
    "expirationDate",
    "domicileStreetAddress",
    "domicilePostalCode",
    "domicileMunicipality",
    "domicileProvince",
    "domicileNation",
];

pub fn is_spid_attribute(name: &str) -> bool {
    SPID_ATTRIBUTES.contains(&name)
}

/// `xs:date` for the two dates, `xs:string` for the rest.
pub fn xsi_type(name: &str) -> &'static str {
    match name {
        "dateOfBirth" | "expirationDate" => "xs:date",
        _ => "xs:string",
    }
}

/// How the consent page names an attribute (Italian, English).
pub fn label(name: &str) -> (&'static str, &'static str) {
    match name {
        "spidCode" => ("Codice identificativo SPID", "SPID code"),
        "name" => ("Nome", "Name"),
        "familyName" => ("Cognome", "Family name"),
        "placeOfBirth" => ("Luogo di nascita", "Place of birth"),
        "countyOfBirth" => ("Provincia di nascita", "County of birth"),
        "dateOfBirth" => ("Data di nascita", "Date of birth"),
        "gender" => ("Sesso", "Gender"),
        "companyName" => ("Ragione sociale", "Company name"),
        "registeredOffice" => ("Sede legale", "Registered office"),
        "fiscalNumber" => ("Codice fiscale", "Fiscal number"),
        "companyFiscalNumber" => ("Codice fiscale della persona giuridica", "Company fiscal number"),
        "ivaCode" => ("Partita IVA", "VAT number"),
        "idCard" => ("Documento d'identità", "Identity document"),
        "mobilePhone" => ("Numero di cellulare", "Mobile phone"),
        "email" => ("Indirizzo di posta elettronica", "E-mail address"),
        "address" => ("Domicilio fisico", "Address"),
        "digitalAddress" => ("Domicilio digitale (PEC)", "Digital address (PEC)"),
        "expirationDate" => ("Data di scadenza dell'identità", "Identity expiry date"),
        "domicileStreetAddress" => ("Indirizzo di domicilio", "Domicile street address"),
        "domicilePostalCode" => ("CAP di domicilio", "Domicile postal code"),
        "domicileMunicipality" => ("Comune di domicilio", "Domicile municipality"),
        "domicileProvince" => ("Provincia di domicilio", "Domicile province"),
        "domicileNation" => ("Nazione di domicilio", "Domicile nation"),
        _ => ("Attributo", "Attribute"),
    }
}
