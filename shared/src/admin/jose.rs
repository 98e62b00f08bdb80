//! JWS compact tokens (RFC 7515) and the public JWKs that verify them (RFC 7517, 7518 §6, 8037),
//! for the three algorithms the admin plane accepts: RS256, ES256 and EdDSA (Ed25519). Anything
//! else (`none`, HS*, PS*, other curves) is refused before a key is looked at, and a key verifies
//! only the algorithm of its own type, so a public key can never be used as an HMAC secret.
//!
//! The signature checks are RustCrypto's (`rsa`, `p256`) and `ed25519-dalek`; this file only
//! parses and dispatches.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// An algorithm the admin plane accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// The `alg` header value (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

/// Why a token or key was refused. Messages name what is wrong, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseError(pub String);

impl std::fmt::Display for JoseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(message: impl Into<String>) -> JoseError {
    JoseError(message.into())
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        err(format!(
            "the token's {what} is not base64url without padding"
        ))
    })
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Jws {
    pub alg: Alg,
    pub kid: Option<String>,
    /// The decoded payload (the claims, for a JWT).
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Tokens larger than this are refused unread (an IdP's tokens are a few KB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl Jws {
    /// Splits a compact JWS and reads its protected header. Refuses an algorithm outside
    /// `allowed`, and any `crit` header (RFC 7515 §4.1.11: unknown critical extensions must be
    /// refused, and we understand none).
    pub fn parse(token: &str, allowed: &[Alg]) -> Result<Jws, JoseError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(err("the token is too large"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err(
                "the token is not a compact JWS (three dot-separated parts)",
            ));
        };
        let header: Value = serde_json::from_slice(&b64(h, "header")?)
            .map_err(|_| err("the token's header is not JSON"))?;
        let Some(header) = header.as_object() else {
            return Err(err("the token's header is not a JSON object"));
        };
        if header.contains_key("crit") {
            return Err(err("the token has critical header extensions (crit)"));
        }
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = Alg::parse(alg_name)
            .filter(|a| allowed.contains(a))
            .ok_or_else(|| err(format!("algorithm {alg_name:?} is not accepted")))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(err("the token's kid is not a string")),
        };
        Ok(Jws {
            alg,
            kid,
            payload: b64(p, "payload")?,
            signing_input: format!("{h}.{p}"),
            signature: b64(s, "signature")?,
        })
    }

    /// Checks the signature with `key`, which must be of the token's algorithm.
    pub fn verify(&self, key: &PublicJwk) -> Result<(), JoseError> {
        if !key.allows(self.alg) {
            return Err(err("the key does not verify this algorithm"));
        }
        let msg = self.signing_input.as_bytes();
        let bad = || err("the token's signature does not verify");
        match (&key.key, self.alg) {
            (KeyMaterial::Rsa(public), Alg::Rs256) => {
                use rsa::signature::Verifier as _;
                let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public.clone());
                let sig = rsa::pkcs1v15::Signature::try_from(self.signature.as_slice())
                    .map_err(|_| bad())?;
                verifier.verify(msg, &sig).map_err(|_| bad())
            }
            (KeyMaterial::P256(public), Alg::Es256) => {
                use p256::ecdsa::signature::Verifier as _;
                // RFC 7518 §3.4: R || S, 32 octets each (not DER).
                if self.signature.len() != 64 {
                    return Err(bad());
                }
                let sig = p256::ecdsa::Signature::from_slice(&self.signature).map_err(|_| bad())?;
                public.verify(msg, &sig).map_err(|_| bad())
            }
            (KeyMaterial::Ed25519(public), Alg::EdDsa) => {
                let bytes: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
                let sig = ed25519_dalek::Signature::from_bytes(&bytes);
                public.verify_strict(msg, &sig).map_err(|_| bad())
            }
            _ => Err(err("the key does not verify this algorithm")),
        }
    }
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A public signing key from a JWKS.
#[derive(Debug, Clone)]
pub struct PublicJwk {
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it names one: then it verifies only that algorithm.
    pub alg: Option<String>,
    key: KeyMaterial,
}

/// RSA moduli below this are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl PublicJwk {
    fn allows(&self, alg: Alg) -> bool {
        let of_type = matches!(
            (&self.key, alg),
            (KeyMaterial::Rsa(_), Alg::Rs256)
                | (KeyMaterial::P256(_), Alg::Es256)
                | (KeyMaterial::Ed25519(_), Alg::EdDsa)
        );
        of_type && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }

    /// Reads one JWK. `Ok(None)`: a key we do not use (encryption keys, other key types or
    /// curves), which a JWKS may well hold beside ours.
    pub fn from_value(value: &Value) -> Result<Option<PublicJwk>, JoseError> {
        let raw: RawJwk =
            serde_json::from_value(value.clone()).map_err(|_| err("a JWK is malformed"))?;
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, JoseError> {
            let text = v
                .as_deref()
                .ok_or_else(|| err(format!("a {} JWK lacks {name}", raw.kty)))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| err(format!("a JWK's {name} is not base64url")))
        };
        let key = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => {
                let n = rsa::BigUint::from_bytes_be(&field(&raw.n, "n")?);
                let e = rsa::BigUint::from_bytes_be(&field(&raw.e, "e")?);
                let key = rsa::RsaPublicKey::new(n, e)
                    .map_err(|_| err("an RSA JWK is not a valid public key"))?;
                if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
                    return Err(err("an RSA JWK is shorter than 2048 bits"));
                }
                KeyMaterial::Rsa(key)
            }
            ("EC", Some("P-256")) => {
                let x = field(&raw.x, "x")?;
                let y = field(&raw.y, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(err("a P-256 JWK's coordinates are not 32 octets"));
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| err("a P-256 JWK is not a point on the curve"))?;
                KeyMaterial::P256(key)
            }
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = field(&raw.x, "x")?
                    .as_slice()
                    .try_into()
                    .map_err(|_| err("an Ed25519 JWK's x is not 32 octets"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| err("an Ed25519 JWK is not a valid public key"))?;
                KeyMaterial::Ed25519(key)
            }
            _ => return Ok(None),
        };
        Ok(Some(PublicJwk {
            kid: raw.kid,
            alg: raw.alg,
            key,
        }))
    }
}

/// The usable signing keys of a JWKS document (`{"keys": [...]}`); keys we cannot use are
/// skipped, a malformed key of a type we use is an error.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<PublicJwk>, JoseError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| err("the JWKS is not JSON"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| err("the JWKS has no keys array"))?;
    let mut out = Vec::new();
    for key in keys {
        if let Some(k) = PublicJwk::from_value(key)? {
            out.push(k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[Alg] = &[Alg::Rs256, Alg::Es256, Alg::EdDsa];

    // RFC 7515 appendix A.2: the RSA key and the RS256 JWS of its example.
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_JWS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    // RFC 7515 appendix A.3: the P-256 key and the ES256 JWS.
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    // RFC 8037 appendix A.2 and A.4: the Ed25519 key and the EdDSA JWS.
    const A4_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const A4_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn rsa_key() -> PublicJwk {
        PublicJwk::from_value(&json!({"kty": "RSA", "n": A2_N, "e": "AQAB"}))
            .expect("valid")
            .expect("usable")
    }
    fn ec_key() -> PublicJwk {
        PublicJwk::from_value(&json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y}))
            .expect("valid")
            .expect("usable")
    }
    fn ed_key() -> PublicJwk {
        PublicJwk::from_value(&json!({"kty": "OKP", "crv": "Ed25519", "x": A4_X}))
            .expect("valid")
            .expect("usable")
    }

    /// Flips one bit of the part `index` (0 header, 1 payload, 2 signature), re-encoded.
    fn tamper(token: &str, index: usize) -> String {
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut bytes = URL_SAFE_NO_PAD.decode(&parts[index]).expect("b64");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        parts[index] = URL_SAFE_NO_PAD.encode(bytes);
        parts.join(".")
    }

    #[test]
    fn the_rfc_examples_verify() {
        let rs = Jws::parse(A2_JWS, ALL).expect("parses");
        assert_eq!(rs.alg, Alg::Rs256);
        rs.verify(&rsa_key()).expect("RFC 7515 A.2 verifies");
        let payload: Value = serde_json::from_slice(&rs.payload).expect("claims");
        assert_eq!(payload["iss"], "joe");
        assert_eq!(payload["exp"], 1300819380);

        Jws::parse(A3_JWS, ALL)
            .expect("parses")
            .verify(&ec_key())
            .expect("RFC 7515 A.3 verifies");
        let ed = Jws::parse(A4_JWS, ALL).expect("parses");
        ed.verify(&ed_key()).expect("RFC 8037 A.4 verifies");
        assert_eq!(ed.payload, b"Example of Ed25519 signing");
    }

    #[test]
    fn tampered_tokens_fail() {
        for (token, key) in [(A2_JWS, rsa_key()), (A3_JWS, ec_key()), (A4_JWS, ed_key())] {
            for part in [1, 2] {
                let bad = tamper(token, part);
                let jws = Jws::parse(&bad, ALL).expect("still parses");
                assert!(jws.verify(&key).is_err(), "part {part} of {token}");
            }
        }
    }

    #[test]
    fn a_key_verifies_only_its_own_algorithm() {
        let rs = Jws::parse(A2_JWS, ALL).expect("parses");
        assert!(rs.verify(&ec_key()).is_err());
        assert!(rs.verify(&ed_key()).is_err());
        // A JWK that names another algorithm is not used for this one.
        let pinned =
            PublicJwk::from_value(&json!({"kty": "RSA", "n": A2_N, "e": "AQAB", "alg": "RS384"}))
                .expect("valid")
                .expect("usable");
        assert!(rs.verify(&pinned).is_err());
    }

    #[test]
    fn algorithms_outside_the_allowlist_are_refused_before_any_key() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"RS384"}"#,
            r#"{"alg":"PS256"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let token = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            let e = Jws::parse(&token, ALL).expect_err(header);
            assert!(e.0.contains("not accepted"), "{header}: {e}");
        }
        // An issuer narrowed to ES256 refuses an RS256 token.
        assert!(Jws::parse(A2_JWS, &[Alg::Es256]).is_err());
        // RFC 7515 §4.1.11: unknown critical extensions are refused.
        let crit = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#);
        assert!(Jws::parse(&format!("{crit}.{payload}.AA"), ALL).is_err());
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        for t in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "e30.e30",
            "!!.e30.AA",
            "e30.e30.AA",
        ] {
            assert!(Jws::parse(t, ALL).is_err(), "{t:?}");
        }
        assert!(Jws::parse(&"a".repeat(MAX_TOKEN_BYTES + 1), ALL).is_err());
    }

    #[test]
    fn jwks_skips_keys_it_does_not_use_and_refuses_weak_ones() {
        let doc = json!({"keys": [
            {"kty": "RSA", "n": A2_N, "e": "AQAB", "kid": "r", "use": "sig"},
            {"kty": "RSA", "n": A2_N, "e": "AQAB", "kid": "enc", "use": "enc"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": A4_X, "kid": "e"},
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).expect("parses");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("r"), Some("e")]);
        // 512-bit RSA.
        let short = URL_SAFE_NO_PAD.encode([0xC5u8; 64]);
        assert!(PublicJwk::from_value(&json!({"kty": "RSA", "n": short, "e": "AQAB"})).is_err());
        // A P-256 "key" that is not on the curve.
        let off = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(
            PublicJwk::from_value(&json!({"kty": "EC", "crv": "P-256", "x": off, "y": off}))
                .is_err()
        );
        assert!(parse_jwks(b"{}").is_err());
    }
}
