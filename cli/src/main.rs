#![allow(clippy::print_stdout)] // A command-line tool: stdout is its interface.

//! `asc`: operator commands that need the core's rules but no gateway.
//!
//!   asc key new --tenant ID [--scopes chat,models,usage] [--tags bu:x,..] [--label TEXT] [--key-id ID]
//!       Mints an API key. Reads the deployment's hashing secret from $KEY_HASH_SECRET.
//!       Prints shell-friendly lines: ASC_API_KEY=..., KV_NAME=key:<hash>, and writes the KV
//!       record (JSON) to the file named by --record-out (or prints it as KV_VALUE=...).
//!   asc tenant check FILE [--region ID]
//!       Validates a tenant config; with --region, also checks every endpoint against that
//!       region's egress allowlist. Prints every problem with its path; exits 1 if any.
//!   asc audit keygen | verify | query
//!       The audit trail's signing keys and its verifier for compliance teams; see
//!       `asc audit help` (the text of [`audit::USAGE`]).

mod args;
mod audit;
mod key;
mod tenant;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["key", "new", rest @ ..] => key::key_new(rest),
        ["tenant", "check", file, rest @ ..] => tenant::tenant_check(file, rest),
        ["audit", rest @ ..] => audit::run(rest),
        _ => Err(usage()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("asc: {msg}");
            ExitCode::from(2)
        }
    }
}

fn usage() -> String {
    format!(
        "usage: asc key new --tenant ID [--scopes chat,models,usage] [--tags bu:x,..] [--label TEXT] [--key-id ID] [--record-out FILE]\n       asc tenant check FILE [--region ID]\n{}",
        audit::USAGE
    )
}
