//! A kubelet for kvbind's probe Pods, since the test control plane has none: it runs each
//! Pod's `kvbind probe` as the node it is pinned to would, with that node's IMDS (the
//! simulator's, answering for the node's scale set or VM), and ends the Pod with the
//! report as its termination message, as the real kubelet does.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kvbind_azure::NodeLocation;
use kvbind_controller::verify::probe::{self, ProbeRequest, TokenSource};
use kvbind_controller::verify::{PROBE_COMPONENT, PROBE_REQUEST_ARG};
use serde_json::json;

/// Runs probe Pods in `namespace` until dropped.
pub struct ProbeKubelet {
    task: tokio::task::JoinHandle<()>,
}

impl ProbeKubelet {
    /// Starts running the probe Pods that appear in `namespace`, with the simulator at `sim`
    /// as IMDS and Key Vault.
    pub fn start(client: kube::Client, namespace: &str, sim: &str) -> ProbeKubelet {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let nodes: Api<Node> = Api::all(client);
        let sim: url::Url = sim.parse().expect("simulator URL");
        let selector = format!("app.kubernetes.io/component={PROBE_COMPONENT}");
        let task = tokio::spawn(async move {
            let mut stream = watcher(pods.clone(), watcher::Config::default().labels(&selector)).applied_objects().boxed();
            while let Some(Ok(pod)) = stream.next().await {
                if pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_none() {
                    run(&pods, &nodes, &sim, pod).await;
                }
            }
        });
        ProbeKubelet { task }
    }
}

impl Drop for ProbeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs one Pod's probe and ends the Pod with its report.
async fn run(pods: &Api<Pod>, nodes: &Api<Node>, sim: &url::Url, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.unwrap_or_default();
    let node = nodes.get(&spec.node_name.unwrap_or_default()).await.expect("the probe Pod's node exists");
    let provider_id = node.spec.and_then(|s| s.provider_id).unwrap_or_default();
    let compute = match NodeLocation::from_provider_id(&provider_id).expect("the node's providerID parses") {
        NodeLocation::ScaleSetInstance { scale_set, .. } => scale_set,
        NodeLocation::VirtualMachine(vm) => vm,
    };
    let args = spec.containers.first().and_then(|c| c.args.clone()).unwrap_or_default();
    let request = args.iter().skip_while(|a| *a != PROBE_REQUEST_ARG).nth(1).expect("the Pod carries a request");
    let request: ProbeRequest = serde_json::from_str(request).expect("the request parses");
    let report = probe_from(sim, &compute.to_string(), &request).await;
    let status = json!({"status": {
        "phase": "Succeeded",
        "containerStatuses": [{
            "name": "probe", "ready": false, "restartCount": 0, "image": "kvbind", "imageID": "",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": serde_json::to_string(&report).expect("report")}},
        }],
    }});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("the probe Pod's status is written");
}

/// The probe as a node of `compute` (an ARM ID) runs it, against the simulator.
pub async fn probe_from(sim: &url::Url, compute: &str, request: &ProbeRequest) -> probe::ProbeReport {
    let imds: url::Url = format!("{}_imds{compute}/", sim.as_str()).parse().expect("IMDS URL");
    let http = probe::http_client(Some(std::net::Ipv4Addr::LOCALHOST.into())).expect("HTTP client");
    let source = TokenSource::Imds { endpoint: imds, client_id: request.pinned_client_id.clone() };
    probe::run(&http, &source, request, Some(sim)).await
}
