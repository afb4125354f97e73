//! kvbind's end-to-end tests, in one binary so that they share one control plane.

mod access_verified;
mod addon_identity;
mod aks_identity_binding;
mod bad_input;
mod chart;
mod crds;
mod examples;
mod external_secrets;
mod faults;
mod imds_egress;
mod kstatus;
mod lifecycle;
mod limits;
mod policy;
mod quotas;
mod rates;
mod reconcile;
mod scale;
mod tenancy;
mod workload_identity;
