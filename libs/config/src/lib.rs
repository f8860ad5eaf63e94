//! Configuration of the suite.
//!
//! Two layers, as in the codebases we follow: [`Settings`] is what a file,
//! the environment or flags say (strict: unknown keys are refused), and
//! [`Config`] is the resolved, validated configuration the services run
//! with. Resolution fails fast with one [`ConfigError`] naming the setting.
//!
//! Layering, lowest first: embedded defaults, the TOML file given with
//! `--config`, environment variables `IDP__SECTION__KEY`, command-line flags.

pub mod delivery;
pub mod otp;
mod resolve;
pub mod saml;
mod settings;

pub use resolve::{
    AuditConfig, BusConfig, CacheConfig, Config, DevConfig, LogFormat, Mode, RegistrationConfig, ServiceEndpoints,
    SoapSources, SourcesConfig, TelemetryConfig,
};
pub use settings::{
    AuditSettings, BusSettings, CacheSettings, DatabaseSettings, DeliverySettings, DevSettings, OtpSettings,
    RegistrationSettings, SamlSettings, ServiceSettings, Settings, SmsSettings, SmtpSettings, TelemetrySettings,
};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

/// A setting that is missing, malformed or not allowed. Displays as one line
/// that names the setting, e.g. `database.url: unsupported scheme "mysql"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Where configuration comes from, besides the embedded defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A TOML file (`--config`).
    pub file: Option<std::path::PathBuf>,
    /// Read `IDP__*` environment variables.
    pub environment: bool,
    /// Flag overrides as (dotted key, value), highest precedence.
    pub overrides: Vec<(String, String)>,
}

/// Loads and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = &sources.file {
        if !file.is_file() {
            return Err(ConfigError::new("--config", format!("file {} does not exist", file.display())));
        }
        figment = figment.merge(Toml::file(file));
    }
    if sources.environment {
        figment = figment.merge(Env::prefixed("IDP__").split("__").lowercase(true));
    }
    for (key, value) in &sources.overrides {
        // Typed like environment values: `3` is a number, `true` a boolean.
        let value: figment::value::Value = value.parse().unwrap_or_else(|_| figment::value::Value::from(value.clone()));
        figment = figment.merge(Serialized::default(key, value));
    }
    let settings: Settings = figment.extract().map_err(from_figment)?;
    settings.resolve()
}

fn from_figment(err: figment::Error) -> ConfigError {
    let key = if err.path.is_empty() { "configuration".to_owned() } else { err.path.join(".") };
    let message = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let key = if err.path.is_empty() { field.clone() } else { key };
            return ConfigError::new(key, "unknown setting");
        }
        other => other.to_string(),
    };
    let origin = err.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
    ConfigError::new(key, format!("{message}{origin}"))
}

#[cfg(test)]
mod tests;
