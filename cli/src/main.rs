#![allow(clippy::print_stdout)] // A command-line tool: stdout is its interface.

//! `asc`: operator commands that need the core's rules but no gateway. `asc --help` and
//! `asc <command> --help` describe them; the flags are declared next to the code that uses them.

mod admin;
mod audit;
mod evidence;
mod key;
mod login;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ASC command line: tenant configs and API keys through a deployment's admin API, local key
/// minting and config checks, the audit trail's verifier and queries, and evidence packs for
/// auditors.
#[derive(Parser)]
#[command(name = "asc", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Tenant configs.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Signs in with your identity provider (OIDC device code flow) for the admin commands.
    Login(login::LoginArgs),
    /// The audit trail's signing keys, its verifier and queries, for compliance teams.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Evidence for auditors: a signed pack for a period, its check, the residency report.
    #[command(subcommand)]
    Evidence(evidence::Command),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Mints a key locally and prints its KV record (for `scripts/seed` and local state).
    New(key::NewArgs),
    Mint(admin::MintArgs),
    List(admin::ListArgs),
    Revoke(admin::RevokeArgs),
    Rotate(admin::RotateArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    Check(tenant::CheckArgs),
    Get(admin::GetArgs),
    Push(admin::PushArgs),
    Validate(admin::ValidateArgs),
    Diff(admin::DiffArgs),
    History(admin::HistoryArgs),
    Rollback(admin::RollbackArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version go to stdout with exit 0; usage errors to stderr with exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Key(KeyCommand::New(args)) => key::key_new(args),
        Command::Key(KeyCommand::Mint(args)) => admin::key_mint(&args),
        Command::Key(KeyCommand::List(args)) => admin::key_list(&args),
        Command::Key(KeyCommand::Revoke(args)) => admin::key_revoke(&args),
        Command::Key(KeyCommand::Rotate(args)) => admin::key_rotate(&args),
        Command::Tenant(TenantCommand::Check(args)) => tenant::tenant_check(&args),
        Command::Tenant(TenantCommand::Get(args)) => admin::tenant_get(&args),
        Command::Tenant(TenantCommand::Push(args)) => admin::tenant_push(&args),
        Command::Tenant(TenantCommand::Validate(args)) => admin::tenant_validate(&args),
        Command::Tenant(TenantCommand::Diff(args)) => admin::tenant_diff(&args),
        Command::Tenant(TenantCommand::History(args)) => admin::tenant_history(&args),
        Command::Tenant(TenantCommand::Rollback(args)) => admin::tenant_rollback(&args),
        Command::Audit(command) => audit::run(command),
        Command::Evidence(command) => evidence::run(command),
        Command::Login(args) => login::login(&args),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("asc: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_definitions_are_consistent() {
        // clap's own checks (duplicate flags, bad defaults), which otherwise only run on use.
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
