//! HTTP over our transports for the probes: `cc_proto::http` (hyper's http1 client over
//! `cc_proto::connect`, bounded in time and size).

pub use cc_proto::http::{MAX_BODY, Response, get, parse_base, request};
