//! The command line itself: help, usage errors and their exit codes, and the `asc key new`
//! output that scripts and the e2e harness parse.

use std::process::{Command, Output};

fn asc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_asc"))
        .args(args)
        .env("KEY_HASH_SECRET", "s".repeat(32))
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_commands_and_their_flags() {
    for args in [&["--help"][..], &["help"], &["-h"]] {
        let out = asc(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("Usage: asc <COMMAND>"), "{text}");
        for command in ["key", "tenant", "audit"] {
            assert!(text.contains(&format!("\n  {command} ")), "{text}");
        }
    }
    let out = asc(&["audit", "query", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Usage: asc audit query [OPTIONS] --keys <FILE> <DIR>"),
        "{text}"
    );
    for flag in [
        "--tenant",
        "--key-id",
        "--model",
        "--from",
        "--to",
        "--format",
        "--allow-unverified",
        "--now",
        "--heartbeat-ms",
        "--grace-ms",
        "2026-11-01T00:00:00+02:00",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
    for args in [
        &["key", "new", "--help"][..],
        &["tenant", "check", "--help"],
        &["audit", "keygen", "--help"],
        &["audit", "verify", "--help"],
        &["audit", "help", "query"],
    ] {
        let out = asc(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Usage: asc "), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["key", "new", "--tenant", "acme", "--tenat", "x"],
            "unexpected argument '--tenat'",
        ),
        (
            &["audit", "verify", "bucket", "--keys", "k.json", "--jsn"],
            "unexpected argument '--jsn'",
        ),
        (
            &["key", "new", "--tenant"],
            "a value is required for '--tenant <ID>'",
        ),
        (
            &["key", "new"],
            "required arguments were not provided:\n  --tenant <ID>",
        ),
        (
            &["key", "new", "--tenant", "Bad Id"],
            "invalid value 'Bad Id' for '--tenant <ID>': must be 1-64 of [a-z0-9_-]",
        ),
        (
            &["key", "new", "--tenant", "acme", "--scopes", "chat,admin"],
            "unknown scope \"admin\"",
        ),
        (
            &["audit", "query", "b", "--keys", "k", "--from", "2026-13-01"],
            "invalid value '2026-13-01' for '--from <TIME>'",
        ),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    ];
    for (args, message) in cases {
        let out = asc(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // Errors found after parsing keep the `asc:` prefix and exit 2 as before.
    let out = asc(&["tenant", "check", "/nonexistent/tenant.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("asc: /nonexistent/tenant.json: "));
}

#[test]
fn key_new_prints_the_lines_scripts_parse() {
    let out = asc(&[
        "key",
        "new",
        "--tenant",
        "acme",
        "--scopes",
        "chat, models",
        "--tags",
        "bu:x,,team:y",
        "--label",
        "a label",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ASC_API_KEY="), "{text}");
    let key_id = lines[1].strip_prefix("KEY_ID=k_").expect("KEY_ID");
    assert_eq!(key_id.len(), 12);
    let kv_name = lines[2].strip_prefix("KV_NAME=key:").expect("KV_NAME");
    assert!(kv_name.starts_with(key_id), "{text}");
    let record: serde_json::Value =
        serde_json::from_str(lines[3].strip_prefix("KV_VALUE=").expect("KV_VALUE")).expect("json");
    assert_eq!(record["tenant_id"], "acme");
    assert_eq!(record["scopes"], serde_json::json!(["chat", "models"]));
    assert_eq!(record["tags"], serde_json::json!(["bu:x", "team:y"]));
    assert_eq!(record["label"], "a label");
    assert_eq!(record["key_id"], format!("k_{key_id}"));

    let out = asc(&["key", "new", "--tenant", "acme"]);
    let text = stdout(&out);
    let record: serde_json::Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("KV_VALUE="))
            .expect("KV_VALUE"),
    )
    .expect("json");
    assert_eq!(
        record["scopes"],
        serde_json::json!(["chat", "models", "usage"])
    );
}
