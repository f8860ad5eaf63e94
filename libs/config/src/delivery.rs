//! How notification delivers messages (NOT-1, NOT-3): the e-mail and PEC
//! SMTP servers, the SMS gateway, and the retry policy.

use std::time::Duration;

use url::Url;

use crate::ConfigError;
use crate::settings::{DeliverySettings, SmsSettings, SmtpSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    /// Plain SMTP: only to a server on this host.
    None,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Username and password.
    pub credentials: Option<(String, String)>,
    pub from: String,
    pub timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsFormat {
    Json,
    Form,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmsConfig {
    pub url: Url,
    pub format: SmsFormat,
    pub to_field: String,
    pub text_field: String,
    pub sender_field: String,
    pub reference_field: String,
    pub sender: String,
    /// Header name and value.
    pub auth: Option<(String, String)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("host", &self.url.host_str())
            .field("format", &self.format)
            .field("auth_header", &self.auth.as_ref().map(|(h, _)| h))
            .finish()
    }
}

/// See [`DeliverySettings`].
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    pub concurrency: usize,
    pub email: Option<SmtpConfig>,
    pub pec: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    /// Development: channels without a configuration go to the outbox.
    pub dev_outbox: bool,
}

impl DeliveryConfig {
    /// The channels production cannot do without, or the error naming the
    /// missing setting (checked by the notification service alone).
    pub fn require_channels(&self) -> Result<(), ConfigError> {
        if self.dev_outbox {
            return Ok(());
        }
        if self.email.is_none() {
            return Err(ConfigError::new("delivery.email.host", "required in production (the SMTP server)"));
        }
        if self.sms.is_none() {
            return Err(ConfigError::new("delivery.sms.url", "required in production (the SMS gateway)"));
        }
        Ok(())
    }
}

pub(crate) fn resolve(d: DeliverySettings, is_dev: bool) -> Result<DeliveryConfig, ConfigError> {
    let DeliverySettings { max_attempts, retry_base_secs, retry_max_secs, lease_secs, concurrency, email, pec, sms } =
        d;
    if !(1..=50).contains(&max_attempts) {
        return Err(ConfigError::new("delivery.max_attempts", "must be between 1 and 50"));
    }
    if retry_base_secs == 0 || retry_max_secs < retry_base_secs {
        return Err(ConfigError::new(
            "delivery.retry_base_secs",
            "must be at least 1 and at most delivery.retry_max_secs",
        ));
    }
    if lease_secs < 5 {
        return Err(ConfigError::new("delivery.lease_secs", "must be at least 5"));
    }
    if !(1..=256).contains(&concurrency) {
        return Err(ConfigError::new("delivery.concurrency", "must be between 1 and 256"));
    }
    Ok(DeliveryConfig {
        max_attempts,
        retry_base: Duration::from_secs(retry_base_secs),
        retry_max: Duration::from_secs(retry_max_secs),
        lease: Duration::from_secs(lease_secs),
        concurrency: concurrency as usize,
        email: resolve_smtp("delivery.email", email)?,
        pec: resolve_smtp("delivery.pec", pec)?,
        sms: resolve_sms(sms, is_dev)?,
        dev_outbox: is_dev,
    })
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn given(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.trim().is_empty())
}

fn resolve_smtp(section: &str, s: SmtpSettings) -> Result<Option<SmtpConfig>, ConfigError> {
    let SmtpSettings { host, port, tls, username, password, from, timeout_secs, ca_file } = s;
    let key = |k: &str| format!("{section}.{k}");
    let Some(host) = given(host) else {
        return Ok(None);
    };
    let tls = match tls.as_str() {
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Implicit,
        "none" if is_loopback(&host) => SmtpTls::None,
        "none" => {
            return Err(ConfigError::new(key("tls"), "plain SMTP is allowed only to a server on this host"));
        }
        other => {
            return Err(ConfigError::new(key("tls"), format!("\"{other}\" is not one of starttls, tls, none")));
        }
    };
    let port = match (port, tls) {
        (0, SmtpTls::Implicit) => 465,
        (0, SmtpTls::StartTls) => 587,
        (0, SmtpTls::None) => 25,
        (p, _) => p,
    };
    let credentials = match (given(username), given(password)) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => return Err(ConfigError::new(key("username"), "give both the username and the password")),
    };
    if !valid_sender(&from) {
        return Err(ConfigError::new(key("from"), "required: the sender address, e.g. \"SPID <noreply@example.it>\""));
    }
    if timeout_secs == 0 {
        return Err(ConfigError::new(key("timeout_secs"), "must be at least 1"));
    }
    let ca_file = given(ca_file).map(std::path::PathBuf::from);
    if ca_file.is_some() && tls == SmtpTls::None {
        return Err(ConfigError::new(key("ca_file"), "only with tls = starttls or tls"));
    }
    Ok(Some(SmtpConfig { host, port, tls, credentials, from, timeout: Duration::from_secs(timeout_secs), ca_file }))
}

/// `name <address>` or `address`, with one `@` in the address.
fn valid_sender(from: &str) -> bool {
    let address = match (from.rfind('<'), from.strip_suffix('>')) {
        (Some(open), Some(rest)) => &rest[open + 1..],
        _ => from,
    };
    spid_types::contact::is_email(address.trim())
}

fn resolve_sms(s: SmsSettings, is_dev: bool) -> Result<Option<SmsConfig>, ConfigError> {
    let SmsSettings {
        url,
        format,
        to_field,
        text_field,
        sender_field,
        reference_field,
        sender,
        auth_header,
        token,
        timeout_secs,
    } = s;
    let Some(url) = given(url) else {
        return Ok(None);
    };
    let url =
        Url::parse(&url).map_err(|e| ConfigError::new("delivery.sms.url", format!("\"{url}\" is not a URL: {e}")))?;
    let plain_ok = is_dev || url.host_str().is_some_and(is_loopback);
    match url.scheme() {
        "https" => {}
        "http" if plain_ok => {}
        _ => return Err(ConfigError::new("delivery.sms.url", "must be https (http only on this host)")),
    }
    let format = match format.as_str() {
        "json" => SmsFormat::Json,
        "form" => SmsFormat::Form,
        other => {
            return Err(ConfigError::new("delivery.sms.format", format!("\"{other}\" is not one of json, form")));
        }
    };
    for (k, v) in [("to_field", &to_field), ("text_field", &text_field)] {
        if v.trim().is_empty() {
            return Err(ConfigError::new(format!("delivery.sms.{k}"), "must not be empty"));
        }
    }
    let auth = match given(token) {
        Some(_) if auth_header.trim().is_empty() => {
            return Err(ConfigError::new("delivery.sms.auth_header", "needed to send the token"));
        }
        Some(t) => Some((auth_header, t)),
        None => None,
    };
    if timeout_secs == 0 {
        return Err(ConfigError::new("delivery.sms.timeout_secs", "must be at least 1"));
    }
    Ok(Some(SmsConfig {
        url,
        format,
        to_field,
        text_field,
        sender_field,
        reference_field,
        sender,
        auth,
        timeout: Duration::from_secs(timeout_secs),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(host: &str, tls: &str) -> SmtpSettings {
        SmtpSettings {
            host: Some(host.into()),
            tls: tls.into(),
            from: "SPID XIDP <noreply@idp.example.it>".into(),
            ..SmtpSettings::default()
        }
    }

    #[test]
    fn defaults_have_no_channel_and_production_refuses_that() {
        let dev = resolve(DeliverySettings::default(), true).unwrap();
        assert!(dev.email.is_none() && dev.sms.is_none() && dev.pec.is_none());
        assert!(dev.require_channels().is_ok(), "development falls back to the outbox");
        let prod = resolve(DeliverySettings::default(), false).unwrap();
        assert_eq!(prod.require_channels().unwrap_err().key, "delivery.email.host");
        let with_email = DeliverySettings { email: smtp("smtp.example.it", "starttls"), ..Default::default() };
        assert_eq!(resolve(with_email, false).unwrap().require_channels().unwrap_err().key, "delivery.sms.url");
    }

    #[test]
    fn smtp_settings_are_checked() {
        let ok = resolve_smtp("delivery.email", smtp("smtp.example.it", "tls")).unwrap().unwrap();
        assert_eq!((ok.port, ok.tls), (465, SmtpTls::Implicit));
        let plain = resolve_smtp("delivery.email", smtp("127.0.0.1", "none")).unwrap().unwrap();
        assert_eq!(plain.port, 25);
        let err = resolve_smtp("delivery.email", smtp("smtp.example.it", "none")).unwrap_err();
        assert_eq!(err.key, "delivery.email.tls");
        let half = SmtpSettings { username: Some("u".into()), ..smtp("smtp.example.it", "tls") };
        assert_eq!(resolve_smtp("delivery.pec", half).unwrap_err().key, "delivery.pec.username");
        let no_from = SmtpSettings { from: "noreply".into(), ..smtp("smtp.example.it", "tls") };
        assert_eq!(resolve_smtp("delivery.email", no_from).unwrap_err().key, "delivery.email.from");
        let named = SmtpSettings {
            username: Some("u".into()),
            password: Some("hunter2".into()),
            ..smtp("smtp.example.it", "starttls")
        };
        let c = resolve_smtp("delivery.email", named).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"), "no password in Debug output");
    }

    #[test]
    fn sms_settings_are_checked() {
        let s = |url: &str| SmsSettings { url: Some(url.into()), ..SmsSettings::default() };
        assert!(resolve_sms(s("https://sms.example.it/send"), false).unwrap().is_some());
        assert!(resolve_sms(s("http://127.0.0.1:9000/send"), false).unwrap().is_some());
        assert_eq!(resolve_sms(s("http://sms.example.it/send"), false).unwrap_err().key, "delivery.sms.url");
        assert!(resolve_sms(s("http://sms.example.it/send"), true).unwrap().is_some());
        let bad = SmsSettings { format: "xml".into(), ..s("https://sms.example.it/send") };
        assert_eq!(resolve_sms(bad, false).unwrap_err().key, "delivery.sms.format");
        let token = SmsSettings { token: Some("Bearer secret-value".into()), ..s("https://sms.example.it/send") };
        let c = resolve_sms(token, false).unwrap().unwrap();
        assert_eq!(c.auth.as_ref().map(|(h, _)| h.as_str()), Some("Authorization"));
        assert!(!format!("{c:?}").contains("secret-value"));
        let keyed = SmsSettings {
            url: Some("https://sms.example.it/send?apikey=k-991".into()),
            token: Some("Bearer t-5".into()),
            ..SmsSettings::default()
        };
        let shown = format!("{keyed:?} {:?}", resolve_sms(keyed.clone(), false).unwrap().unwrap());
        assert!(!shown.contains("k-991") && !shown.contains("t-5"), "{shown}");
        let smtp = SmtpSettings { password: Some("hunter2".into()), ..SmtpSettings::default() };
        assert!(!format!("{smtp:?}").contains("hunter2"));
    }
}
