//! A [`Context`] for unit tests: the caches filled with the objects a test gives, an ARM
//! stand-in, and a Kubernetes client whose every request fails (no unit test may reach an
//! API server). What reads only the caches (inputs, policies, the judge) runs on it as in
//! the operator.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kvbind_api::secret_provider_class::SecretProviderClass;
use kvbind_api::{BindingPolicy, IdentityBinding};
use serde::de::DeserializeOwned;

use crate::config::ControllerConfig;
use crate::context::{Context, Index};
use crate::desks::handoff::Handoffs;
use crate::fake_compute::FakeCompute;
use crate::metrics::Metrics;

/// The cluster a test sets up, as JSON objects.
#[derive(Default)]
pub struct Cluster {
    pub bindings: Vec<serde_json::Value>,
    pub classes: Vec<serde_json::Value>,
    pub nodes: Vec<serde_json::Value>,
    pub policies: Vec<serde_json::Value>,
    /// Namespace names with their labels.
    pub namespaces: Vec<(&'static str, serde_json::Value)>,
}

fn filled<K>(objects: &[serde_json::Value]) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        let object: K = serde_json::from_value(object.clone()).expect("a test object parses");
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// A context whose caches hold `cluster`. Needs a Tokio runtime (the Event queue's task).
pub fn context(cluster: &Cluster) -> Arc<Context> {
    let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
        Err::<http::Response<kube::client::Body>, std::io::Error>(std::io::Error::other("unit tests reach no API server"))
    });
    let client = kube::Client::new(service, "default");
    let namespaces: Vec<serde_json::Value> = cluster
        .namespaces
        .iter()
        .map(|(name, labels)| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}))
        .collect();
    let (_, ready) = tokio::sync::watch::channel(true);
    let index = Index {
        bindings: filled::<IdentityBinding>(&cluster.bindings),
        classes: filled::<SecretProviderClass>(&cluster.classes),
        nodes: filled::<Node>(&cluster.nodes),
        policies: filled::<BindingPolicy>(&cluster.policies),
        namespaces: filled::<PartialObjectMeta<Namespace>>(&namespaces),
        external_secrets: None,
        node_targets: Arc::default(),
        unpinned_classes: Arc::default(),
        needs_memo: Arc::default(),
        judged: Arc::default(),
        parsed_classes: crate::caches::parsed_classes::ParsedClasses::default(),
        ready,
    };
    let config = ControllerConfig { subscriptions: vec!["sub".to_owned()], ..ControllerConfig::default() };
    let arm = Arc::new(FakeCompute::new(Duration::ZERO));
    Context::new(client, arm, config, index, Arc::new(Metrics::default()), Handoffs::new().0)
}
