//! `asc tenant get|push|validate|diff|history|rollback` and `asc key mint|list|revoke|rotate`:
//! the admin API (`/admin/v1`) of a regional deployment, with a token from the company's
//! identity provider (`--token` or `$ASC_ADMIN_TOKEN`). They replace hand-edited KV entries.

use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

/// Where and as whom.
#[derive(Args)]
pub struct Target {
    /// The regional deployment, e.g. https://eu.asc.example.com.
    #[arg(long, env = "ASC_ADMIN_URL", value_name = "URL")]
    url: String,
    /// An OIDC ID or access token from your identity provider [default: the one `asc login`
    /// saved]. Prefer the environment variable: a flag may be kept in shell history.
    #[arg(
        long,
        env = "ASC_ADMIN_TOKEN",
        value_name = "JWT",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl Target {
    fn token(&self) -> Result<String, String> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let path = crate::login::token_path()?;
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(|_| {
                format!(
                    "no token: run `asc login`, or set ASC_ADMIN_TOKEN (nothing at {})",
                    path.display()
                )
            })
    }
}

/// Prints a tenant's config exactly as stored (the current version, or --version N); its
/// version (the value for --if-match) goes to stderr.
#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    /// Write the config to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
}

/// Stores FILE as the tenant's next config version, if the current version is still
/// --if-match N (or, with --create, if the tenant has none). Every validation error is printed
/// with its path and nothing is stored.
#[derive(Args)]
pub struct PushArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
    file: String,
    /// The version you edited (from `asc tenant get`).
    #[arg(long, value_name = "N", required_unless_present = "create")]
    if_match: Option<u64>,
    /// The tenant has no config yet.
    #[arg(long, conflicts_with = "if_match")]
    create: bool,
}

/// Validates FILE as the tenant's config without storing it.
#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
    file: String,
}

/// Field-by-field changes from version A to version B.
#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
    from: u64,
    to: u64,
}

/// Every version: who stored it, when, and how.
#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
}

/// Stores version --to again as the newest version (byte for byte).
#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    target: Target,
    tenant: String,
    #[arg(long, value_name = "N")]
    to: u64,
    /// The current version.
    #[arg(long, value_name = "N")]
    if_match: u64,
}

/// Mints a key; its secret is printed once (ASC_API_KEY=...) and never stored.
#[derive(Args)]
pub struct MintArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// chat, models, usage (comma-separated) [default: all three].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    scopes: Vec<String>,
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
}

/// Lists the tenant's keys (never secrets).
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// Keys asked for per call; the command follows the pages and prints them all.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    page_size: u16,
}

/// Revokes a key now.
#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_name = "ID")]
    tenant: String,
    key_id: String,
}

/// Mints a replacement with the same scopes and tags; the old key keeps working for
/// --overlap-seconds (default one day).
#[derive(Args)]
pub struct RotateArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, value_name = "ID")]
    tenant: String,
    key_id: String,
    #[arg(long, value_name = "S")]
    overlap_seconds: Option<u64>,
}

struct Answer {
    status: u16,
    etag: Option<String>,
    body: String,
}

fn call(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, String)],
) -> Result<Answer, String> {
    let url = format!("{}/admin/v1{path}", t.url.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent
        .request(method, &url)
        .set("authorization", &format!("Bearer {}", t.token()?));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.set("content-type", "application/json").send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{url}: {e}")),
    };
    let status = resp.status();
    let etag = resp.header("etag").map(|e| e.trim_matches('"').to_string());
    let body = resp.into_string().map_err(|e| format!("{url}: {e}"))?;
    Ok(Answer { status, etag, body })
}

/// The answer's JSON on success; the API's error (with any validation details) otherwise.
fn ok_json(a: Answer) -> Result<Value, String> {
    let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    if (200..300).contains(&a.status) {
        return Ok(v);
    }
    let e = &v["error"];
    let mut msg = format!(
        "{} {}: {}",
        a.status,
        e["code"].as_str().unwrap_or("error"),
        e["message"].as_str().unwrap_or(&a.body)
    );
    if let Some(details) = e["details"].as_array() {
        for d in details {
            msg.push_str(&format!(
                "\n  {}: {}",
                d["path"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    Err(msg)
}

fn print(v: &Value) -> Result<ExitCode, String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(ExitCode::SUCCESS)
}

pub fn tenant_get(a: &GetArgs) -> Result<ExitCode, String> {
    let path = match a.version {
        Some(n) => format!("/tenants/{}/versions/{n}", a.tenant),
        None => format!("/tenants/{}", a.tenant),
    };
    let answer = call(&a.target, "GET", &path, None, &[])?;
    if answer.status != 200 {
        return ok_json(answer).map(|_| ExitCode::FAILURE);
    }
    eprintln!("version: {}", answer.etag.as_deref().unwrap_or("?"));
    match &a.out {
        Some(file) => std::fs::write(file, &answer.body).map_err(|e| format!("{file}: {e}"))?,
        None => print!("{}", answer.body),
    }
    Ok(ExitCode::SUCCESS)
}

fn read(file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("{file}: {e}"))
}

pub fn tenant_push(a: &PushArgs) -> Result<ExitCode, String> {
    let header = match a.if_match {
        Some(n) => ("if-match", format!("\"{n}\"")),
        None => ("if-none-match", "*".to_string()),
    };
    let body = read(&a.file)?;
    let v = ok_json(call(
        &a.target,
        "PUT",
        &format!("/tenants/{}", a.tenant),
        Some(&body),
        &[header],
    )?)?;
    eprintln!("stored version {}", v["version"]["version"]);
    warn_unpublished(&v);
    print(&v)
}

/// Says so when a stored change is not yet in the config store the gateway reads (the reply's
/// `published: false`): the gateway retries on its own, and until then serves the old records.
fn warn_unpublished(v: &Value) {
    if v["published"] == json!(false) {
        eprintln!(
            "warning: stored and recorded, but the gateway's config store refused the write; \
             the gateway retries it on its own, and until then serves the previous records"
        );
    }
}

pub fn tenant_validate(a: &ValidateArgs) -> Result<ExitCode, String> {
    let body = read(&a.file)?;
    print(&ok_json(call(
        &a.target,
        "POST",
        &format!("/tenants/{}/validate", a.tenant),
        Some(&body),
        &[],
    )?)?)
}

pub fn tenant_diff(a: &DiffArgs) -> Result<ExitCode, String> {
    let path = format!("/tenants/{}/diff/{}/{}", a.tenant, a.from, a.to);
    print(&ok_json(call(&a.target, "GET", &path, None, &[])?)?)
}

pub fn tenant_history(a: &HistoryArgs) -> Result<ExitCode, String> {
    print(&ok_json(call(
        &a.target,
        "GET",
        &format!("/tenants/{}/history", a.tenant),
        None,
        &[],
    )?)?)
}

pub fn tenant_rollback(a: &RollbackArgs) -> Result<ExitCode, String> {
    let body = json!({"version": a.to}).to_string();
    let path = format!("/tenants/{}/rollback", a.tenant);
    let header = ("if-match", format!("\"{}\"", a.if_match));
    let v = ok_json(call(
        &a.target,
        "POST",
        &path,
        Some(body.as_bytes()),
        &[header],
    )?)?;
    warn_unpublished(&v);
    print(&v)
}

/// Prints a minted key as shell-friendly lines (as `asc key new` does), then the record.
fn print_minted(v: &Value) -> Result<ExitCode, String> {
    warn_unpublished(v);
    println!("ASC_API_KEY={}", v["secret"].as_str().unwrap_or(""));
    println!("KEY_ID={}", v["key"]["key_id"].as_str().unwrap_or(""));
    eprintln!("The key is shown once: store it now.");
    Ok(ExitCode::SUCCESS)
}

pub fn key_mint(a: &MintArgs) -> Result<ExitCode, String> {
    let mut body = json!({});
    if !a.scopes.is_empty() {
        body["scopes"] = json!(a.scopes);
    }
    if !a.tags.is_empty() {
        body["tags"] = json!(a.tags);
    }
    if let Some(l) = &a.label {
        body["label"] = json!(l);
    }
    let path = format!("/tenants/{}/keys", a.tenant);
    print_minted(&ok_json(call(
        &a.target,
        "POST",
        &path,
        Some(body.to_string().as_bytes()),
        &[],
    )?)?)
}

pub fn key_list(a: &ListArgs) -> Result<ExitCode, String> {
    // The API lists a page at a time (newest first); this prints them all, in that order.
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/tenants/{}/keys?limit={}", a.tenant, a.page_size);
        if let Some(id) = &after {
            path.push_str("&after=");
            path.push_str(id);
        }
        let page = ok_json(call(&a.target, "GET", &path, None, &[])?)?;
        keys.extend(page["keys"].as_array().cloned().unwrap_or_default());
        match page["last_id"].as_str() {
            // A page that does not move on (a misbehaving server) ends the listing.
            Some(last) if page["has_more"] == json!(true) && after.as_deref() != Some(last) => {
                after = Some(last.to_string())
            }
            _ => break,
        }
    }
    print(&json!({"tenant_id": a.tenant, "keys": keys}))
}

pub fn key_revoke(a: &RevokeArgs) -> Result<ExitCode, String> {
    let path = format!("/tenants/{}/keys/{}/revoke", a.tenant, a.key_id);
    let v = ok_json(call(&a.target, "POST", &path, Some(b"{}"), &[])?)?;
    warn_unpublished(&v);
    print(&v)
}

pub fn key_rotate(a: &RotateArgs) -> Result<ExitCode, String> {
    let body = match a.overlap_seconds {
        Some(s) => json!({"overlap_seconds": s}),
        None => json!({}),
    };
    let path = format!("/tenants/{}/keys/{}/rotate", a.tenant, a.key_id);
    print_minted(&ok_json(call(
        &a.target,
        "POST",
        &path,
        Some(body.to_string().as_bytes()),
        &[],
    )?)?)
}
