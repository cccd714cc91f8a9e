//! Settings that must never be shown: tokens, passwords, webhook URLs, routing keys.
//!
//! A [`Secret`] prints as `<redacted>` in `Debug`, `Display` and when serialized (so `opslake
//! config` and any log of a configuration show it redacted); only [`Secret::expose`] gives the
//! value, at the one place that uses it. [`KafkaProperties`] does the same for the values of
//! librdkafka properties whose names say they are secret (`sasl.password`, `ssl.key.password`,
//! `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What a secret prints as.
pub const REDACTED: &str = "<redacted>";

/// A value that never prints.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an unset token given as an empty variable).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Extra librdkafka properties (`ingest.kafka`): every value is given to the clients as it is;
/// the values of properties whose names say they are secret print as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// The properties, values included, for the clients.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no property is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The properties with secret values replaced by `<redacted>`: what may be shown.
    #[must_use]
    pub fn shown(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for KafkaProperties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.shown()).finish()
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(s)
    }
}

/// Whether a librdkafka property holds a secret: a password, a secret, a token, a private key
/// or a JAAS or OAUTHBEARER configuration (which embed credentials).
#[must_use]
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "key.pem",
        "oauthbearer.config",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.expose(), "hunter2");
        let read: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(read, s);
    }

    #[test]
    fn secret_kafka_properties_never_print_and_the_rest_do() {
        let p: KafkaProperties = [
            ("sasl.password", "pw1"),
            ("ssl.key.password", "pw2"),
            ("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            ("sasl.oauthbearer.client.secret", "cs"),
            ("sasl.jaas.config", "user=u password=pw3"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.username", "opslake"),
        ]
        .into_iter()
        .collect();
        let debug = format!("{p:?}");
        let json = serde_json::to_string(&p).unwrap();
        for shown in [&debug, &json] {
            for secret in ["pw1", "pw2", "PRIVATE KEY", "\"cs\"", "pw3"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(
                shown.contains("SASL_SSL") && shown.contains("opslake"),
                "{shown}"
            );
        }
        let given: BTreeMap<&str, &str> = p.iter().collect();
        assert_eq!(given["sasl.password"], "pw1");
    }
}
