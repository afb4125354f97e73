//! ARM resource IDs: any text is parsed or refused; an accepted ID prints back to text
//! that parses to the same ID.
#![no_main]

use kvbind_azure::{GroupResourceId, ResourceKind};
use libfuzzer_sys::fuzz_target;

const KINDS: [ResourceKind; 4] = [ResourceKind::UserAssignedIdentity, ResourceKind::VirtualMachineScaleSet, ResourceKind::VirtualMachine, ResourceKind::Vault];

fuzz_target!(|text: &str| {
    for kind in KINDS {
        if let Ok(id) = GroupResourceId::parse(kind, text) {
            let printed = id.to_string();
            let again = GroupResourceId::parse(kind, &printed).expect("a printed ID parses");
            assert_eq!(again, id, "{text:?} printed as {printed:?}");
        }
    }
});
