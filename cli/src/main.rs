#![allow(clippy::print_stdout)] // A command-line tool: stdout is its interface.

//! `asc`: operator commands that need the core's rules but no gateway. `asc --help` and
//! `asc <command> --help` describe them; the flags are declared next to the code that uses them.

mod audit;
mod evidence;
mod key;
mod tenant;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ASC command line: mint API keys, validate tenant configs, verify and query the audit trail,
/// and build evidence packs for auditors.
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
    /// The audit trail's signing keys, its verifier and queries, for compliance teams.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Evidence for auditors: a signed pack for a period, its check, the residency report.
    #[command(subcommand)]
    Evidence(evidence::Command),
}

#[derive(Subcommand)]
enum KeyCommand {
    New(key::NewArgs),
}

#[derive(Subcommand)]
enum TenantCommand {
    Check(tenant::CheckArgs),
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
        Command::Tenant(TenantCommand::Check(args)) => tenant::tenant_check(&args),
        Command::Audit(command) => audit::run(command),
        Command::Evidence(command) => evidence::run(command),
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
