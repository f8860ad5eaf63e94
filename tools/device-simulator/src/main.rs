//! `spid-device`: a small stand-in for the provider's mobile app (OTP-3,
//! OTP-4), for development (`make run`) and the tests. It speaks the same
//! gRPC API a real app would (otp-service `Devices`, see docs/otp.md):
//!
//! - `bind`: a new ECDSA P-256 key, bound to the identity with the
//!   activation code the reserved area showed and a PIN;
//! - `approve`: waits for the push challenge of its identity and approves
//!   (or `--refuse`s) it with a signature of its key;
//! - `scan`: approves (or refuses) the login whose QR payload it is given.
//!
//! The key and the device id live in the `--state` file (owner-only).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sha::sha256;
use spid_proto::otp::v1 as pb;
use spid_proto::otp::v1::devices_client::DevicesClient;

#[derive(Debug, Parser)]
#[command(name = "spid-device", about = "Stand-in for the IdP's mobile app")]
struct Cli {
    /// otp-service's gRPC address.
    #[arg(long, global = true, env = "SPID_DEVICE_OTP", default_value = "http://127.0.0.1:50053")]
    otp: String,
    /// Where the device keeps its id and key.
    #[arg(long, global = true, env = "SPID_DEVICE_STATE", default_value = "./var/device.json")]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bind this device with the activation code from the reserved area.
    Bind {
        #[arg(long)]
        activation_code: String,
        /// The app PIN (OTP-6: 6 letters and digits, no runs, no sequences,
        /// no names); checked by the server, kept by nobody.
        #[arg(long)]
        pin: String,
        #[arg(long, default_value = "spid-device")]
        name: String,
    },
    /// Wait for the identity's push challenge and decide it.
    Approve {
        #[arg(long)]
        refuse: bool,
        /// Seconds to wait for a challenge.
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// Decide the login shown as this QR payload.
    Scan {
        #[arg(long)]
        qr: String,
        #[arg(long)]
        refuse: bool,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    device_id: String,
    key_pem: String,
}

fn sign(key: &EcKey<Private>, message: &[u8]) -> Result<Vec<u8>, String> {
    EcdsaSig::sign(&sha256(message), key).and_then(|s| s.to_der()).map_err(|e| e.to_string())
}

fn approval(challenge_id: &str, nonce: &str, approve: bool) -> Vec<u8> {
    let decision = if approve { "approve" } else { "refuse" };
    format!("spid-idp approval v1\n{challenge_id}\n{nonce}\n{decision}").into_bytes()
}

fn load(path: &Path) -> Result<(String, EcKey<Private>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e} (bind first)", path.display()))?;
    let state: State = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = EcKey::private_key_from_pem(state.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok((state.device_id, key))
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut client = DevicesClient::connect(cli.otp.clone()).await.map_err(|e| format!("{}: {e}", cli.otp))?;
    let status = |e: tonic::Status| format!("otp-service: {}", e.message());
    match cli.command {
        Command::Bind { activation_code, pin, name } => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(|e| e.to_string())?;
            let key = EcKey::generate(&group).map_err(|e| e.to_string())?;
            let public =
                PKey::from_ec_key(key.clone()).and_then(|k| k.public_key_to_pem()).map_err(|e| e.to_string())?;
            let r = client
                .bind(pb::BindRequest { activation_code, public_key: public, device_name: name, pin })
                .await
                .map_err(status)?
                .into_inner();
            let key_pem =
                String::from_utf8(key.private_key_to_pem().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let state = serde_json::to_vec_pretty(&State { device_id: r.device_id.clone(), key_pem })
                .map_err(|e| e.to_string())?;
            if let Some(dir) = cli.state.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            spid_secrets::write_private(&cli.state, &state).map_err(|e| e.to_string())?;
            println!("bound: device {}", r.device_id);
        }
        Command::Approve { refuse, wait } => {
            let (device_id, key) = load(&cli.state)?;
            let deadline = std::time::Instant::now() + Duration::from_secs(wait);
            let found = loop {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs() as i64;
                let signature = sign(&key, format!("spid-idp pending v1\n{device_id}\n{now}").as_bytes())?;
                let r = client
                    .pending(pb::PendingRequest { device_id: device_id.clone(), unix_seconds: now, signature })
                    .await
                    .map_err(status)?
                    .into_inner();
                if let Some(a) = r.approvals.into_iter().next() {
                    break a;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!("no login to approve within {wait} s"));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            let signature = sign(&key, &approval(&found.challenge_id, &found.nonce, !refuse))?;
            client
                .decide(pb::DecideRequest {
                    device_id,
                    challenge_id: found.challenge_id.clone(),
                    approve: !refuse,
                    signature,
                })
                .await
                .map_err(status)?;
            let verb = if refuse { "refused" } else { "approved" };
            println!("{verb}: login to {} ({})", found.service_provider, found.challenge_id);
        }
        Command::Scan { qr, refuse } => {
            let (device_id, key) = load(&cli.state)?;
            let parts: Vec<&str> = qr.split(':').collect();
            let [scheme, "v1", challenge_id, nonce] = parts.as_slice() else {
                return Err("not a spid-idp QR payload (spid-idp-qr:v1:<challenge>:<nonce>)".into());
            };
            if *scheme != "spid-idp-qr" {
                return Err("not a spid-idp QR payload".into());
            }
            let signature = sign(&key, &approval(challenge_id, nonce, !refuse))?;
            client
                .decide(pb::DecideRequest {
                    device_id,
                    challenge_id: (*challenge_id).to_owned(),
                    approve: !refuse,
                    signature,
                })
                .await
                .map_err(status)?;
            println!("{}: {challenge_id}", if refuse { "refused" } else { "approved" });
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spid-device: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spid-device: {e}");
            ExitCode::FAILURE
        }
    }
}
