//! HTTP API (port 9000) and metrics (port 3000).
//!
//! `/upcheck` 200 always; `/healthcheck` 200 only when unsealed, else 503 with the state;
//! `/status` the `cc_proto::status::Status` JSON; `/attestation` a fresh document;
//! `/api/v1/eth2/sign/{pubkey}` and `/api/v1/eth2/publicKeys` as Web3Signer spells them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cc_proto::status::{Health, SealState};
use serde::Deserialize;

use crate::chamber::Chamber;
use crate::keys::decode_hex_prefixed;
use crate::metrics::StatusLabel;

type App = Arc<Chamber>;

pub fn router(chamber: App) -> axum::Router {
    axum::Router::new()
        .route("/upcheck", get(|| async { "OK" }))
        .route("/healthcheck", get(healthcheck))
        .route("/status", get(status))
        .route("/attestation", get(attestation))
        .route("/api/v1/eth2/publicKeys", get(public_keys))
        .route("/api/v1/eth2/sign/{pubkey}", post(sign))
        .with_state(chamber)
}

/// For connections beyond the API's cap: the probes only, anything else 503.
pub fn probe_router(chamber: App) -> axum::Router {
    axum::Router::new()
        .route("/upcheck", get(|| async { "OK" }))
        .route("/healthcheck", get(healthcheck))
        .fallback(|| async {
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "connection limit reached: only /upcheck and /healthcheck are answered",
            )
        })
        .with_state(chamber)
}

pub fn metrics_router(chamber: App) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(c): State<App>| async move {
                c.sync_log_metrics();
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    c.metrics.encode(),
                )
            }),
        )
        .with_state(chamber)
}

fn problem(code: StatusCode, reason: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": reason.into() }))).into_response()
}

async fn healthcheck(State(c): State<App>) -> Response {
    let (state, reason) = c.state();
    let body = Json(Health { state, reason });
    if state == SealState::Unsealed {
        (StatusCode::OK, body).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn status(State(c): State<App>) -> Response {
    Json(c.status()).into_response()
}

async fn attestation(State(c): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    // Hex-decode an optional query field; `Err` names the field.
    let field = |name: &'static str| -> Result<Option<Vec<u8>>, &'static str> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => decode_hex_prefixed(v).map(Some).ok_or(name),
        }
    };
    let (nonce, user_data) = match (field("nonce"), field("user_data")) {
        (Ok(n), Ok(u)) => (n, u),
        (Err(name), _) | (_, Err(name)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("'{name}' must be hex (at most 1024 bytes)"),
            );
        }
    };
    let Some(nsm) = c.nsm.clone() else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "no attestation: the NSM could not be initialised (see /status)",
        );
    };
    match nsm.attest(user_data.as_deref(), nonce.as_deref(), None) {
        Ok(doc) => ([(header::CONTENT_TYPE, "application/cbor")], doc).into_response(),
        Err(crate::nsm::NsmError::Request(m)) => problem(StatusCode::BAD_REQUEST, m),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn public_keys(State(c): State<App>) -> Response {
    let (state, _) = c.state();
    if state != SealState::Unsealed {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("signer is {}", state.as_str()),
        );
    }
    Json(c.public_keys()).into_response()
}

#[derive(Deserialize)]
struct SignBody {
    #[serde(rename = "signingRoot")]
    signing_root: String,
}

async fn sign(State(c): State<App>, Path(pubkey): Path<String>, body: Bytes) -> Response {
    let t = Instant::now();
    let resp = sign_inner(&c, &pubkey, &body);
    let code = resp.status().as_u16().to_string();
    // Request data reaches the log only validated (a public key is `0x` + 96 hex digits) and
    // quoted: anyone who can reach the API could otherwise write lines ("panicked at",
    // "FATAL:", CR/LF, ESC) into the pod log that doctor's signatures would take for real.
    let shown = if decode_hex_prefixed(&pubkey).is_some_and(|b| b.len() == 48) {
        pubkey.chars().take(20).collect::<String>()
    } else {
        "(invalid)".to_owned()
    };
    tracing::info!(pubkey = ?shown, status = %code,
        duration_us = t.elapsed().as_micros() as u64, "sign");
    c.metrics
        .signing_requests
        .get_or_create(&StatusLabel { status: code })
        .inc();
    c.metrics
        .signing_duration
        .observe(t.elapsed().as_secs_f64());
    resp
}

fn sign_inner(c: &Chamber, pubkey: &str, body: &[u8]) -> Response {
    let (state, _) = c.state();
    if state != SealState::Unsealed {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("signer is {}: cannot sign", state.as_str()),
        );
    }
    let Some(pk) = decode_hex_prefixed(pubkey).and_then(|b| <[u8; 48]>::try_from(b).ok()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "public key must be 0x followed by 96 hex digits",
        );
    };
    let body: SignBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("body must be JSON with \"signingRoot\": \"0x<64 hex>\" ({e})"),
            );
        }
    };
    let Some(root) = decode_hex_prefixed(&body.signing_root).filter(|r| r.len() == 32) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "signingRoot must be 0x followed by 64 hex digits",
        );
    };
    match c.sign(&pk, &root) {
        Some(sig) => Json(serde_json::json!({ "signature": format!("0x{}", hex::encode(sig)) }))
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no key for public key {pubkey}"),
        ),
    }
}
