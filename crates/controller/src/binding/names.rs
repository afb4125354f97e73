//! How kvbind names a binding, and lists of names, in records and messages.

use kube::ResourceExt;
use kvbind_api::IdentityBinding;

/// `namespace/name`.
pub fn key(binding: &IdentityBinding) -> String {
    format!("{}/{}", binding.namespace().unwrap_or_default(), binding.name_any())
}

/// The first ten of `names` joined by commas, then how many more there are: a condition's
/// message stays readable however many there are.
pub fn first_ten<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = names.len();
    let listed: Vec<&str> = names.take(10).map(String::as_str).collect();
    let more = if total > listed.len() { format!(" and {} more", total - listed.len()) } else { String::new() };
    format!("{}{more}", listed.join(", "))
}
