//! The audit bucket: any S3-compatible store (AWS S3, R2's S3 API, MinIO, Ceph, ...), written
//! with path-style `PUT`s signed by smithy-rs's SigV4 signer (`aws-sigv4`, the signer the AWS
//! SDK for Rust uses). Only request building is here; the component sends it with Spin's
//! outbound HTTP, the upload test with a native client.

use std::time::{Duration, SystemTime};

use asc_core::audit::drive::ObjectSink;
use asc_core::audit::ObjectPut;
use asc_core::host::HostError;
use asc_core::secret::Secret;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use url::Url;

use crate::platform::{Outbound, Platform};

/// How long an upload may take before the shipment is retried on a later flush.
pub const UPLOAD_TIMEOUT_MS: u64 = 30_000;

/// Which kind of SigV4 request: S3 signs the payload hash into an `x-amz-content-sha256`
/// header, encodes the path once and never normalizes it; other services do neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service<'a> {
    S3,
    Other(&'a str),
}

/// Access keys for SigV4.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// Signs a request; returns the headers to add (`authorization`, `x-amz-date`, and for S3
/// `x-amz-content-sha256`). All of `req`'s headers are signed.
pub fn sign_headers(
    req: &Outbound,
    credentials: &Credentials,
    region: &str,
    service: Service<'_>,
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_string(),
        None,
        None,
        "asc",
    )
    .into();
    let mut settings = SigningSettings::default();
    let name = match service {
        Service::S3 => {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            "s3"
        }
        Service::Other(name) => name,
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(name)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        &req.method,
        req.url.as_str(),
        req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect())
}

/// The bucket that receives the audit trail.
pub struct Bucket {
    /// `https://s3.eu-central-1.amazonaws.com`, `https://<account>.eu.r2.cloudflarestorage.com`,
    /// `http://127.0.0.1:9000` (tests)...
    pub endpoint: Url,
    pub name: String,
    /// The SigV4 region (`auto` for R2).
    pub region: String,
    pub credentials: Credentials,
}

/// Object keys the trail writes are plain (`audit/<stream>/batches/<n>-<m>.jsonl.gz`); refuse
/// anything that would need encoding rather than sign a path the store reads differently.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('/')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
}

impl Bucket {
    /// The path-style URL of `key`.
    pub fn object_url(&self, key: &str) -> Result<String, String> {
        if !plain_key(key) {
            return Err(format!("object key {key:?} is not a plain path"));
        }
        Ok(format!(
            "{}/{}/{key}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.name
        ))
    }

    fn request(
        &self,
        method: &str,
        key: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now_ms: u64,
    ) -> Result<Outbound, String> {
        let mut req = Outbound {
            method: method.to_string(),
            url: self.object_url(key)?,
            headers,
            body,
            timeout_ms: UPLOAD_TIMEOUT_MS,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms);
        let signed = sign_headers(&req, &self.credentials, &self.region, Service::S3, at)?;
        req.headers.extend(signed);
        Ok(req)
    }

    /// A signed `PutObject` of `object`.
    pub fn put_object(&self, object: &ObjectPut, now_ms: u64) -> Result<Outbound, String> {
        let headers = vec![("content-type".to_string(), object.content_type.to_string())];
        self.request("PUT", &object.key, headers, object.bytes.clone(), now_ms)
    }

    /// A signed `GetObject` of `key` (the tests and the admin plane's audit search read with it).
    pub fn get_object(&self, key: &str, now_ms: u64) -> Result<Outbound, String> {
        self.request("GET", key, Vec::new(), Vec::new(), now_ms)
    }

    /// A signed `ListObjectsV2` of the keys under `prefix`, after `start_after`, at most
    /// `max_keys`, in ascending order (the admin plane's audit search).
    pub fn list_objects(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: u32,
        now_ms: u64,
    ) -> Result<Outbound, String> {
        if !plain_key(prefix.trim_end_matches('/')) {
            return Err(format!("prefix {prefix:?} is not a plain path"));
        }
        let mut url = Url::parse(&format!(
            "{}/{}",
            self.endpoint.as_str().trim_end_matches('/'),
            self.name
        ))
        .map_err(|e| e.to_string())?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("list-type", "2");
            q.append_pair("max-keys", &max_keys.to_string());
            q.append_pair("prefix", prefix);
            if let Some(after) = start_after {
                q.append_pair("start-after", after);
            }
        }
        let mut req = Outbound {
            method: "GET".into(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: UPLOAD_TIMEOUT_MS,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms);
        let signed = sign_headers(&req, &self.credentials, &self.region, Service::S3, at)?;
        req.headers.extend(signed);
        Ok(req)
    }
}

/// The object keys of a `ListObjectsV2` result (`<Contents><Key>...</Key>`). Keys the trail
/// could not have written (anything but plain paths, so nothing XML would escape) are left out.
pub fn listed_keys(xml: &str) -> Vec<String> {
    xml.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k))
        .filter(|k| plain_key(k))
        .map(str::to_string)
        .collect()
}

/// Uploads through the platform's outbound HTTP.
pub struct BucketSink<'p, P> {
    pub platform: &'p P,
    pub bucket: &'p Bucket,
}

impl<P: Platform> ObjectSink for BucketSink<'_, P> {
    async fn put(&self, object: &ObjectPut) -> Result<(), HostError> {
        let req = self
            .bucket
            .put_object(object, self.platform.now_ms())
            .map_err(HostError::Store)?;
        let resp = self.platform.send(req).await?;
        if !(200..300).contains(&resp.status) {
            return Err(HostError::Store(format!(
                "audit bucket answered {} to PUT {}",
                resp.status, object.key
            )));
        }
        Ok(())
    }
}
