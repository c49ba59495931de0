//! `PublicUrl`: the gateway's public origin, the OAuth issuer and the root of every absolute URL
//! we publish.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use url::Url;

/// The public origin of the gateway: `http(s)://host[:port]`, with no path, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicUrl {
    origin: String,
    host_and_port: String,
    https: bool,
}

impl PublicUrl {
    /// Parses and checks a public origin.
    pub fn parse(input: &str) -> Result<Self, String> {
        let url = Url::parse(input).map_err(|error| format!("not a URL ({error})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with https:// (or http:// for local use)".into());
        }
        let Some(host) = url.host_str() else {
            return Err("must name a host".into());
        };
        if url.path() != "/" {
            return Err("must not have a path: the issuer is the bare origin".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host_and_port = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            origin: format!("{}://{host_and_port}", url.scheme()),
            host_and_port,
            https: url.scheme() == "https",
        })
    }

    /// `http://<listen>`: the default for a gateway reached directly on its listener.
    pub(super) fn of_listener(listen: SocketAddr) -> Self {
        Self {
            origin: format!("http://{listen}"),
            host_and_port: listen.to_string(),
            https: false,
        }
    }

    /// The origin as published, with no trailing slash: the OAuth `issuer`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// An absolute URL for `path` (which starts with `/`) under this origin.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Whether the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        let host = self
            .host_and_port
            .rsplit_once(':')
            .map_or(self.host_and_port.as_str(), |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<IpAddr>()
                .is_ok_and(|address| address.is_loopback())
    }

    /// Whether the origin is served over HTTPS (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The `host[:port]` a client puts in the `Host` header to reach us.
    pub fn host_and_port(&self) -> &str {
        &self.host_and_port
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PublicUrl> for String {
    fn from(value: PublicUrl) -> Self {
        value.origin
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.origin)
    }
}
