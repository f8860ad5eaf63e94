//! otp-service's settings, validated (OTP-1…8).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ConfigError;
use crate::settings::OtpSettings;

/// See [`OtpSettings`].
#[derive(Debug, Clone)]
pub struct OtpConfig {
    /// `None` only in production when not configured (see
    /// [`OtpConfig::keys_dir`]).
    keys_dir: Option<PathBuf>,
    /// Development only: create missing keys at start.
    pub generate_keys: bool,
    pub code_validity: Duration,
    pub max_attempts: u32,
    pub codes_per_identity: u64,
    pub codes_per_address: u64,
    pub rate_window: Duration,
    pub totp_issuer: String,
}

impl OtpConfig {
    /// The key directory, or the error naming the setting.
    pub fn keys_dir(&self) -> Result<&Path, ConfigError> {
        self.keys_dir
            .as_deref()
            .ok_or_else(|| ConfigError::new("otp.keys_dir", "required in production (the mounted OTP key material)"))
    }
}

pub(crate) fn resolve(o: OtpSettings, is_dev: bool, data_dir: &Path) -> Result<OtpConfig, ConfigError> {
    let OtpSettings {
        keys_dir,
        code_validity_secs,
        max_attempts,
        codes_per_identity,
        codes_per_address,
        rate_window_secs,
        totp_issuer,
    } = o;
    // Manual A asks 60 s, manual B 5 minutes: anything longer is refused.
    if !(30..=300).contains(&code_validity_secs) {
        return Err(ConfigError::new("otp.code_validity_secs", "must be between 30 and 300 (OTP-1)"));
    }
    if !(1..=5).contains(&max_attempts) {
        return Err(ConfigError::new("otp.max_attempts", "must be between 1 and 5"));
    }
    if codes_per_identity == 0 || codes_per_address == 0 {
        return Err(ConfigError::new("otp.codes_per_identity", "limits must be at least 1"));
    }
    if rate_window_secs < 60 {
        return Err(ConfigError::new("otp.rate_window_secs", "must be at least 60"));
    }
    if totp_issuer.trim().is_empty() || totp_issuer.contains(':') || totp_issuer.len() > 64 {
        return Err(ConfigError::new("otp.totp_issuer", "1 to 64 characters, without ':'"));
    }
    let keys_dir = match keys_dir.filter(|d| !d.trim().is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None if is_dev => Some(data_dir.join("keys").join("otp")),
        None => None,
    };
    Ok(OtpConfig {
        keys_dir,
        generate_keys: is_dev,
        code_validity: Duration::from_secs(code_validity_secs),
        max_attempts,
        codes_per_identity,
        codes_per_address,
        rate_window: Duration::from_secs(rate_window_secs),
        totp_issuer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_settings_keep_to_the_rules() {
        let dev = resolve(OtpSettings::default(), true, Path::new("/var/idp")).unwrap();
        assert_eq!(dev.keys_dir().unwrap(), Path::new("/var/idp/keys/otp"));
        assert_eq!(dev.code_validity, Duration::from_secs(300));
        let prod = resolve(OtpSettings::default(), false, Path::new("/var/idp")).unwrap();
        assert_eq!(prod.keys_dir().unwrap_err().key, "otp.keys_dir");
        assert!(!prod.generate_keys);
        let long = OtpSettings { code_validity_secs: 600, ..Default::default() };
        assert_eq!(resolve(long, true, Path::new("/x")).unwrap_err().key, "otp.code_validity_secs");
        let issuer = OtpSettings { totp_issuer: "SPID:XIDP".into(), ..Default::default() };
        assert_eq!(resolve(issuer, true, Path::new("/x")).unwrap_err().key, "otp.totp_issuer");
    }
}
