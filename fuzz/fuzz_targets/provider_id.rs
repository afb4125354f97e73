//! Node `spec.providerID`s: any text is parsed or refused, never a panic; an accepted one
//! names a scale set or VM whose ID round-trips.
#![no_main]

use kvbind_azure::NodeLocation;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(location) = NodeLocation::from_provider_id(text) {
        let target = location.attach_target();
        let printed = target.to_string();
        let again = kvbind_azure::ComputeId::parse(&printed).expect("a printed ID parses");
        assert_eq!(&again, target, "{text:?}");
    }
});
