//! Cluster membership: the shared secret every process of a cluster is started with
//! (`--secret-file`), and the HMAC-SHA256 proofs of the connection handshake (tcp.rs).
//!
//! Each side of a connection sends a fresh random nonce in its `Hello`; then each sends a
//! `Proof`, the HMAC under the secret of: a version tag, its direction (`dial` or
//! `accept`), the cluster id it claims (if any), the configuration, the actor ids it claims
//! to host, the dialler's nonce and the acceptor's nonce. The other side recomputes it from
//! what the `Hello` claimed and compares in constant time. A recorded handshake is useless
//! (the other side's nonce is new every time), and a proof cannot be reflected back to the
//! process that made it (the direction differs). This proves membership only: frames after
//! the handshake are neither encrypted nor individually authenticated.

use crate::error::UsageError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of each side's handshake nonce.
pub const NONCE_BYTES: usize = 32;
/// Fewest bytes a secret file holds (after trailing whitespace is dropped).
pub const SECRET_BYTES_MIN: usize = 16;
/// Most bytes a secret file may hold.
const SECRET_BYTES_MAX: u64 = 4096;

/// The cluster's shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Secret {
    /// A secret from its bytes (at least [`SECRET_BYTES_MIN`]).
    pub fn new(bytes: Vec<u8>) -> anyhow::Result<Secret> {
        if bytes.len() < SECRET_BYTES_MIN {
            anyhow::bail!(
                "the secret is {} bytes; it must be at least {SECRET_BYTES_MIN} (e.g. \
                 `openssl rand -hex 32`)",
                bytes.len()
            );
        }
        Ok(Secret(bytes))
    }

    /// Reads `--secret-file`: its bytes without trailing whitespace (so a file written by
    /// `openssl rand -hex 32` works). Refuses a file that is missing, unreadable, empty, too
    /// short, too long, or (on Unix) readable or writable by group or others.
    pub fn from_file(path: &Path) -> anyhow::Result<Secret> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            anyhow::anyhow!(UsageError::InvalidConfig(format!(
                "cannot read --secret-file {shown}: {e}"
            )))
        })?;
        if !meta.is_file() {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "--secret-file {shown} is not a regular file"
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(UsageError::InvalidConfig(format!(
                    "--secret-file {shown} is accessible by group or others \
                     (mode {:o}); restrict it: chmod 600 {shown}",
                    mode & 0o777
                )));
            }
        }
        if meta.len() > SECRET_BYTES_MAX {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "--secret-file {shown} holds {} bytes, more than the \
                 {SECRET_BYTES_MAX} a secret may have",
                meta.len()
            )));
        }
        let mut bytes = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(UsageError::InvalidConfig(format!(
                "cannot read --secret-file {shown}: {e}"
            )))
        })?;
        while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
            bytes.pop();
        }
        if bytes.is_empty() {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "--secret-file {shown} is empty; put the cluster's secret in it \
                 (e.g. `openssl rand -hex 32 > {shown}`)"
            )));
        }
        Secret::new(bytes).map_err(|e| {
            anyhow::anyhow!(UsageError::InvalidConfig(format!(
                "--secret-file {shown}: {e}"
            )))
        })
    }
}

/// Which end of a connection a proof speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    Dialer,
    Acceptor,
}

impl PeerRole {
    pub fn other(self) -> PeerRole {
        match self {
            PeerRole::Dialer => PeerRole::Acceptor,
            PeerRole::Acceptor => PeerRole::Dialer,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            PeerRole::Dialer => b"dial",
            PeerRole::Acceptor => b"accept",
        }
    }
}

/// What one side of a handshake claims, which its proof covers.
pub struct Claim<'a> {
    pub role: PeerRole,
    pub cluster_id: Option<&'a str>,
    pub config: &'a str,
    pub hosts: &'a [usize],
}

/// A fresh nonce from the operating system's random source.
pub fn nonce() -> [u8; NONCE_BYTES] {
    use rand::RngCore;
    let mut n = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn keyed(
    secret: &Secret,
    claim: &Claim<'_>,
    dialer_nonce: &[u8],
    acceptor_nonce: &[u8],
) -> HmacSha256 {
    // Every field is length-prefixed, so no two different claims encode alike.
    fn field(mac: &mut HmacSha256, bytes: &[u8]) {
        mac.update(&(bytes.len() as u64).to_le_bytes());
        mac.update(bytes);
    }
    let mut mac = HmacSha256::new_from_slice(&secret.0).expect("HMAC takes a key of any length");
    field(&mut mac, b"insync-peer-auth-v1");
    field(&mut mac, claim.role.label());
    match claim.cluster_id {
        Some(id) => {
            mac.update(&[1]);
            field(&mut mac, id.as_bytes());
        }
        None => mac.update(&[0]),
    }
    field(&mut mac, claim.config.as_bytes());
    mac.update(&(claim.hosts.len() as u64).to_le_bytes());
    for &h in claim.hosts {
        mac.update(&(h as u64).to_le_bytes());
    }
    field(&mut mac, dialer_nonce);
    field(&mut mac, acceptor_nonce);
    mac
}

/// The proof of `claim`, for the handshake with these nonces.
pub fn prove(
    secret: &Secret,
    claim: &Claim<'_>,
    dialer_nonce: &[u8],
    acceptor_nonce: &[u8],
) -> Vec<u8> {
    keyed(secret, claim, dialer_nonce, acceptor_nonce)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Whether `proof` proves `claim` for these nonces (compared in constant time).
pub fn verify(
    secret: &Secret,
    claim: &Claim<'_>,
    dialer_nonce: &[u8],
    acceptor_nonce: &[u8],
    proof: &[u8],
) -> bool {
    keyed(secret, claim, dialer_nonce, acceptor_nonce)
        .verify_slice(proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec()).expect("secret")
    }

    #[test]
    fn a_proof_is_bound_to_everything_it_claims() {
        let s = secret("0123456789abcdef0123");
        let claim = Claim {
            role: PeerRole::Dialer,
            cluster_id: Some("c"),
            config: "cfg",
            hosts: &[4],
        };
        let (d, a) = ([1u8; 32], [2u8; 32]);
        let proof = prove(&s, &claim, &d, &a);
        assert!(verify(&s, &claim, &d, &a, &proof));
        assert!(!verify(
            &secret("another secret, 20b"),
            &claim,
            &d,
            &a,
            &proof
        ));
        assert!(!verify(&s, &claim, &a, &d, &proof), "nonces swapped");
        assert!(!verify(&s, &claim, &d, &[3u8; 32], &proof), "another nonce");
        let reflected = Claim {
            role: PeerRole::Acceptor,
            ..claim
        };
        assert!(!verify(&s, &reflected, &d, &a, &proof), "other direction");
        let posing = Claim {
            hosts: &[3],
            ..claim
        };
        assert!(!verify(&s, &posing, &d, &a, &proof), "other hosts");
        let other_cluster = Claim {
            cluster_id: Some("d"),
            ..claim
        };
        assert!(!verify(&s, &other_cluster, &d, &a, &proof), "other cluster");
        let no_cluster = Claim {
            cluster_id: None,
            ..claim
        };
        assert!(!verify(&s, &no_cluster, &d, &a, &proof), "no cluster id");
        assert!(!verify(&s, &claim, &d, &a, &proof[..16]), "truncated proof");
    }

    #[test]
    fn secret_files_that_are_empty_short_or_open_to_others_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
            }
            #[cfg(not(unix))]
            let _ = mode;
            path
        };
        let good = write("good", b"0123456789abcdef0123456789abcdef\n", 0o600);
        assert_eq!(
            Secret::from_file(&good).expect("good"),
            secret("0123456789abcdef0123456789abcdef")
        );
        let err = Secret::from_file(&write("empty", b"\n", 0o600)).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = Secret::from_file(&write("short", b"abc", 0o600)).expect_err("short");
        assert!(err.to_string().contains("at least 16"), "{err}");
        let err = Secret::from_file(&dir.path().join("missing")).expect_err("missing");
        assert!(
            err.to_string().contains("cannot read --secret-file"),
            "{err}"
        );
        #[cfg(unix)]
        {
            let open = write("open", b"0123456789abcdef0123", 0o644);
            let err = Secret::from_file(&open).expect_err("group-readable");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        assert_eq!(
            format!("{:?}", secret("0123456789abcdef")),
            "Secret(<16 bytes>)"
        );
    }
}
