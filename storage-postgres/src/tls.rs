//! TLS to Postgres: libpq's `sslmode` and `sslrootcert`, with rustls.
//!
//! Managed Postgres services require TLS, and the modes worth using there check the
//! server's certificate. tokio-postgres knows only `disable`, `prefer` and `require` and
//! leaves verification to the connector, so the two options are taken out of the
//! connection string here ([`split`]) and become the rustls configuration of the
//! connector ([`connector`]); tokio-postgres gets the rest, with the mode it knows.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use storage_core::{Result, StorageError};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`: whether the connection is encrypted and what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain (libpq's default). No certificate check.
    #[default]
    Prefer,
    /// TLS or no connection. The certificate is checked against `sslrootcert` when one is
    /// given (as libpq does), otherwise not at all.
    Require,
    /// TLS, and the server's certificate must be signed by a CA in `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must be issued for the host connected to.
    VerifyFull,
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCert {
    /// A PEM file of CA certificates (`sslrootcert=/path/ca.pem`).
    File(PathBuf),
    /// The public web roots (`sslrootcert=system`), for services with publicly signed
    /// certificates.
    System,
}

/// The TLS part of a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<RootCert>,
}

/// Splits `sslmode` and `sslrootcert` off a connection string (URL or libpq key-value
/// text): the string for tokio-postgres, with the `sslmode` it understands, and the TLS
/// options. Unknown `sslmode` values are `InvalidInput`.
///
/// Hand-written because tokio-postgres rejects `verify-ca`, `verify-full` and
/// `sslrootcert` and offers no hook; the grammar (a URL query, or `key = value` with
/// single-quoted values) is libpq's, and only these two keys are touched.
pub(crate) fn split(conn: &str) -> Result<(String, TlsOptions)> {
    let (rest, pairs) = if conn.contains("://") {
        split_url(conn)
    } else {
        split_key_values(conn)?
    };
    let mut opts = TlsOptions::default();
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => {
                opts.mode = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(StorageError::invalid_input(format!(
                            "sslmode={other:?} is not one of disable, prefer, require, \
                             verify-ca, verify-full"
                        )))
                    }
                }
            }
            _ => {
                opts.root_cert = Some(if value == "system" {
                    RootCert::System
                } else {
                    RootCert::File(PathBuf::from(value))
                })
            }
        }
    }
    let mode = match opts.mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    };
    let rest = if conn.contains("://") {
        let sep = if rest.contains('?') { '&' } else { '?' };
        format!("{rest}{sep}sslmode={mode}")
    } else {
        format!("{rest} sslmode={mode}")
    };
    Ok((rest, opts))
}

fn is_tls_key(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

/// A URL's query without the TLS keys, and their (percent-decoded) values.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if is_tls_key(key) {
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            taken.push((key.to_owned(), value));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

/// Key-value text without the TLS keys (every other pair rewritten single-quoted, which
/// means the same to libpq and tokio-postgres), and their values.
fn split_key_values(text: &str) -> Result<(String, Vec<(String, String)>)> {
    let malformed = || StorageError::invalid_input("the Postgres connection string is malformed");
    let mut chars = text.chars().peekable();
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(malformed());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next().ok_or_else(malformed)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or_else(malformed)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if is_tls_key(&key) {
            taken.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), taken))
}

/// The rustls connector for these options.
pub(crate) fn connector(opts: &TlsOptions) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::backend("no TLS protocol version is available", e))?;
    let roots = match (&opts.root_cert, opts.mode) {
        (Some(root), _) => Some(load_roots(root)?),
        (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(StorageError::invalid_input(
                "sslmode=verify-ca and verify-full check the server's certificate against \
                 sslrootcert: add sslrootcert=PATH (the CA certificate file your provider \
                 gives), or sslrootcert=system for publicly signed certificates",
            ))
        }
        (None, _) => None,
    };
    let chain = roots
        .map(|roots| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| {
                    StorageError::invalid_input(format!("sslrootcert cannot be used: {e}"))
                })
        })
        .transpose()?;
    let verifier: Arc<dyn ServerCertVerifier> = match chain {
        Some(chain) if opts.mode == SslMode::VerifyFull => chain,
        chain => Arc::new(Lenient { chain, provider }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn load_roots(root: &RootCert) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        RootCert::File(path) => {
            let unreadable = |reason: String| {
                StorageError::invalid_input(format!("sslrootcert {}: {reason}", path.display()))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| unreadable(format!("cannot be read ({e})")))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| unreadable(format!("is not a PEM certificate file ({e})")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(unreadable("holds no usable CA certificate".into()));
            }
        }
    }
    Ok(store)
}

/// The checks rustls' own verifier does not offer: `require` without a root certificate
/// (`chain: None`: any certificate, encrypted but not authenticated) and `verify-ca` (the
/// chain must lead to a trusted CA; the name is not checked). Handshake signatures are
/// always checked, so the session is keyed to the certificate the server presented.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a TLS handshake failed, in words for the user, when `e` is one.
pub(crate) fn handshake_failure(e: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        // tokio-rustls wraps the rustls error in an io::Error, whose `source()` skips it.
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|e| e as &(dyn std::error::Error + 'static));
        let rustls = inner
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| s.downcast_ref::<rustls::Error>());
        if let Some(r) = rustls {
            return Some(match r {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                    "the server's certificate is not signed by a CA in sslrootcert".into()
                }
                rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ) => "the server's certificate is not issued for the host in the URL \
                      (sslmode=verify-full checks the name)"
                    .into(),
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ) => "the server's certificate has expired".into(),
                other => format!("TLS failed: {other}"),
            });
        }
        source = s.source();
    }
    let text = e.to_string();
    text.contains("server does not support TLS")
        .then(|| "the server does not accept TLS connections (sslmode asks for TLS)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_only_the_tls_keys_and_get_a_mode_tokio_postgres_knows() {
        let (rest, opts) =
            split("postgres://u:p@h:5/db?application_name=a&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem")
                .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@h:5/db?application_name=a&sslmode=require"
        );
        assert_eq!(opts.mode, SslMode::VerifyFull);
        assert_eq!(opts.root_cert, Some(RootCert::File("/tmp/ca x.pem".into())));
        let (rest, opts) = split("postgres://h/db").unwrap();
        assert_eq!(rest, "postgres://h/db?sslmode=prefer");
        assert_eq!(opts, TlsOptions::default());
        let (_, opts) = split("postgresql://h/db?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(opts.mode, SslMode::VerifyCa);
        assert_eq!(opts.root_cert, Some(RootCert::System));
        assert!(split("postgres://h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn key_value_text_keeps_every_other_value_exactly() {
        let (rest, opts) = split(
            "host=h user=u password='a \\'secret\\' \\\\ b' sslmode = verify-ca sslrootcert='/a b/ca.pem'",
        )
        .unwrap();
        assert_eq!(opts.mode, SslMode::VerifyCa);
        assert_eq!(opts.root_cert, Some(RootCert::File("/a b/ca.pem".into())));
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a 'secret' \\ b"[..]));
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert!(split("host=h password='unterminated").is_err());
    }

    #[test]
    fn verifying_modes_need_a_root_certificate() {
        let opts = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: None,
        };
        let err = connector(&opts).err().expect("refused");
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        let missing = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::File("/nonexistent/ca.pem".into())),
        };
        let err = connector(&missing).err().expect("refused");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            let opts = TlsOptions {
                mode,
                root_cert: None,
            };
            connector(&opts).unwrap();
        }
        let system = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert::System),
        };
        connector(&system).unwrap();
    }
}
