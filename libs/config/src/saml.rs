//! authn-gateway's SAML settings, validated (SAML-1…9).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::ConfigError;
use crate::resolve::parse_http_url;
use crate::settings::SamlSettings;

/// See [`SamlSettings`].
#[derive(Debug, Clone)]
pub struct SamlConfig {
    pub entity_id: String,
    /// `None` only in production when not configured (see
    /// [`SamlConfig::keys_dir`]).
    keys_dir: Option<PathBuf>,
    /// Development only: create a missing signing key at start.
    pub generate_keys: bool,
    pub sp_metadata: Vec<PathBuf>,
    pub sp_metadata_urls: Vec<Url>,
    pub trust_anchors: Option<PathBuf>,
    pub refresh: Duration,
    pub request_max_age: Duration,
    pub clock_skew: Duration,
    pub assertion_validity: Duration,
    pub login_timeout: Duration,
    pub sso_session: Duration,
    pub password_attempts: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub assets_dir: Option<PathBuf>,
    pub organization_name: String,
    pub organization_url: Url,
}

/// An IP address range (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.trim().parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
        if let IpAddr::V6(v6) = addr
            && let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96)
        {
            return Some(IpNet { addr: IpAddr::V4(v4), prefix: prefix - 96 });
        }
        Some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u8) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((net, width), (candidate, candidate_width)) = (bits(self.addr), bits(ip));
        if width != candidate_width {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        self.prefix == 0 || net.checked_shr(shift) == candidate.checked_shr(shift)
    }
}

impl SamlConfig {
    /// The key directory, or the error naming the setting.
    pub fn keys_dir(&self) -> Result<&Path, ConfigError> {
        self.keys_dir
            .as_deref()
            .ok_or_else(|| ConfigError::new("saml.keys_dir", "required in production (the mounted signing key)"))
    }
}

pub(crate) fn resolve(
    s: SamlSettings,
    is_dev: bool,
    data_dir: &Path,
    public_url: &Url,
) -> Result<SamlConfig, ConfigError> {
    let SamlSettings {
        entity_id,
        keys_dir,
        sp_metadata,
        sp_metadata_urls,
        trust_anchors,
        refresh_secs,
        request_max_age_secs,
        clock_skew_secs,
        assertion_validity_secs,
        login_timeout_secs,
        sso_session_secs,
        password_attempts,
        trusted_proxies,
        assets_dir,
        organization_name,
        organization_url,
    } = s;
    let assets_dir = assets_dir.filter(|d| !d.trim().is_empty()).map(PathBuf::from);
    let trusted_proxies = trusted_proxies
        .iter()
        .map(|p| {
            IpNet::parse(p).ok_or_else(|| {
                ConfigError::new("saml.trusted_proxies", format!("{p}: not an IP address or CIDR range"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let origin = public_url.as_str().trim_end_matches('/').to_owned();
    let entity_id = match entity_id.filter(|e| !e.trim().is_empty()) {
        Some(e) => {
            let url = parse_http_url("saml.entity_id", &e)?;
            if !is_dev && url.scheme() != "https" {
                return Err(ConfigError::new("saml.entity_id", "must be an https:// URL in production"));
            }
            e
        }
        None => origin.clone(),
    };
    let keys_dir = match keys_dir.filter(|d| !d.trim().is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None if is_dev => Some(data_dir.join("keys").join("saml")),
        None => None,
    };
    let mut metadata: Vec<PathBuf> = sp_metadata.iter().filter(|p| !p.trim().is_empty()).map(PathBuf::from).collect();
    if is_dev {
        metadata.push(data_dir.join("sp-metadata"));
    }
    let mut urls = Vec::new();
    for u in &sp_metadata_urls {
        let url = parse_http_url("saml.sp_metadata_urls", u)?;
        if !is_dev && url.scheme() != "https" {
            return Err(ConfigError::new("saml.sp_metadata_urls", format!("{u}: must be https:// in production")));
        }
        urls.push(url);
    }
    let trust_anchors = trust_anchors.filter(|t| !t.trim().is_empty()).map(PathBuf::from);
    if !urls.is_empty() && trust_anchors.is_none() {
        return Err(ConfigError::new("saml.trust_anchors", "required when saml.sp_metadata_urls is set"));
    }
    if refresh_secs < 60 {
        return Err(ConfigError::new("saml.refresh_secs", "must be at least 60"));
    }
    if !(30..=3600).contains(&request_max_age_secs) {
        return Err(ConfigError::new("saml.request_max_age_secs", "must be between 30 and 3600"));
    }
    if clock_skew_secs > 300 {
        return Err(ConfigError::new("saml.clock_skew_secs", "must be at most 300"));
    }
    if !(30..=900).contains(&assertion_validity_secs) {
        return Err(ConfigError::new("saml.assertion_validity_secs", "must be between 30 and 900"));
    }
    if !(60..=3600).contains(&login_timeout_secs) {
        return Err(ConfigError::new("saml.login_timeout_secs", "must be between 60 and 3600"));
    }
    if !(60..=86_400).contains(&sso_session_secs) {
        return Err(ConfigError::new("saml.sso_session_secs", "must be between 60 and 86400"));
    }
    if !(1..=10).contains(&password_attempts) {
        return Err(ConfigError::new("saml.password_attempts", "must be between 1 and 10"));
    }
    if organization_name.trim().is_empty() || organization_name.len() > 200 {
        return Err(ConfigError::new("saml.organization_name", "1 to 200 characters"));
    }
    let organization_url = match organization_url.filter(|u| !u.trim().is_empty()) {
        Some(u) => parse_http_url("saml.organization_url", &u)?,
        None => public_url.clone(),
    };
    Ok(SamlConfig {
        entity_id,
        keys_dir,
        generate_keys: is_dev,
        sp_metadata: metadata,
        sp_metadata_urls: urls,
        trust_anchors,
        refresh: Duration::from_secs(refresh_secs),
        request_max_age: Duration::from_secs(request_max_age_secs),
        clock_skew: Duration::from_secs(clock_skew_secs),
        assertion_validity: Duration::from_secs(assertion_validity_secs),
        login_timeout: Duration::from_secs(login_timeout_secs),
        sso_session: Duration::from_secs(sso_session_secs),
        password_attempts,
        trusted_proxies,
        assets_dir,
        organization_name,
        organization_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saml_settings_keep_to_the_rules() {
        let public: Url = "http://127.0.0.1:8080/".parse().unwrap();
        let dev = resolve(SamlSettings::default(), true, Path::new("/var/idp"), &public).unwrap();
        assert_eq!(dev.entity_id, "http://127.0.0.1:8080");
        assert_eq!(dev.keys_dir().unwrap(), Path::new("/var/idp/keys/saml"));
        assert_eq!(dev.sp_metadata, vec![PathBuf::from("/var/idp/sp-metadata")]);
        let prod = resolve(SamlSettings::default(), false, Path::new("/var/idp"), &public).unwrap();
        assert_eq!(prod.keys_dir().unwrap_err().key, "saml.keys_dir");
        assert!(prod.sp_metadata.is_empty() && !prod.generate_keys);
        let urls = SamlSettings {
            sp_metadata_urls: vec!["https://registry.spid.gov.it/metadata".into()],
            ..Default::default()
        };
        assert_eq!(resolve(urls, false, Path::new("/x"), &public).unwrap_err().key, "saml.trust_anchors");
        let plain = SamlSettings {
            sp_metadata_urls: vec!["http://registry.example/md".into()],
            trust_anchors: Some("/etc/anchors.pem".into()),
            ..Default::default()
        };
        assert_eq!(resolve(plain, false, Path::new("/x"), &public).unwrap_err().key, "saml.sp_metadata_urls");
        let proxies = SamlSettings { trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()], ..Default::default() };
        let nets = resolve(proxies, true, Path::new("/x"), &public).unwrap().trusted_proxies;
        assert!(nets[0].contains("10.42.7.1".parse().unwrap()) && !nets[0].contains("11.0.0.1".parse().unwrap()));
        assert!(nets[0].contains("::ffff:10.1.2.3".parse().unwrap()), "IPv4-mapped addresses count");
        assert!(nets[1].contains("::1".parse().unwrap()) && !nets[1].contains("::2".parse().unwrap()));
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains("10.9.8.7".parse().unwrap()) && !mapped.contains("11.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("198.51.100.1".parse().unwrap()));
        let bad = SamlSettings { trusted_proxies: vec!["10.0.0.0/33".into()], ..Default::default() };
        assert_eq!(resolve(bad, true, Path::new("/x"), &public).unwrap_err().key, "saml.trusted_proxies");
        let attempts = SamlSettings { password_attempts: 0, ..Default::default() };
        assert_eq!(resolve(attempts, true, Path::new("/x"), &public).unwrap_err().key, "saml.password_attempts");
    }
}
