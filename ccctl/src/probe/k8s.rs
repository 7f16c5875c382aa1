//! Kubernetes: what `doctor --pod` reads from the API (the pod, its node, the Nitro Enclaves
//! device-plugin DaemonSet, the pod's events) with the real `kube` client and the user's
//! kubeconfig (`--context`, `-n` as kubectl spells them).

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Fixed contract names (DESIGN.md).
pub const DEVICE_RESOURCE: &str = "aws.ec2.nitro/nitro_enclaves";
pub const DEVICE_PLUGIN: &str = "aws-nitro-enclaves-k8s-daemonset";
pub const DEVICE_PLUGIN_NAMESPACE: &str = "kube-system";
pub const NODE_LABEL: (&str, &str) = ("aws-nitro-enclaves-k8s-dp", "enabled");

/// A pod's container port called `name` (`api`, `metrics`), else `default` (the contract's
/// 9000 and 3000).
pub fn named_port(pod: &Pod, name: &str, default: u16) -> u16 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(default)
}

/// Everything the pod checks look at, fetched once.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub pod: Pod,
    pub node: Option<Node>,
    /// `None`: the DaemonSet does not exist.
    pub device_plugin: Option<DaemonSet>,
    pub events: Vec<Event>,
    /// The last lines of the pod's log; `None` when not asked, `Err` when unreadable.
    pub logs: Option<Result<String, String>>,
    /// Facts that could not be read, by the check that needs them (`nsm.node-label`,
    /// `nsm.device-plugin`, `enclave.pod-events`), with why: that check is unknown, not passed.
    pub unread: std::collections::BTreeMap<&'static str, String>,
}

/// The node of a pod, or why it is not known (`Ok(None)`: the pod is not on a node yet).
async fn node_of(client: &kube::Client, name: Option<&str>) -> Result<Option<Node>, String> {
    let Some(n) = name else {
        return Ok(None);
    };
    match Api::<Node>::all(client.clone()).get(n).await {
        Ok(node) => Ok(Some(node)),
        Err(e) if not_found(&e) => Err(format!("node '{n}' not found")),
        Err(e) => Err(format!("reading node '{n}': {}", describe_error(&e))),
    }
}

/// The device-plugin DaemonSet (`Ok(None)`: it does not exist), or why it could not be read.
fn device_plugin_of(r: Result<DaemonSet, kube::Error>) -> Result<Option<DaemonSet>, String> {
    match r {
        Ok(d) => Ok(Some(d)),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(format!(
            "reading DaemonSet {DEVICE_PLUGIN_NAMESPACE}/{DEVICE_PLUGIN}: {}",
            describe_error(&e)
        )),
    }
}

/// Pod logs read at once per cluster (a fleet of 200 pods is read in one round).
pub const MAX_LOG_READS: usize = 200;

/// Lines of the pod log read for the failure signatures.
pub const LOG_TAIL_LINES: i64 = 500;

async fn pod_log(client: &kube::Client, namespace: &str, name: &str) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.logs(
        name,
        &LogParams {
            tail_lines: Some(LOG_TAIL_LINES),
            ..LogParams::default()
        },
    )
    .await
    .map_err(|e| format!("reading the log of pod '{namespace}/{name}': {e}"))
}

pub async fn client(context: Option<&str>) -> Result<kube::Client, String> {
    let kubeconfig = Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig: {e}"))?;
    let opts = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &opts)
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    // No silent retries of 429/503/504 (kube's default, up to 15 with backoff): a 503 from
    // the pod proxy is the answer "nothing listens on the pod's port", and every caller has
    // its own deadline and backoff; a retried answer would arrive only at the deadline.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| format!("kube client: {e}"))
}

/// The namespace to use: `-n`, else the context's, else `default`.
pub async fn default_namespace(context: Option<&str>) -> String {
    let Ok(kc) = Kubeconfig::read() else {
        return "default".into();
    };
    let name = context.map(str::to_owned).or(kc.current_context.clone());
    kc.contexts
        .iter()
        .find(|c| Some(&c.name) == name.as_ref())
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .unwrap_or_else(|| "default".into())
}

/// A kube client error in one line of words: the API server's status (code, reason, message)
/// instead of the client's Debug dump, with what a code usually means.
pub fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let mut out = format!("the API server answered HTTP {}", s.code);
            let reason = s.reason.trim();
            if !reason.is_empty() && reason != "Failed to parse error data" {
                out += &format!(" {reason}");
            }
            let message = s.message.trim();
            if !message.is_empty() {
                out += &format!(": {message}");
            }
            let hint = match s.code {
                401 => " (the kubeconfig's credentials were refused)",
                403 => " (the user lacks the permission: kubectl auth can-i)",
                404 => " (no such object, or the API server does not serve this subresource)",
                _ => "",
            };
            crate::output::clean(&(out + hint))
        }
        other => {
            // One line: the error and its sources.
            let mut out = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let t = s.to_string();
                if !out.contains(&t) {
                    out += &format!(": {t}");
                }
                src = s.source();
            }
            crate::output::clean(&out)
        }
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Pods in `namespace` that look like chambers (a container requests the Nitro device, or the
/// name says so), with their labels: what to tell someone whose selector matched nothing.
pub async fn chamber_like_pods(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = tokio::time::timeout(timeout, pods.list(&ListParams::default()))
        .await
        .map_err(|_| format!("listing pods in '{namespace}' timed out"))?
        .map_err(|e| format!("listing pods in '{namespace}': {}", describe_error(&e)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            let nitro = p.spec.iter().flat_map(|s| s.containers.iter()).any(|c| {
                c.resources
                    .as_ref()
                    .and_then(|r| r.limits.as_ref())
                    .is_some_and(|l| l.contains_key("aws.ec2.nitro/nitro_enclaves"))
            });
            nitro || name.contains("chamber")
        })
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect())
}

/// Facts for every pod matching `selector`, fetched concurrently: the pods listed, then the
/// device-plugin DaemonSet once, each node once, the namespace's pod events in one list, and
/// each pod's log. A fleet takes
/// about as long as its slowest pod, not the sum.
pub async fn fleet_facts(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    timeout: Duration,
) -> Result<Vec<PodFacts>, String> {
    let start = std::time::Instant::now();
    let pods = list_pods(client, namespace, selector, timeout).await?;
    facts_of(
        client,
        namespace,
        pods,
        timeout.saturating_sub(start.elapsed()),
    )
    .await
}

/// The pods matching `selector` (one request).
pub async fn list_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    timeout: Duration,
) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(selector);
    tokio::time::timeout(timeout, pods.list(&lp))
        .await
        .map_err(|_| format!("the Kubernetes API did not answer within {timeout:?}"))?
        .map(|l| l.items)
        .map_err(|e| format!("listing pods '{selector}' in '{namespace}': {e}"))
}

/// The rest of the listed pods' facts: the DaemonSet, their nodes, the namespace's pod events
/// (one list) and each pod's log, all at once.
pub async fn facts_of(
    client: &kube::Client,
    namespace: &str,
    items: Vec<Pod>,
    timeout: Duration,
) -> Result<Vec<PodFacts>, String> {
    let fetch = async {
        let ds: Api<DaemonSet> = Api::namespaced(client.clone(), DEVICE_PLUGIN_NAMESPACE);
        let plugin = ds.get(DEVICE_PLUGIN);
        let list = k8s_openapi::List {
            items,
            ..Default::default()
        };
        let node_names: std::collections::BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect();
        let mut node_tasks = tokio::task::JoinSet::new();
        for n in node_names {
            let c = client.clone();
            node_tasks.spawn(async move { (n.clone(), node_of(&c, Some(&n)).await) });
        }
        // The namespace's pod events in one list (not one per pod), each pod's log.
        let events_api: Api<Event> = Api::namespaced(client.clone(), namespace);
        let pod_events = ListParams::default().fields("involvedObject.kind=Pod");
        let all_events = events_api.list(&pod_events);
        let mut event_tasks = tokio::task::JoinSet::new();
        let logs_at_once = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_LOG_READS));
        for (i, p) in list.items.iter().enumerate() {
            let c = client.clone();
            let ns = namespace.to_owned();
            let name = p.metadata.name.clone().unwrap_or_default();
            let sem = logs_at_once.clone();
            event_tasks.spawn(async move {
                let _permit = sem.acquire().await;
                (i, pod_log(&c, &ns, &name).await)
            });
        }
        // The two single requests at once (futures start when polled).
        let (all_events, plugin) = tokio::join!(all_events, plugin);
        let mut by_pod: std::collections::BTreeMap<String, Vec<Event>> = Default::default();
        let events_error = match all_events {
            Ok(l) => {
                for e in l.items {
                    if let Some(n) = e.involved_object.name.clone() {
                        by_pod.entry(n).or_default().push(e);
                    }
                }
                None
            }
            Err(e) => Some(format!(
                "listing the events in '{namespace}': {}",
                describe_error(&e)
            )),
        };
        // One that cannot be read makes that check unknown for every pod, not the cluster.
        let (device_plugin, plugin_error) = match device_plugin_of(plugin) {
            Ok(d) => (d, None),
            Err(e) => (None, Some(e)),
        };
        let mut nodes = std::collections::BTreeMap::new();
        // A task that failed (it cannot, short of a panic) leaves its node "not read".
        while let Some(r) = node_tasks.join_next().await {
            if let Ok((n, node)) = r {
                nodes.insert(n, node);
            }
        }
        let mut logs = std::collections::BTreeMap::new();
        while let Some(r) = event_tasks.join_next().await {
            if let Ok((i, log)) = r {
                logs.insert(i, log);
            }
        }
        Ok(list
            .items
            .into_iter()
            .enumerate()
            .map(|(i, pod)| {
                let mut unread = std::collections::BTreeMap::new();
                let node = match pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) {
                    None => None,
                    Some(n) => match nodes.get(n) {
                        Some(Ok(node)) => node.clone(),
                        Some(Err(e)) => {
                            unread.insert("nsm.node-label", e.clone());
                            None
                        }
                        None => {
                            unread.insert(
                                "nsm.node-label",
                                format!("node '{n}' was not read (its read failed)"),
                            );
                            None
                        }
                    },
                };
                if let Some(e) = &plugin_error {
                    unread.insert("nsm.device-plugin", e.clone());
                }
                if let Some(e) = &events_error {
                    unread.insert("enclave.pod-events", e.clone());
                }
                let name = pod.metadata.name.clone().unwrap_or_default();
                let events = by_pod.remove(&name).unwrap_or_default();
                let logs = logs.remove(&i);
                PodFacts {
                    pod,
                    node,
                    device_plugin: device_plugin.clone(),
                    events,
                    logs,
                    unread,
                }
            })
            .collect())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("the Kubernetes API did not answer within {timeout:?}"))?
}

pub async fn pod_facts(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<PodFacts, String> {
    let fetch = async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pod = pods.get(name).await.map_err(|e| {
            if not_found(&e) {
                format!("pod '{name}' not found in namespace '{namespace}'")
            } else {
                format!("reading pod '{namespace}/{name}': {e}")
            }
        })?;
        let mut unread = std::collections::BTreeMap::new();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let node = node_of(client, node_name.as_deref())
            .await
            .unwrap_or_else(|e| {
                unread.insert("nsm.node-label", e);
                None
            });
        let ds: Api<DaemonSet> = Api::namespaced(client.clone(), DEVICE_PLUGIN_NAMESPACE);
        let device_plugin = device_plugin_of(ds.get(DEVICE_PLUGIN).await).unwrap_or_else(|e| {
            unread.insert("nsm.device-plugin", e);
            None
        });
        let events: Api<Event> = Api::namespaced(client.clone(), namespace);
        let events = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .map(|l| l.items)
            .unwrap_or_else(|e| {
                unread.insert(
                    "enclave.pod-events",
                    format!("listing the pod's events: {}", describe_error(&e)),
                );
                Vec::new()
            });
        let logs = Some(pod_log(client, namespace, name).await);
        Ok(PodFacts {
            pod,
            node,
            device_plugin,
            events,
            logs,
            unread,
        })
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("the Kubernetes API did not answer within {timeout:?}"))?
}
