//! The parser for the Azure provider's `objects` parameter.
//!
//! The parameter is a YAML document with one key, `array`, whose items are YAML
//! documents again (written as block strings, `- |`), one per Key Vault object:
//!
//! ```yaml
//! array:
//!   - |
//!     objectName: db-password
//!     objectType: secret
//! ```
//!
//! The parser follows the provider's reading of that text (unknown keys are ignored, as the
//! provider ignores them) and rejects what the provider would fail on at mount time, with
//! an error that names the entry and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_yaml_ng::Value;

/// The largest `objects` text kvbind reads.
pub const MAX_OBJECTS_BYTES: usize = 256 * 1024;
/// The most entries kvbind reads from one `objects` parameter.
pub const MAX_OBJECTS: usize = 1000;

/// One Key Vault object the CSI driver mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVaultObject {
    /// The object's name in the vault.
    pub name: String,
    /// Secret, key or certificate.
    pub object_type: ObjectType,
    /// A pinned version; empty means the latest.
    pub version: Option<String>,
    /// How many versions to mount; above 1 the provider lists versions.
    pub version_history: u32,
    /// The file name to mount it under instead of `name`.
    pub alias: Option<String>,
    /// `pem` or `pfx`, for certificates read as secrets.
    pub format: Option<String>,
    /// `utf-8`, `hex` or `base64`.
    pub encoding: Option<String>,
}

impl KeyVaultObject {
    /// The file name the driver writes this object to.
    pub fn file_name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    /// True when the provider needs `list` for this object (it lists versions).
    pub fn needs_list(&self) -> bool {
        self.version_history > 1
    }
}

/// The three kinds of Key Vault object the provider reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    /// `objectType: secret`.
    Secret,
    /// `objectType: key`.
    Key,
    /// `objectType: cert`.
    Cert,
}

impl ObjectType {
    /// The spelling in the `objects` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Secret => "secret",
            ObjectType::Key => "key",
            ObjectType::Cert => "cert",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an `objects` parameter cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectsError {
    /// The text is not YAML.
    #[error("objects is not valid YAML: {0}")]
    NotYaml(String),
    /// The text is larger than kvbind reads.
    #[error("objects is {0} bytes, more than the {MAX_OBJECTS_BYTES} kvbind reads")]
    TooLarge(usize),
    /// The document has no `array` list.
    #[error("objects must be a mapping with an `array` list of YAML strings")]
    NoArray,
    /// The list holds more entries than kvbind reads.
    #[error("objects.array has {0} entries, more than the {MAX_OBJECTS} kvbind reads")]
    TooMany(usize),
    /// The list is empty.
    #[error("objects.array is empty: list at least one Key Vault object")]
    Empty,
    /// An item of the list is not a string.
    #[error("objects.array[{index}] must be a YAML string (write the entry as `- |` and indent it)")]
    EntryNotString {
        /// The entry's position in `array`.
        index: usize,
    },
    /// An entry's text is not a YAML mapping.
    #[error("objects.array[{index}] is not a YAML mapping: {detail}")]
    EntryNotMapping {
        /// The entry's position in `array`.
        index: usize,
        /// What the YAML reader said.
        detail: String,
    },
    /// A required field is missing or empty.
    #[error("objects.array[{index}].{field} is required")]
    Missing {
        /// The entry's position in `array`.
        index: usize,
        /// The field's name.
        field: &'static str,
    },
    /// A field holds a value the provider does not accept.
    #[error("objects.array[{index}].{field}: {problem}")]
    Invalid {
        /// The entry's position in `array`.
        index: usize,
        /// The field's name.
        field: &'static str,
        /// What is wrong with the value.
        problem: String,
    },
    /// Two entries would be written to the same file.
    #[error("objects.array[{index}] and objects.array[{first}] both mount as file {file:?}: set objectAlias on one")]
    DuplicateFile {
        /// The later entry.
        index: usize,
        /// The earlier entry.
        first: usize,
        /// The file name they share.
        file: String,
    },
}

impl ObjectsError {
    /// The position in `array` the error is about, if it is about one entry.
    pub fn index(&self) -> Option<usize> {
        match self {
            ObjectsError::EntryNotString { index }
            | ObjectsError::EntryNotMapping { index, .. }
            | ObjectsError::Missing { index, .. }
            | ObjectsError::Invalid { index, .. }
            | ObjectsError::DuplicateFile { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The field the error is about, if it is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ObjectsError::Missing { field, .. } | ObjectsError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Parses an `objects` parameter into typed entries.
pub fn parse_objects(text: &str) -> Result<Vec<KeyVaultObject>, ObjectsError> {
    if text.len() > MAX_OBJECTS_BYTES {
        return Err(ObjectsError::TooLarge(text.len()));
    }
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| ObjectsError::NotYaml(e.to_string()))?;
    let items = match doc.get("array") {
        Some(Value::Sequence(items)) => items,
        Some(Value::Null) => return Err(ObjectsError::Empty),
        _ => return Err(ObjectsError::NoArray),
    };
    if items.is_empty() {
        return Err(ObjectsError::Empty);
    }
    if items.len() > MAX_OBJECTS {
        return Err(ObjectsError::TooMany(items.len()));
    }
    let mut objects = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::String(entry) = item else {
            return Err(ObjectsError::EntryNotString { index });
        };
        objects.push(parse_entry(index, entry)?);
    }
    reject_shared_files(&objects)?;
    Ok(objects)
}

fn parse_entry(index: usize, text: &str) -> Result<KeyVaultObject, ObjectsError> {
    // Read every value as the text it was written as: `objectName: 0E0` is the name "0E0",
    // not a number, just as the provider (Go, into string fields) reads it.
    let value: BTreeMap<String, Field> = serde_yaml_ng::from_str(text).map_err(|e| ObjectsError::EntryNotMapping { index, detail: e.to_string() })?;
    let field = |name: &'static str| scalar(index, value.get(name), name);

    let name = field("objectName")?.ok_or(ObjectsError::Missing { index, field: "objectName" })?;
    check_object_name(index, &name)?;
    let object_type = match field("objectType")?.as_deref() {
        Some("secret") => ObjectType::Secret,
        Some("key") => ObjectType::Key,
        Some("cert") => ObjectType::Cert,
        Some(other) => {
            return Err(invalid(index, "objectType", format!("{other:?} is not one of secret, key, cert")));
        }
        None => {
            return Err(ObjectsError::Missing { index, field: "objectType" });
        }
    };
    let version = field("objectVersion")?;
    if let Some(v) = &version
        && !v.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(invalid(index, "objectVersion", format!("{v:?} is not a Key Vault version ID")));
    }
    let version_history = match field("objectVersionHistory")? {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| invalid(index, "objectVersionHistory", format!("{v:?} is not a whole number of versions")))?,
    };
    let alias = field("objectAlias")?;
    if let Some(a) = &alias {
        check_file_name(index, a)?;
    }
    let format = field("objectFormat")?;
    if let Some(f) = &format
        && !matches!(f.to_ascii_lowercase().as_str(), "pem" | "pfx")
    {
        return Err(invalid(index, "objectFormat", format!("{f:?} is not one of pem, pfx")));
    }
    let encoding = field("objectEncoding")?;
    if let Some(e) = &encoding
        && !matches!(e.to_ascii_lowercase().as_str(), "utf-8" | "hex" | "base64")
    {
        return Err(invalid(index, "objectEncoding", format!("{e:?} is not one of utf-8, hex, base64")));
    }
    if let Some(p) = field("filePermission")?
        && !(p.len() == 4 && p.starts_with('0') && p.chars().all(|c| ('0'..='7').contains(&c)))
    {
        return Err(invalid(index, "filePermission", format!("{p:?} is not an octal mode like 0644")));
    }
    Ok(KeyVaultObject { name, object_type, version, version_history, alias, format, encoding })
}

/// One value of an entry: its text as written, or a list or mapping (which no field takes).
enum Field {
    Text(String),
    Nested,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(Field::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field, E> {
                Ok(Field::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field, E> {
                Ok(Field::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
                Ok(Field::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field, E> {
                Ok(Field::Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Text(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Field, E> {
                Ok(Field::Text(String::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Field::Nested)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(Field::Nested)
            }
        }
        deserializer.deserialize_string(FieldVisitor)
    }
}

/// Reads one field as a string: absent and empty are both `None`, as the provider treats
/// them; a list or mapping is an error.
fn scalar(index: usize, field: Option<&Field>, name: &'static str) -> Result<Option<String>, ObjectsError> {
    match field {
        None => Ok(None),
        Some(Field::Nested) => Err(invalid(index, name, "must be a single value, not a list or mapping".to_owned())),
        Some(Field::Text(t)) => {
            let t = t.trim();
            Ok((!t.is_empty()).then(|| t.to_owned()))
        }
    }
}

/// Key Vault object names: 1 to 127 letters, digits and hyphens.
fn check_object_name(index: usize, name: &str) -> Result<(), ObjectsError> {
    let valid = name.len() <= 127 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid { Ok(()) } else { Err(invalid(index, "objectName", format!("{name:?} is not a Key Vault object name (1-127 letters, digits and hyphens)"))) }
}

/// The driver writes each object to a file in the mount: no path separators or dot names.
fn check_file_name(index: usize, alias: &str) -> Result<(), ObjectsError> {
    let valid = alias.len() <= 255 && !alias.contains(['/', '\\', '\0']) && alias != "." && alias != "..";
    if valid { Ok(()) } else { Err(invalid(index, "objectAlias", format!("{alias:?} is not a plain file name"))) }
}

fn reject_shared_files(objects: &[KeyVaultObject]) -> Result<(), ObjectsError> {
    let mut seen = BTreeSet::new();
    for (index, object) in objects.iter().enumerate() {
        let file = object.file_name();
        if !seen.insert(file) {
            let first = objects.iter().position(|o| o.file_name() == file).unwrap_or(index);
            return Err(ObjectsError::DuplicateFile { index, first, file: file.to_owned() });
        }
    }
    Ok(())
}

fn invalid(index: usize, field: &'static str, problem: String) -> ObjectsError {
    ObjectsError::Invalid { index, field, problem }
}

#[cfg(test)]
mod tests;
