//! `vsock://CID:PORT`, `unix:///path` and `tcp://HOST:PORT`: the one way every listener and
//! connector in the chamber is told where to go.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// AF_VSOCK. `cid` 3 is the parent, `u32::MAX` is "any".
    Vsock { cid: u32, port: u32 },
    /// A unix domain socket path (absolute).
    Unix(PathBuf),
    /// TCP. `host` is a name or an IP literal; IPv6 literals are written in brackets.
    Tcp { host: String, port: u16 },
}

/// Why a string is not an [`Address`]. Messages are written for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("'{0}' has no scheme: expected vsock://CID:PORT, unix:///path or tcp://HOST:PORT")]
    MissingScheme(String),
    #[error("'{input}' uses unknown scheme '{scheme}': expected vsock, unix or tcp")]
    UnknownScheme { input: String, scheme: String },
    #[error("'{0}': missing port (expected {1})")]
    MissingPort(String, &'static str),
    #[error("'{0}': CID must be a number")]
    BadCid(String),
    #[error("'{0}': port must be a number from {1}")]
    BadPort(String, &'static str),
    #[error("'{0}': missing host")]
    MissingHost(String),
    #[error("'{0}': unix socket path must be absolute (unix:///path)")]
    RelativePath(String),
    #[error("'{0}': unexpected path or query after the port")]
    TrailingGarbage(String),
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(AddressError::MissingScheme(input.to_owned()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "vsock" => parse_vsock(input, rest),
            "unix" => {
                if rest.is_empty() || !rest.starts_with('/') {
                    return Err(AddressError::RelativePath(input.to_owned()));
                }
                Ok(Address::Unix(PathBuf::from(rest)))
            }
            "tcp" => parse_tcp(input, rest),
            _ => Err(AddressError::UnknownScheme {
                input: input.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

fn parse_vsock(input: &str, rest: &str) -> Result<Address, AddressError> {
    if rest.contains('/') || rest.contains('?') {
        return Err(AddressError::TrailingGarbage(input.to_owned()));
    }
    let Some((cid, port)) = rest.split_once(':') else {
        return Err(AddressError::MissingPort(
            input.to_owned(),
            "vsock://CID:PORT",
        ));
    };
    if port.is_empty() {
        return Err(AddressError::MissingPort(
            input.to_owned(),
            "vsock://CID:PORT",
        ));
    }
    let cid = cid
        .parse::<u32>()
        .map_err(|_| AddressError::BadCid(input.to_owned()))?;
    let port = port
        .parse::<u32>()
        .map_err(|_| AddressError::BadPort(input.to_owned(), "0 to 4294967295"))?;
    Ok(Address::Vsock { cid, port })
}

fn parse_tcp(input: &str, rest: &str) -> Result<Address, AddressError> {
    if rest.contains('/') || rest.contains('?') {
        return Err(AddressError::TrailingGarbage(input.to_owned()));
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        // [v6]:port
        let Some((host, tail)) = after.split_once(']') else {
            return Err(AddressError::MissingHost(input.to_owned()));
        };
        let Some(port) = tail.strip_prefix(':') else {
            return Err(AddressError::MissingPort(
                input.to_owned(),
                "tcp://HOST:PORT",
            ));
        };
        (host, port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            _ => {
                return Err(AddressError::MissingPort(
                    input.to_owned(),
                    "tcp://HOST:PORT",
                ));
            }
        }
    };
    if host.is_empty() {
        return Err(AddressError::MissingHost(input.to_owned()));
    }
    if port.is_empty() {
        return Err(AddressError::MissingPort(
            input.to_owned(),
            "tcp://HOST:PORT",
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| AddressError::BadPort(input.to_owned(), "0 to 65535"))?;
    Ok(Address::Tcp {
        host: host.to_owned(),
        port,
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Address {
    /// `host:port` for TCP addresses (the form resolvers and allowlists use).
    pub fn tcp_host_port(&self) -> Option<(&str, u16)> {
        match self {
            Address::Tcp { host, port } => Some((host.as_str(), *port)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        s.parse::<Address>().unwrap_err().to_string()
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "vsock://3:7000".parse::<Address>().unwrap(),
            Address::Vsock { cid: 3, port: 7000 }
        );
        assert_eq!(
            "unix:///run/cc/log.sock".parse::<Address>().unwrap(),
            Address::Unix("/run/cc/log.sock".into())
        );
        assert_eq!(
            "tcp://0.0.0.0:9000".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "0.0.0.0".into(),
                port: 9000
            }
        );
        assert_eq!(
            "tcp://[::1]:3000".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "::1".into(),
                port: 3000
            }
        );
        assert_eq!(
            "TCP://kms.eu-west-1.amazonaws.com:443"
                .parse::<Address>()
                .unwrap(),
            Address::Tcp {
                host: "kms.eu-west-1.amazonaws.com".into(),
                port: 443
            }
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "vsock://3:7000",
            "vsock://4294967295:8000",
            "unix:///tmp/a b.sock",
            "tcp://127.0.0.1:1",
            "tcp://[::1]:3000",
            "tcp://localhost:65535",
        ] {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            err("vsock://3").contains("missing port"),
            "{}",
            err("vsock://3")
        );
        assert!(err("vsock://3:").contains("missing port"));
        assert!(err("vsock://x:1").contains("CID must be a number"));
        assert!(err("vsock://-1:1").contains("CID must be a number"));
        assert!(err("vsock://3:seven").contains("port must be a number"));
        assert!(err("tcp://localhost").contains("missing port"));
        assert!(err("tcp://:80").contains("missing host"));
        assert!(err("tcp://h:99999").contains("port must be a number from 0 to 65535"));
        assert!(err("tcp://::1:80").contains("missing port"));
        assert!(err("tcp://h:80/path").contains("unexpected path"));
        assert!(err("unix://relative.sock").contains("must be absolute"));
        assert!(err("unix://").contains("must be absolute"));
        assert!(err("http://x:1").contains("unknown scheme 'http'"));
        assert!(err("localhost:80").contains("has no scheme"));
        assert!(err("").contains("has no scheme"));
        // Every message quotes the input so the operator sees what was read.
        assert!(err("vsock://x:1").contains("'vsock://x:1'"));
    }

    #[test]
    fn serde_uses_the_string_form() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct C {
            a: Address,
        }
        let c: C = serde_json_like("vsock://3:8001");
        assert_eq!(c.a, Address::Vsock { cid: 3, port: 8001 });

        fn serde_json_like(s: &str) -> C {
            use serde::Deserialize;
            use serde::de::value::{Error, MapDeserializer};
            C::deserialize(MapDeserializer::<_, Error>::new([("a", s)].into_iter())).unwrap()
        }
    }
}
