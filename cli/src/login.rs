//! `asc login`: the OAuth 2.0 device authorization grant (RFC 8628) against the company's OIDC
//! provider, found through its discovery document (OIDC Discovery 1.0). The token is saved for
//! the admin commands (`$XDG_CONFIG_HOME/asc/admin-token`, or `~/.config/...`, mode 0600) and
//! never printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

/// Signs in with your identity provider (device code flow) and saves the token for
/// `asc tenant ...` and `asc key ...`.
#[derive(Args)]
pub struct LoginArgs {
    /// The issuer, e.g. https://login.example.com (its /.well-known/openid-configuration is read).
    #[arg(long, env = "ASC_OIDC_ISSUER", value_name = "URL")]
    issuer: String,
    /// The OAuth client registered for the asc CLI (a public client with the device grant).
    #[arg(long, env = "ASC_OIDC_CLIENT_ID", value_name = "ID")]
    client_id: String,
    #[arg(
        long,
        default_value = "openid profile email groups",
        value_name = "SCOPES"
    )]
    scope: String,
    /// Which token to keep: the ID token (OIDC) or the access token.
    #[arg(long, value_parser = ["id", "access"], default_value = "id")]
    keep: String,
}

/// Where the token is kept.
pub fn token_path() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".config"),
    };
    Ok(base.join("asc").join("admin-token"))
}

fn get_json(url: &str) -> Result<Value, String> {
    ureq::get(url)
        .call()
        .map_err(|e| format!("{url}: {e}"))?
        .into_json()
        .map_err(|e| format!("{url}: {e}"))
}

/// POSTs a form; error answers (400 with an OAuth error) are returned as JSON too.
fn post_form(url: &str, form: &[(&str, &str)]) -> Result<Value, String> {
    let resp = match ureq::post(url).send_form(form) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{url}: {e}")),
    };
    resp.into_json().map_err(|e| format!("{url}: {e}"))
}

fn text<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get(name).and_then(Value::as_str)
}

pub fn login(args: &LoginArgs) -> Result<ExitCode, String> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        args.issuer.trim_end_matches('/')
    );
    let config = get_json(&discovery)?;
    let device_endpoint = text(&config, "device_authorization_endpoint")
        .ok_or("the provider offers no device authorization endpoint (RFC 8628)")?;
    let token_endpoint =
        text(&config, "token_endpoint").ok_or("the provider has no token endpoint")?;
    let start = post_form(
        device_endpoint,
        &[("client_id", &args.client_id), ("scope", &args.scope)],
    )?;
    let device_code = text(&start, "device_code")
        .ok_or_else(|| format!("device authorization failed: {start}"))?;
    let user_code = text(&start, "user_code").unwrap_or("");
    let uri = text(&start, "verification_uri_complete")
        .or_else(|| text(&start, "verification_uri"))
        .unwrap_or("");
    eprintln!("Open {uri} and enter the code {user_code} to sign in.");
    let mut interval = start.get("interval").and_then(Value::as_u64).unwrap_or(5);
    let expires = start
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    let deadline = Instant::now() + Duration::from_secs(expires);
    loop {
        if Instant::now() >= deadline {
            return Err("the code expired before sign-in finished; run asc login again".into());
        }
        std::thread::sleep(Duration::from_secs(interval));
        let answer = post_form(
            token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", &args.client_id),
            ],
        )?;
        match text(&answer, "error") {
            Some("authorization_pending") => continue,
            // RFC 8628 §3.5: add 5 seconds to the interval.
            Some("slow_down") => interval += 5,
            Some(other) => return Err(format!("sign-in failed: {other}")),
            None => {
                let field = if args.keep == "access" {
                    "access_token"
                } else {
                    "id_token"
                };
                let token = text(&answer, field)
                    .ok_or_else(|| format!("the provider returned no {field}"))?;
                let path = token_path()?;
                save(&path, token)?;
                eprintln!("Signed in; token saved to {}.", path.display());
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

fn save(path: &std::path::Path, token: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(token.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
