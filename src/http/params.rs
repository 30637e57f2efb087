//! Reading a request's JSON members as the types they must have, with the API's own errors
//! naming the parameter (used by the send and the business profile).

use super::ApiError;
use serde_json::Value;

/// The members of one JSON object of a request, each read as the JSON type it must have:
/// absent or `null` is `None`, any other type is error 100 naming the parameter. Names in
/// errors are the API's own (`text.preview_url`), never anything the client sent.
pub(super) struct Params<'a> {
    pub(super) obj: &'a serde_json::Map<String, Value>,
    prefix: String,
}

impl<'a> Params<'a> {
    pub(super) fn root(obj: &'a serde_json::Map<String, Value>) -> Self {
        Self {
            obj,
            prefix: String::new(),
        }
    }

    pub(super) fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn wrong_type(&self, key: &str, expected: &str) -> ApiError {
        ApiError::invalid(format!(
            "The parameter {} must be {expected}.",
            self.name(key)
        ))
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    /// A string that must be present and not empty (else 131008).
    pub(super) fn required_string(&self, key: &str) -> Result<&'a str, ApiError> {
        self.string(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::missing(&self.name(key)))
    }

    pub(super) fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    pub(super) fn object(&self, key: &str) -> Result<Option<Params<'a>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(obj)) => Ok(Some(Params {
                obj,
                prefix: self.name(key),
            })),
            Some(_) => Err(self.wrong_type(key, "an object")),
        }
    }

    /// An object that must be present (else 131008).
    pub(super) fn required_object(&self, key: &str) -> Result<Params<'a>, ApiError> {
        self.object(key)?
            .ok_or_else(|| ApiError::missing(&self.name(key)))
    }

    pub(super) fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong_type(key, "an array")),
        }
    }
}
