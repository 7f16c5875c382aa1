//! An HTTP server that answers like the Kubernetes API server for the few endpoints `ccctl`
//! reads (pods, pod logs, nodes, DaemonSets, events), with objects built from k8s-openapi
//! types, on loopback; plus a kubeconfig pointing at it. The real `kube` client talks to it:
//! the tests' Kubernetes API, and `ccctl demo`'s cluster view.

mod exec;
mod proxy;

pub(crate) use exec::status as exec_status;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, Event, Node, ObjectReference, Pod, PodSpec,
    PodStatus, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub daemonsets: Vec<DaemonSet>,
    pub events: Vec<Event>,
    /// Pod log text by (namespace, pod name); a pod without an entry has an empty log.
    pub logs: std::collections::BTreeMap<(String, String), String>,
    /// Pod logs read from a file at each request (the demo's live log), by (namespace, pod).
    pub log_files: std::collections::BTreeMap<(String, String), std::path::PathBuf>,
    /// Answer pod log requests 403 (RBAC without `pods/log`).
    pub logs_forbidden: bool,
    /// Serve `pods/exec` (WebSocket, `v5`/`v4.channel.k8s.io`) by running the command on this
    /// machine; otherwise 403. The demo's pod is this machine.
    pub exec_local: bool,
    /// The exec'd command's environment on top of this process's (the pod's: `PATH`,
    /// `CCCTL_*`).
    pub exec_env: Vec<(String, String)>,
    /// `pods/proxy`: where each (namespace, pod, port) answers (the demo: its enclave's API
    /// and metrics). A port without an entry is refused, as a pod port nobody listens on.
    pub proxies: std::collections::BTreeMap<(String, String, u16), cc_proto::Address>,
}

pub struct ApiServer {
    pub port: u16,
    pub objects: Arc<Mutex<Objects>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn not_found(kind: &str, name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404
        })),
    )
        .into_response()
}

fn named<'a, T>(
    items: &'a [T],
    ns: Option<&str>,
    name: &str,
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Option<&'a T> {
    items.iter().find(|o| {
        let m = meta(o);
        m.name.as_deref() == Some(name) && (ns.is_none() || m.namespace.as_deref() == ns)
    })
}

/// Objects plus the delay every answer waits (to measure fleet concurrency).
#[derive(Clone)]
pub struct Shared {
    objects: Arc<Mutex<Objects>>,
    latency: std::time::Duration,
}

impl Shared {
    async fn get(&self) -> std::sync::MutexGuard<'_, Objects> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn pod(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let o = s.get().await;
    match named(&o.pods, Some(&ns), &name, |p| &p.metadata) {
        Some(p) => Json(p.clone()).into_response(),
        None => not_found("pods", &name),
    }
}

/// `GET .../pods/NAME/log?tailLines=N`: plain text, as the API server answers it.
async fn pod_log(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let o = s.get().await;
    if named(&o.pods, Some(&ns), &name, |p| &p.metadata).is_none() {
        return not_found("pods", &name);
    }
    if o.logs_forbidden {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "Forbidden", "code": 403,
                "message": format!("pods \"{name}\" is forbidden: cannot get resource \"pods/log\"")})),
        )
            .into_response();
    }
    let key = (ns, name);
    let file = o.log_files.get(&key).cloned();
    // Bytes that are not UTF-8 are replaced (U+FFFD), as the API server does; the rest of the
    // log is served. `read` is where the file was read up to (for `follow`).
    let (text, read) = match &file {
        Some(path) => {
            let bytes = std::fs::read(path).unwrap_or_default();
            let read = bytes.len() as u64;
            (String::from_utf8_lossy(&bytes).into_owned(), read)
        }
        None => {
            let text = o.logs.get(&key).cloned().unwrap_or_default();
            let read = text.len() as u64;
            (text, read)
        }
    };
    drop(o);
    let lines: Vec<&str> = text.lines().collect();
    let tail = q
        .get("tailLines")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(lines.len());
    let mut out = lines[lines.len().saturating_sub(tail)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    // `follow=true` on a file: keep the answer open and send what is appended, as the API
    // server does (the stream ends when the file shrinks, i.e. was replaced).
    if q.get("follow").is_some_and(|v| v == "true")
        && let Some(path) = file
    {
        use futures::StreamExt as _;
        let first = axum::body::Bytes::from(out);
        let appended = futures::stream::unfold(read, move |pos| {
            let path = path.clone();
            async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let len = tokio::fs::metadata(&path).await.map(|m| m.len()).ok()?;
                    if len < pos {
                        return None;
                    }
                    if len > pos {
                        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                        let mut f = tokio::fs::File::open(&path).await.ok()?;
                        f.seek(std::io::SeekFrom::Start(pos)).await.ok()?;
                        let mut buf = vec![0u8; (len - pos).min(1 << 20) as usize];
                        f.read_exact(&mut buf).await.ok()?;
                        let next = pos + buf.len() as u64;
                        return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), next));
                    }
                }
            }
        });
        let stream = futures::stream::once(async move { Ok(first) }).chain(appended);
        return (
            [("content-type", "text/plain")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    ([("content-type", "text/plain")], out).into_response()
}

async fn node(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let o = s.get().await;
    match named(&o.nodes, None, &name, |n| &n.metadata) {
        Some(n) => Json(n.clone()).into_response(),
        None => not_found("nodes", &name),
    }
}

async fn daemonset(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let o = s.get().await;
    match named(&o.daemonsets, Some(&ns), &name, |d| &d.metadata) {
        Some(d) => Json(d.clone()).into_response(),
        None => not_found("daemonsets.apps", &name),
    }
}

async fn events(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let o = s.get().await;
    let want = q
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("involvedObject.name="))
        .map(str::to_owned);
    let items: Vec<&Event> = o
        .events
        .iter()
        .filter(|e| e.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|e| want.is_none() || e.involved_object.name == want)
        .collect();
    Json(serde_json::json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items})).into_response()
}

async fn pods(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let o = s.get().await;
    // Equality selectors `k=v[,k=v]`, as `-l` passes them.
    let want: Vec<(String, String)> = q
        .get("labelSelector")
        .map(|sel| {
            sel.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let items: Vec<&Pod> = o
        .pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|p| {
            want.iter()
                .all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
        })
        .collect();
    Json(serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}))
        .into_response()
}

impl ApiServer {
    pub async fn start(objects: Objects) -> ApiServer {
        Self::start_with_latency(objects, std::time::Duration::ZERO).await
    }

    /// Every answer waits `latency` first.
    pub async fn start_with_latency(objects: Objects, latency: std::time::Duration) -> ApiServer {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(l, objects, latency)
    }

    /// Serve on an already bound listener.
    pub fn start_on(
        l: tokio::net::TcpListener,
        objects: Objects,
        latency: std::time::Duration,
    ) -> ApiServer {
        let objects = Arc::new(Mutex::new(objects));
        let shared = Shared {
            objects: objects.clone(),
            latency,
        };
        let app = axum::Router::new()
            .route("/api/v1/namespaces/{ns}/pods", get(pods))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(pod))
            .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/exec",
                get(exec::pod_exec),
            )
            .route(
                "/api/v1/namespaces/{ns}/pods/{name}/proxy/{*path}",
                get(proxy::pod_proxy),
            )
            .route("/api/v1/nodes/{name}", get(node))
            .route(
                "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
                get(daemonset),
            )
            .route("/api/v1/namespaces/{ns}/events", get(events))
            .with_state(shared);
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        ApiServer {
            port,
            objects,
            task,
        }
    }

    /// A kubeconfig with one context `test` (namespace `namespace`) pointing here.
    pub fn kubeconfig(&self, dir: &std::path::Path, namespace: &str) -> std::path::PathBuf {
        let p = dir.join("kubeconfig");
        std::fs::write(&p, self.kubeconfig_text(namespace)).expect("write kubeconfig");
        p
    }

    /// The kubeconfig's text (context `test`, default namespace `namespace`).
    pub fn kubeconfig_text(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n",
            self.port
        )
    }
}

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

/// A pod as the Helm chart deploys it: device limit, hugepages requested and mounted, Running,
/// labelled `app=containment-chamber`.
pub fn healthy_pod(name: &str, ns: &str, node: &str) -> Pod {
    let limits = [
        ("aws.ec2.nitro/nitro_enclaves", "1"),
        ("hugepages-2Mi", "1Gi"),
        ("memory", "2Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
    .collect();
    let mut m = meta(name, Some(ns));
    m.labels = Some([("app".to_owned(), "containment-chamber".to_owned())].into());
    Pod {
        metadata: m,
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            containers: vec![Container {
                name: "parent".into(),
                ports: Some(vec![port("api", 9000), port("metrics", 3000)]),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "hugepage".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("HugePages".into()),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    }
}

fn port(name: &str, n: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: n,
        ..ContainerPort::default()
    }
}

pub fn labelled_node(name: &str) -> Node {
    let mut m = meta(name, None);
    m.labels = Some([("aws-nitro-enclaves-k8s-dp".to_owned(), "enabled".to_owned())].into());
    Node {
        metadata: m,
        ..Node::default()
    }
}

pub fn device_plugin(ready: i32, desired: i32) -> DaemonSet {
    DaemonSet {
        metadata: meta("aws-nitro-enclaves-k8s-daemonset", Some("kube-system")),
        status: Some(DaemonSetStatus {
            number_ready: ready,
            desired_number_scheduled: desired,
            ..DaemonSetStatus::default()
        }),
        ..DaemonSet::default()
    }
}

pub fn warning_event(ns: &str, pod: &str, reason: &str, message: &str) -> Event {
    Event {
        metadata: meta(&format!("{pod}.{reason}"), Some(ns)),
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some(pod.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectReference::default()
        },
        type_: Some("Warning".into()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..Event::default()
    }
}
