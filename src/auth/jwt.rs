//! [`JwtAuthenticator`]: the access tokens of the protocol's "Access
//! tokens" section, JWTs verified with one configured key.
//!
//! The key decides the one algorithm accepted: a shared secret means HS256,
//! an RSA public key RS256, an EC P-256 public key ES256. A token whose
//! header names another algorithm is refused before its signature is
//! looked at, so `none` and the classic confusion (an HS256 token "signed"
//! with the server's public key as the secret) never verify. `exp` is
//! required, `nbf` is enforced when present, both without leeway (the
//! contract says "in the future" and "in the past"); `aud` and `iss` are
//! checked when configured.

use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Authenticator, Identity};
use crate::config::{JwtConfig, JwtKey};
use crate::{Error, Result};

/// The shortest HS256 secret accepted: RFC 7518 (3.2) requires a key at
/// least as long as the hash output, 256 bits.
const MIN_SECRET_BYTES: usize = 32;

/// DER of the SPKI algorithm identifiers told apart (OIDs with their tag
/// and length): rsaEncryption, id-ecPublicKey and the P-256 curve.
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Verifies JWT access tokens with one key (see the module docs).
///
/// ```
/// use tickcast::{Authenticator, JwtAuthenticator, JwtConfig, JwtKey};
/// let dir = std::env::temp_dir().join(format!("tickcast-doc-jwt-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("secret");
/// std::fs::write(&file, "a shared secret of at least 32 bytes\n").unwrap();
/// let auth = JwtAuthenticator::load(&JwtConfig {
///     key: JwtKey::SecretFile(file),
///     audience: None,
///     issuer: None,
/// })
/// .unwrap();
/// assert!(auth.describe().starts_with("jwt HS256"));
/// assert!(auth.verify("not.a.token").is_err());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
    /// Where the key came from, for the startup summary.
    source: String,
}

impl std::fmt::Debug for JwtAuthenticator {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("algorithm", &self.algorithm)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The claims tickcast reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    // Options, so that a missing claim is named as such (jsonwebtoken
    // checks presence after this struct is read).
    sub: Option<String>,
    /// A NumericDate: seconds, possibly fractional.
    exp: Option<f64>,
    tickcast: Option<Grants>,
}

/// The `tickcast` claim: what the holder may subscribe to.
#[derive(Debug, Deserialize)]
struct Grants {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    symbols: Vec<String>,
}

impl JwtAuthenticator {
    /// Reads the key file of `config` and prepares the checks.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the file: unreadable, a secret
    /// shorter than 32 bytes, a PEM that is not an RSA or P-256 public key.
    pub fn load(config: &JwtConfig) -> Result<JwtAuthenticator> {
        let (key, algorithm, source) = match &config.key {
            JwtKey::SecretFile(path) => {
                let bytes = read(path, "jwt_secret_file")?;
                let secret = trim_newline(&bytes);
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(invalid(format!(
                        "jwt_secret_file {}: the secret is {} bytes, HS256 needs at least {MIN_SECRET_BYTES}",
                        path.display(),
                        secret.len()
                    )));
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256, path)
            }
            JwtKey::PublicKeyFile(path) => {
                let bytes = read(path, "jwt_public_key_file")?;
                let (key, alg) = public_key(&bytes)
                    .map_err(|e| invalid(format!("jwt_public_key_file {}: {e}", path.display())))?;
                (key, alg, path)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtAuthenticator {
            key,
            validation,
            algorithm,
            source: source.display().to_string(),
        })
    }

    /// The one algorithm tokens must use.
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            _ => "other",
        }
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, token: &str) -> Option<Identity> {
        self.verify(token).ok()
    }

    fn verify(&self, token: &str) -> std::result::Result<Identity, String> {
        // The header first, so that a token of another algorithm (or
        // `none`, which the header type does not even have) is named as
        // such, before any signature check.
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_string())?;
        if header.alg != self.algorithm {
            return Err(format!("token algorithm is not {}", self.algorithm()));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| self.reason(e.kind()))?;
        let claims = data.claims;
        let sub = claims.sub.filter(|s| !s.is_empty());
        let Some(sub) = sub else {
            return Err("token has no 'sub' claim".into());
        };
        let Some(exp) = claims.exp.filter(|e| e.is_finite() && *e >= 0.0) else {
            return Err("token has no 'exp' claim".into());
        };
        // 1e12 s is year 33658: a bound that keeps the conversion in range.
        let mut id =
            Identity::new(sub).expires_at(UNIX_EPOCH + Duration::from_secs_f64(exp.min(1e12)));
        if let Some(grants) = claims.tickcast {
            id = id
                .entitled_to_groups(grants.groups)
                .entitled_to_symbols(grants.symbols);
        }
        Ok(id)
    }

    fn describe(&self) -> String {
        format!("jwt {} (key {})", self.algorithm(), self.source)
    }
}

impl JwtAuthenticator {
    /// The one-line reason for a refused token.
    fn reason(&self, kind: &ErrorKind) -> String {
        match kind {
            ErrorKind::ExpiredSignature => "token expired".into(),
            ErrorKind::ImmatureSignature => "token not yet valid (nbf)".into(),
            ErrorKind::InvalidSignature => "bad token signature".into(),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                format!("token algorithm is not {}", self.algorithm())
            }
            ErrorKind::InvalidAudience => "token audience not accepted".into(),
            ErrorKind::InvalidIssuer => "token issuer not accepted".into(),
            ErrorKind::MissingRequiredClaim(c) => format!("token has no '{c}' claim"),
            ErrorKind::InvalidClaimFormat(c) => format!("token claim '{c}' is malformed"),
            ErrorKind::Json(_) => "token claims are malformed".into(),
            _ => "malformed token".into(),
        }
    }
}

/// The decoding key and algorithm of a PEM public key: PKCS#1 RSA, or an
/// SPKI holding an RSA or an EC P-256 key.
fn public_key(pem_bytes: &[u8]) -> std::result::Result<(DecodingKey, Algorithm), String> {
    let block = pem::parse(pem_bytes).map_err(|e| format!("not a PEM file: {e}"))?;
    match block.tag() {
        "RSA PUBLIC KEY" => Ok((rsa(pem_bytes)?, Algorithm::RS256)),
        "PUBLIC KEY" => {
            // The algorithm identifier opens the SPKI: look only there.
            let head = &block.contents()[..block.contents().len().min(32)];
            if contains(head, OID_RSA) {
                Ok((rsa(pem_bytes)?, Algorithm::RS256))
            } else if contains(head, OID_EC) {
                if !contains(head, OID_P256) {
                    return Err("an EC key on a curve other than P-256 (ES256 needs P-256)".into());
                }
                let key = DecodingKey::from_ec_pem(pem_bytes)
                    .map_err(|e| format!("not a valid EC public key: {e}"))?;
                Ok((key, Algorithm::ES256))
            } else {
                Err("a public key that is neither RSA nor EC".into())
            }
        }
        tag if tag.contains("PRIVATE KEY") => {
            Err("a private key: give the server the public key only".into())
        }
        tag => Err(format!("a PEM '{tag}' block, expected 'PUBLIC KEY'")),
    }
}

fn rsa(pem_bytes: &[u8]) -> std::result::Result<DecodingKey, String> {
    DecodingKey::from_rsa_pem(pem_bytes).map_err(|e| format!("not a valid RSA public key: {e}"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| invalid(format!("{setting} {}: {e}", path.display())))
}

/// The secret without one trailing newline (`echo secret > file`).
fn trim_newline(bytes: &[u8]) -> &[u8] {
    let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(message)
}
