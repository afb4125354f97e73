//! Custom cloud files: any text is read or refused naming the file's field, never a
//! panic; an accepted cloud has HTTPS endpoints unless plain HTTP was allowed.
#![no_main]

use kvbind_azure::Cloud;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Cloud::from_json(text, false) {
        Ok(cloud) => {
            assert_eq!(cloud.resource_manager.scheme(), "https");
            assert_eq!(cloud.authority_host.scheme(), "https");
        }
        Err(error) => assert!(error.to_string().starts_with("custom cloud file"), "{error}"),
    }
    let _ = Cloud::from_json(text, true);
});
