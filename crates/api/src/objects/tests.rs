use proptest::prelude::*;

use super::*;

const SEED_OBJECTS: &str = r#"
array:
  - |
    objectName: secret1
    objectType: secret
    objectVersion: ""
  - |
    objectName: key1
    objectType: key
    objectVersion: ""
"#;

#[test]
fn reads_the_seed_example() {
    let objects = parse_objects(SEED_OBJECTS).expect("valid");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0].name, "secret1");
    assert_eq!(objects[0].object_type, ObjectType::Secret);
    assert_eq!(objects[0].version, None);
    assert_eq!(objects[1].object_type, ObjectType::Key);
}

#[test]
fn version_history_above_one_needs_list() {
    let objects = parse_objects("array:\n  - |\n    objectName: s\n    objectType: secret\n    objectVersionHistory: 3\n").expect("valid");
    assert!(objects[0].needs_list());
}

#[track_caller]
fn rejects(text: &str, index: Option<usize>, field: Option<&str>, words: &str) {
    let err = parse_objects(text).expect_err("must be rejected");
    assert_eq!(err.index(), index, "{err}");
    assert_eq!(err.field(), field, "{err}");
    assert!(err.to_string().contains(words), "{err:?} should mention {words:?}");
}

#[test]
fn malformed_inputs_name_the_entry_and_field() {
    rejects("array: [", None, None, "not valid YAML");
    rejects("objects: []", None, None, "`array` list");
    rejects("array: []", None, None, "empty");
    rejects("array:\n  - objectName: a\n    objectType: secret\n", Some(0), None, "`- |`");
    rejects("array:\n  - |\n    objectType: secret\n", Some(0), Some("objectName"), "required");
    rejects(
        "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectType: blob\n",
        Some(1),
        Some("objectType"),
        "\"blob\"",
    );
    rejects("array:\n  - |\n    objectName: a\n", Some(0), Some("objectType"), "required");
    rejects("array:\n  - |\n    objectName: a b\n    objectType: key\n", Some(0), Some("objectName"), "object name");
    rejects("array:\n  - |\n    objectName: a\n    objectType: key\n    objectVersionHistory: many\n", Some(0), Some("objectVersionHistory"), "whole number");
    rejects("array:\n  - |\n    objectName: a\n    objectType: key\n    objectAlias: ../etc\n", Some(0), Some("objectAlias"), "file name");
    rejects("array:\n  - |\n    objectName: a\n    objectType: secret\n    objectEncoding: rot13\n", Some(0), Some("objectEncoding"), "rot13");
    rejects("array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: a\n    objectType: key\n", Some(1), None, "mount as file");
    rejects("array:\n  - |\n    - just\n    - a list\n", Some(0), None, "mapping");
    rejects(&"x".repeat(MAX_OBJECTS_BYTES + 1), None, None, "more than");
}

fn object_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9-]{0,40}"
}

fn object_type() -> impl Strategy<Value = ObjectType> {
    prop_oneof![Just(ObjectType::Secret), Just(ObjectType::Key), Just(ObjectType::Cert)]
}

fn render(entries: &[(String, ObjectType, u32)]) -> String {
    let mut text = String::from("array:\n");
    for (name, kind, history) in entries {
        text.push_str(&format!("  - |\n    objectName: {name}\n    objectType: {kind}\n    objectVersionHistory: {history}\n"));
    }
    text
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = parse_objects(&text);
    }

    #[test]
    fn never_panics_on_yaml_shaped_text(body in "(array:\n)?(  - \\|\n    [a-zA-Z]{1,14}: [a-z0-9 \"'\\[\\]{}:-]{0,12}\n){0,6}") {
        let _ = parse_objects(&body);
    }

    #[test]
    fn reads_back_what_it_is_given(
        entries in proptest::collection::btree_map(object_name(), (object_type(), 0u32..5), 1..20)
    ) {
        let entries: Vec<_> = entries.into_iter().map(|(n, (t, h))| (n, t, h)).collect();
        let parsed = parse_objects(&render(&entries)).expect("valid");
        prop_assert_eq!(parsed.len(), entries.len());
        for (object, (name, kind, history)) in parsed.iter().zip(&entries) {
            prop_assert_eq!(&object.name, name);
            prop_assert_eq!(object.object_type, *kind);
            prop_assert_eq!(object.version_history, *history);
        }
    }
}

#[test]
fn names_that_look_like_numbers_stay_as_written() {
    let objects = parse_objects("array:\n  - |\n    objectName: 0E0\n    objectType: secret\n    objectVersion: 00123\n").expect("valid");
    assert_eq!(objects[0].name, "0E0");
    assert_eq!(objects[0].version.as_deref(), Some("00123"));
}
