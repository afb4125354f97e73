//! The SecretProviderClass `objects` parser: any text is parsed or refused with an error
//! naming a field, never a panic, and what it accepts is within the documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match kvbind_api::parse_objects(text) {
        Ok(objects) => {
            assert!(objects.len() <= 1000, "more objects than the limit: {}", objects.len());
            for object in &objects {
                assert!(!object.name.is_empty(), "an object without a name was accepted");
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
