//! `pods/proxy` as the API server serves it: `GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`
//! is forwarded to the pod's port and the pod's answer (status, body, content type) comes back
//! unchanged. A port nobody listens on is a 503 `Status` whose message says
//! `error trying to reach service: dial tcp …: connect: connection refused`, as the API server
//! says it; a pod that does not exist is a 404 `Status`. The pod's ports are given per
//! (namespace, pod, port) in [`super::Objects::proxies`] (the demo: its enclave's API and
//! metrics on loopback).

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Shared, named, not_found};
use crate::apiserver::exec_status as status;

/// Longest the double waits for the pod's answer (the API server's default is longer; the
/// double serves loopback).
const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn pod_proxy(
    State(s): State<Shared>,
    Path((ns, name_port, rest)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (name, port) = match name_port.rsplit_once(':') {
        Some((n, p)) => match p.parse::<u16>() {
            Ok(p) => (n.to_owned(), p),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("invalid port in \"{name_port}\""),
                );
            }
        },
        // Without a port the API server dials the pod's IP on port 80.
        None => (name_port.clone(), 80),
    };
    let target = {
        let o = s.get().await;
        if named(&o.pods, Some(&ns), &name, |p| &p.metadata).is_none() {
            return not_found("pods", &name);
        }
        o.proxies.get(&(ns.clone(), name.clone(), port)).cloned()
    };
    let refused = || {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!(
                "error trying to reach service: dial tcp 10.0.0.1:{port}: connect: connection refused"
            ),
        )
    };
    let Some(addr) = target else {
        return refused();
    };
    // The query goes through as the API server passes it (`/attestation?nonce=…`).
    let path = match &query {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    match cc_proto::http::get(&addr, &path, TIMEOUT).await {
        Ok(r) => {
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let kind = if rest.starts_with("metrics") {
                "text/plain; version=0.0.4; charset=utf-8"
            } else if r.body.first() == Some(&b'{') {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (code, [(header::CONTENT_TYPE, kind)], r.body).into_response()
        }
        Err(_) => refused(),
    }
}
