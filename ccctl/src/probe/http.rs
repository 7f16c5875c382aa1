//! HTTP over our transports for the probes: `cc_proto::http` (hyper's http1 client over
//! `cc_proto::connect`, bounded in time and size).

pub use cc_proto::http::{MAX_BODY, Response, get, parse_base, request};

use std::time::Duration;

/// Where a pod's HTTP endpoint (`/status`, `/metrics`, `/attestation`) is read: directly at an
/// address (`--api`/`--metrics`, a port-forward, this machine), or through the Kubernetes API
/// server's pod proxy (`GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`, RBAC
/// `pods/proxy` get) with the user's kubeconfig.
#[derive(Clone)]
pub enum Endpoint {
    Direct(cc_proto::Address),
    PodProxy {
        client: kube::Client,
        namespace: String,
        pod: String,
        port: u16,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Direct(a) => write!(f, "{a}"),
            Endpoint::PodProxy {
                namespace,
                pod,
                port,
                ..
            } => write!(f, "pod {namespace}/{pod}:{port} (API server proxy)"),
        }
    }
}

impl Endpoint {
    /// GET `path`; the answer's status and body, within `timeout`. Through the pod proxy, an
    /// answer that is not 2xx is an error in the API server's words.
    pub async fn get(&self, path: &str, timeout: Duration) -> Result<Response, String> {
        match self {
            Endpoint::Direct(a) => get(a, path, timeout).await,
            Endpoint::PodProxy {
                client,
                namespace,
                pod,
                port,
            } => {
                let uri = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}");
                let req = ::http::Request::get(uri)
                    .body(Vec::new())
                    .map_err(|e| format!("{self}{path}: {e}"))?;
                // Bytes, not text: `/attestation` answers a CBOR document. At most MAX_BODY.
                let read = async {
                    use futures::AsyncReadExt as _;
                    let stream = client
                        .request_stream(req)
                        .await
                        .map_err(|e| super::k8s::describe_error(&e))?;
                    let mut body = Vec::new();
                    Box::pin(stream)
                        .take(MAX_BODY as u64 + 1)
                        .read_to_end(&mut body)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(body)
                };
                match tokio::time::timeout(timeout, read).await {
                    Err(_) => Err(format!(
                        "{self}{path}: no answer through the API server within {}",
                        crate::output::duration_short(timeout.as_secs())
                    )),
                    Ok(Err(e)) => Err(format!("{self}{path}: {e}")),
                    Ok(Ok(body)) if body.len() > MAX_BODY => {
                        Err(format!("{self}{path}: answer larger than {MAX_BODY} bytes"))
                    }
                    Ok(Ok(body)) => Ok(Response { status: 200, body }),
                }
            }
        }
    }
}
