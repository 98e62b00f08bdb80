//! The SigV4 signing used for audit uploads reproduces AWS's published signatures (sources in
//! `tests/fixtures/README.md`), through the same function the component calls.

use std::time::{Duration, SystemTime};

use asc_core::audit::ObjectPut;
use asc_core::secret::Secret;
use asc_spin::platform::Outbound;
use asc_spin::s3::{sign_headers, Bucket, Credentials, Service};

fn at(unix_s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s)
}

/// 2015-08-30T12:36:00Z, the test suite's time.
const SUITE_TIME: u64 = 1_440_938_160;
/// 2013-05-24T00:00:00Z, the S3 examples' time.
const S3_TIME: u64 = 1_369_353_600;

fn suite_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    }
}

fn s3_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    }
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Outbound {
    Outbound {
        method: method.into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        timeout_ms: 1_000,
    }
}

fn authorization(signed: &[(String, String)]) -> &str {
    signed
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .expect("an authorization header")
}

fn suite(method: &str, url: &str) -> String {
    let req = request(method, url, &[("host", "example.amazonaws.com")], b"");
    let signed = sign_headers(
        &req,
        &suite_credentials(),
        "us-east-1",
        Service::Other("service"),
        at(SUITE_TIME),
    )
    .expect("signs");
    authorization(&signed).to_string()
}

#[test]
fn aws_test_suite_get_vanilla() {
    assert_eq!(
        suite("GET", "https://example.amazonaws.com/"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

#[test]
fn aws_test_suite_post_vanilla() {
    assert!(suite("POST", "https://example.amazonaws.com/")
        .ends_with("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

#[test]
fn aws_test_suite_get_vanilla_query_order_key_case() {
    assert!(suite(
        "GET",
        "https://example.amazonaws.com/?Param2=value2&Param1=value1"
    )
    .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

#[test]
fn s3_docs_get_object_example() {
    let req = request(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        &[("range", "bytes=0-9")],
        b"",
    );
    let signed = sign_headers(
        &req,
        &s3_credentials(),
        "us-east-1",
        Service::S3,
        at(S3_TIME),
    )
    .expect("signs");
    assert_eq!(
        authorization(&signed),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
         Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    assert!(signed.iter().any(|(n, v)| n == "x-amz-content-sha256"
        && v == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

#[test]
fn s3_docs_put_object_example() {
    let req = request(
        "PUT",
        "https://examplebucket.s3.amazonaws.com/test%24file.text",
        &[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        b"Welcome to Amazon S3.",
    );
    let signed = sign_headers(
        &req,
        &s3_credentials(),
        "us-east-1",
        Service::S3,
        at(S3_TIME),
    )
    .expect("signs");
    assert_eq!(
        authorization(&signed),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
         Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    );
    // One flipped body byte is a different signature.
    let mut tampered = req.clone();
    tampered.body = b"Welcome to Amazon S4.".to_vec();
    let other = sign_headers(
        &tampered,
        &s3_credentials(),
        "us-east-1",
        Service::S3,
        at(S3_TIME),
    )
    .expect("signs");
    assert_ne!(authorization(&other), authorization(&signed));
}

#[test]
fn audit_uploads_are_path_style_signed_puts() {
    let bucket = Bucket {
        endpoint: url::Url::parse("http://127.0.0.1:9300").expect("url"),
        name: "asc-audit-local".into(),
        region: "us-east-1".into(),
        credentials: s3_credentials(),
    };
    let object = ObjectPut {
        key: "audit/audit-local/digests/00000000000000000001.json".into(),
        bytes: b"{}".to_vec(),
        content_type: "application/json",
    };
    let req = bucket.put_object(&object, S3_TIME * 1000).expect("builds");
    assert_eq!(req.method, "PUT");
    assert_eq!(
        req.url,
        "http://127.0.0.1:9300/asc-audit-local/audit/audit-local/digests/00000000000000000001.json"
    );
    let names: Vec<&str> = req.headers.iter().map(|(n, _)| n.as_str()).collect();
    for needed in [
        "content-type",
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
    ] {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
    assert!(authorization(&req.headers).contains("SignedHeaders=content-type;host;"));
    assert!(bucket.object_url("../escape").is_err());
    assert!(bucket.object_url("a//b").is_err());
    assert!(bucket.object_url("a b").is_err());
}
