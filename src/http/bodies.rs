//! The shapes several routes answer with: `{"success": true}`, a `data` list with its Graph
//! paging, and an object narrowed by `?fields=`. Every answer is a typed value whose schema the
//! OpenAPI document is made from (`openapi`).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::marker::PhantomData;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// `{"success": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Success {
    /// Always `true`: a failure is an error envelope.
    pub(super) success: bool,
}

impl Success {
    /// The answer of a command that was done.
    pub(super) fn done() -> axum::Json<Self> {
        axum::Json(Self { success: true })
    }
}

/// `{"data": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Data<T> {
    /// The items.
    pub(super) data: Vec<T>,
}

/// `{"data": [...], "paging": {"cursors": {"before", "after"}}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Page<T> {
    /// The items.
    pub(super) data: Vec<T>,
    /// Where this page starts and ends (everything fits one page).
    pub(super) paging: Paging,
}

/// A page's cursors.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Paging {
    /// Its cursors.
    pub(super) cursors: Cursors,
}

/// The first and last item of a page; `null` when it is empty.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Cursors {
    /// Before the first item.
    pub(super) before: Option<String>,
    /// After the last item.
    pub(super) after: Option<String>,
}

/// Makes the schema of `$ty` (an untagged enum, or a body read by hand) `anyOf` the named
/// components `$item`s, where utoipa would make an untagged enum `oneOf`: for shapes that may
/// match more than one item.
macro_rules! any_of {
    ($ty:ty, $description:literal, $($item:ty),+ $(,)?) => {
        impl utoipa::__dev::ComposeSchema for $ty {
            fn compose(
                _: Vec<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>,
            ) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::AnyOfBuilder::new()
                    $(.item(utoipa::openapi::Ref::from_schema_name(
                        <$item as utoipa::ToSchema>::name(),
                    )))+
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn schemas(
                schemas: &mut Vec<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>,
            ) {
                $(
                    schemas.push((
                        <$item as utoipa::ToSchema>::name().into(),
                        <$item as utoipa::PartialSchema>::schema(),
                    ));
                    <$item as utoipa::ToSchema>::schemas(schemas);
                )+
            }
        }
    };
}
pub(super) use any_of;

/// A type whose answer `?fields=` narrows, and the members it always keeps.
pub(super) trait Narrowable: ToSchema + Serialize {
    /// Kept whatever the fields named.
    const KEEP: &'static [&'static str];
}

/// An answer narrowed to the fields `?fields=a,b` names (and [`Narrowable::KEEP`]): the
/// schema of `T` with only those members required.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(super) struct Narrowed<T> {
    value: Value,
    #[serde(skip)]
    kind: PhantomData<T>,
}

impl<T: Narrowable> Narrowed<T> {
    /// `object` narrowed to the fields `query` names; all of it without `fields`.
    pub(super) fn new(object: &T, query: &HashMap<String, String>) -> Self {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        let value = match (query.get("fields"), value) {
            (Some(names), Value::Object(all)) => {
                let wanted: Vec<&str> = names
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect();
                Value::Object(
                    all.into_iter()
                        .filter(|(k, _)| {
                            wanted.contains(&k.as_str()) || T::KEEP.contains(&k.as_str())
                        })
                        .collect::<Map<String, Value>>(),
                )
            }
            (_, value) => value,
        };
        Self {
            value,
            kind: PhantomData,
        }
    }

    /// The first of the kept members, as text (a page's cursor).
    pub(super) fn key(&self) -> Option<&str> {
        T::KEEP.first().and_then(|k| self.value[*k].as_str())
    }
}

// The schema of `T` with only the kept members required (utoipa makes every type's schema
// through this trait; a narrowed answer has no type parameters of its own in the document).
impl<T: Narrowable> utoipa::__dev::ComposeSchema for Narrowed<T> {
    fn compose(_: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        match T::schema() {
            RefOr::T(Schema::Object(mut o)) => {
                o.required.retain(|r| T::KEEP.contains(&r.as_str()));
                // Narrowed, it holds only members of `T`.
                o.additional_properties = Some(Box::new(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ));
                RefOr::T(Schema::Object(o))
            }
            other => other,
        }
    }
}

impl<T: Narrowable> ToSchema for Narrowed<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("{}Fields", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(schemas);
    }
}
