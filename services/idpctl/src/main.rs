//! `idpctl`: the operators' client. It talks to the services' gRPC APIs,
//! locally by default or on a remote deployment with `--target`.

mod audit;
mod health;
mod identity;
mod notifications;
mod requests;
mod sp;
mod targets;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "idpctl", version, about = "Operate the SPID identity provider")]
struct Cli {
    #[command(flatten)]
    targets: targets::TargetArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The health of every service (gRPC health service); exits 1 unless
    /// all are serving.
    Health,
    /// The audit log: verify, search, extracts, seals.
    #[command(subcommand)]
    Audit(Box<audit::AuditCommand>),
    /// Back-office operators and their roles.
    #[command(subcommand)]
    Operators(requests::OperatorsCommand),
    /// Identity requests: queues, a request with its evidence, decisions.
    #[command(subcommand)]
    Requests(Box<requests::RequestsCommand>),
    /// Identities: look, suspend, restore, revoke, history.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Messages that could not be delivered, and retrying them.
    #[command(subcommand)]
    Notifications(notifications::NotificationsCommand),
    /// The SAML service providers: list, add, remove, refresh.
    #[command(subcommand)]
    Sp(sp::SpCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idpctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let targets = match cli.targets.resolve() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("idpctl: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Health => runtime.block_on(health::run(&targets, cli.json)),
        Command::Audit(command) => runtime.block_on(audit::run(&targets, cli.json, *command)),
        Command::Operators(command) => runtime.block_on(requests::operators(&targets, cli.json, command)),
        Command::Requests(command) => runtime.block_on(requests::requests(&targets, cli.json, *command)),
        Command::Identity(command) => runtime.block_on(identity::run(&targets, cli.json, command)),
        Command::Notifications(command) => runtime.block_on(notifications::run(&targets, cli.json, command)),
        Command::Sp(command) => runtime.block_on(sp::run(&targets, cli.json, command)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("idpctl: {e}");
            ExitCode::FAILURE
        }
    }
}
