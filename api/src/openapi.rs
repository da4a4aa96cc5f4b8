//! The API's OpenAPI 3.1 document, generated from the code and served at
//! `GET /api/v1/openapi.json`.
//!
//! - Handlers carry `#[utoipa::path]` attributes, request and response types derive
//!   `utoipa::ToSchema`; [`ApiDoc`] lists them.
//! - The specs and statuses of Apps, Databases, Workspaces and Tenants are the custom resources'
//!   own schemars schemas (`slipway_crds`), converted into components ([`crd_components`]), so
//!   the document cannot drift from the CRDs. A Workspace request is its spec's schema without
//!   `owner`, which the API sets.
//! - `list`, `get` and `delete` of a tenant's objects are one generic handler each
//!   (`objects.rs`); [`TenantObjects`] documents them once per kind.
//! - [`CommonResponses`] adds the errors that whole families of operations share (every body
//!   goes through `StrictJson`, every token through `Caller`, every path name through
//!   `paths.rs`, every call to Kubernetes through `From<kube::Error>`), so each handler's
//!   attribute lists only its own outcomes.
//!
//! Unit tests keep it whole: every route `router()` registers is documented with exactly its
//! methods (an undocumented endpoint fails them), every `$ref` resolves, and the schemars
//! schemas convert to utoipa's model without loss. tests/openapi.rs runs schemathesis against
//! the served document.
//!
//! This module is a child of `routes` (declared there) so that it can name the handlers, which
//! stay private to `routes`.

use super::{
    accounts, admin, apps, audit, credentials, databases, health, members, objects, revisions, tenants, workspaces,
};
use crate::error::FieldError;
use axum::http::header;
use schemars::{JsonSchema, generate::SchemaSettings};
use serde_json::{Value, json};
use slipway_crds::{
    App, AppSpec, AppStatus, Database, DatabaseSpec, DatabaseStatus, TenantMember, TenantStatus, Workspace,
    WorkspaceSpec, WorkspaceStatus,
};
use std::{borrow::Cow, sync::LazyLock};
use utoipa::{
    Modify, OpenApi, PartialSchema, ToResponse, ToSchema,
    openapi::{
        ContentBuilder, HeaderBuilder, HttpMethod, OpenApi as Document, Ref, RefOr, Required, ResponseBuilder, Schema,
        path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn},
        response::Response,
        schema::{ArrayBuilder, ObjectBuilder, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
    },
};

/// The problem details of every error answer, for `body = Problem` in handlers' attributes.
pub type Problem = crate::error::Problem<'static>;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// Media type of every error answer (RFC 9457).
const PROBLEM_JSON: &str = "application/problem+json";

/// The document's paths and components; [`document`] is what is served.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        description = "Slipway's REST API: accounts, tenants, and the Apps, Databases and Workspaces in them. \
                       Authenticate with `Authorization: Bearer <access_token>` from `POST /api/v1/auth/login`. \
                       Every error is an RFC 9457 problem details object (`application/problem+json`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        accounts::register,
        accounts::login,
        accounts::refresh,
        accounts::request_password_reset,
        accounts::password_reset_link,
        accounts::confirm_password_reset,
        accounts::logout,
        accounts::logout_all,
        accounts::verify,
        accounts::verify_link,
        accounts::resend_verification,
        accounts::me,
        accounts::update_me,
        accounts::delete_me,
        accounts::confirm_email_change,
        accounts::email_change_link,
        admin::list_users,
        admin::get_user,
        admin::set_entitlements,
        admin::suspend,
        admin::reactivate,
        admin::list_tenants,
        admin::change_plan,
        audit::everything,
        audit::tenant,
        members::list,
        members::change_role,
        members::remove,
        members::invite,
        members::accept,
        members::accept_link,
        tenants::create,
        tenants::list,
        tenants::get,
        tenants::delete,
        apps::create,
        apps::update,
        apps::scale,
        revisions::list,
        revisions::rollback,
        databases::create,
        credentials::get,
        workspaces::create,
        workspaces::update,
        health::healthz,
        health::readyz,
        openapi_json,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&TenantObjects, &CommonResponses, &BearerScheme),
    tags(
        (name = "auth", description = "Registration, login, sessions, verification and password reset"),
        (name = "me", description = "The caller's account"),
        (name = "tenants", description = "Tenants: isolated namespaces on a plan"),
        (name = "apps", description = "Apps: a container image with replicas behind a Service"),
        (name = "databases", description = "Databases: an engine instance with its own volume and credentials"),
        (name = "workspaces", description = "Workspaces: personal containers reached over SSH"),
        (name = "members", description = "A tenant's people: invitations, roles, leaving"),
        (name = "audit", description = "Who changed what: a tenant's trail, or everyone's for platform admins"),
        (name = "admin", description = "Platform admins: accounts, entitlements, suspension, plans"),
        (name = "meta", description = "Health probes and this document"),
    )
)]
pub struct ApiDoc;

/// The served document: [`ApiDoc`] as JSON, with two facts utoipa's model cannot state:
/// every header it names is required (each is always sent: `Location` on 201, `Cache-Control`
/// on credentials, `Retry-After` on 429, `WWW-Authenticate` on 401), and request bodies
/// admit no unknown fields ([`close_request_bodies`]).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    require_headers(&mut doc);
    close_request_bodies(&mut doc);
    doc
}

/// Marks every object schema that a request body uses, directly or through references,
/// `additionalProperties: false`: every body goes through `StrictJson`, which refuses unknown
/// fields at any depth (422). Those schemas describe exact structs, so responses that share
/// them have no other fields either.
fn close_request_bodies(doc: &mut Value) {
    let mut pending = Vec::new();
    for item in doc["paths"].as_object_mut().expect("the document has paths").values_mut() {
        for operation in item.as_object_mut().expect("a path item is an object").values_mut() {
            if let Some(body) = operation.get_mut("requestBody") {
                close(body, &mut pending);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(reference) = pending.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let pointer = reference.strip_prefix('#').expect("references are local");
        let schema = doc.pointer_mut(pointer).unwrap_or_else(|| panic!("{reference} does not resolve"));
        close(schema, &mut pending);
    }
}

/// Closes the object schemas in `value` (see [`close_request_bodies`]), collecting the
/// references it follows into `pending`.
fn close(value: &mut Value, pending: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                pending.push(reference.clone());
            }
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(|v| close(v, pending));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| close(v, pending)),
        _ => {}
    }
}

/// Marks every response header of `value` (a document or part of one) `required: true`.
fn require_headers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(headers)) = map.get_mut("headers") {
                for header in headers.values_mut() {
                    if let Value::Object(h) = header {
                        h.insert("required".into(), Value::Bool(true));
                    }
                }
            }
            map.values_mut().for_each(require_headers);
        }
        Value::Array(items) => items.iter_mut().for_each(require_headers),
        _ => {}
    }
}

/// The document, serialized once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// `GET /api/v1/openapi.json` → this API's OpenAPI 3.1 document (no authentication).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

/// The component name schemars gives `T` (and under which [`crd_components`] registers it).
fn crd_name<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

/// A reference to the component of the custom resource type `T` (a spec or a status): for
/// `#[schema(schema_with = ...)]` on fields of such a type.
pub fn crd<T: JsonSchema>() -> Ref {
    Ref::from_schema_name(crd_name::<T>())
}

/// A list of the tenant's people besides its owners (`Tenant.spec.members`): for
/// `#[schema(schema_with = ...)]`.
pub fn tenant_members() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new().items(crd::<TenantMember>()).build()
}

/// The component of a Workspace's spec as clients send it (`workspaces.rs`'s
/// `WorkspaceRequest`).
const WORKSPACE_REQUEST: &str = "WorkspaceRequest";

/// A reference to the Workspace request spec: for `#[schema(schema_with = ...)]`.
pub fn workspace_request() -> Ref {
    Ref::from_schema_name(WORKSPACE_REQUEST)
}

/// schemars' JSON Schema (2020-12, the dialect of OpenAPI 3.1) of the custom resources' specs
/// and statuses and of everything they use, as `(component name, JSON Schema)`, referring to
/// each other as `#/components/schemas/<name>`; plus [`WORKSPACE_REQUEST`], the Workspace spec
/// without `owner`.
fn crd_json_schemas() -> Vec<(String, Value)> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    // kube's derive inlines the specs and statuses (a CRD has no definitions): name them here.
    let mut schemas = Vec::new();
    let mut root = |name: String, schema: schemars::Schema| {
        let schema = schema.to_value();
        if schema.get("$ref").is_none() {
            schemas.push((name, schema));
        }
    };
    root(crd_name::<AppSpec>(), generator.subschema_for::<AppSpec>());
    root(crd_name::<AppStatus>(), generator.subschema_for::<AppStatus>());
    root(crd_name::<DatabaseSpec>(), generator.subschema_for::<DatabaseSpec>());
    root(crd_name::<DatabaseStatus>(), generator.subschema_for::<DatabaseStatus>());
    root(crd_name::<WorkspaceSpec>(), generator.subschema_for::<WorkspaceSpec>());
    root(crd_name::<WorkspaceStatus>(), generator.subschema_for::<WorkspaceStatus>());
    root(crd_name::<TenantStatus>(), generator.subschema_for::<TenantStatus>());
    root(crd_name::<TenantMember>(), generator.subschema_for::<TenantMember>());
    schemas.extend(generator.take_definitions(true));
    let workspace = schemas
        .iter()
        .find(|(name, _)| *name == crd_name::<WorkspaceSpec>())
        .map(|(_, schema)| schema.clone())
        .expect("the Workspace spec is among the schemas");
    schemas.push((WORKSPACE_REQUEST.into(), without_owner(workspace)));
    schemas
}

/// The Workspace spec's schema without `owner` (the API sets it to the caller): what
/// `POST`/`PUT .../workspaces` take as `spec`.
fn without_owner(mut spec: Value) -> Value {
    let object = spec.as_object_mut().expect("a struct's schema is an object");
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.remove("owner");
    }
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|r| r != "owner");
    }
    object.insert(
        "description".into(),
        json!(
            "A Workspace's spec as clients send it: the custom resource's spec without `owner`, which the API \
               sets to the caller."
        ),
    );
    spec
}

/// Rewrites what utoipa's schema model cannot hold into what it can, meaning the same:
/// - `const: v` is `enum: [v]` (schemars writes documented enum variants as `oneOf` of `const`s);
/// - Kubernetes' `x-kubernetes-int-or-string: true` without a `type` (a `Quantity`) is
///   `type: [number, string]`: what `Quantity`'s deserializer accepts (and the API reads with it);
/// - a `$ref` with keywords beside it other than `description` (e.g. a field's `default`) is
///   `allOf: [{$ref}]` with those keywords.
fn normalize(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.remove("const") {
                map.insert("enum".into(), Value::Array(vec![v]));
            }
            if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !map.contains_key("type") {
                map.insert("type".into(), json!(["number", "string"]));
            }
            if map.contains_key("$ref") && map.keys().any(|k| !["$ref", "description", "summary"].contains(&k.as_str()))
            {
                let reference = map.remove("$ref").expect("checked");
                map.insert("allOf".into(), json!([{ "$ref": reference }]));
            }
            map.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// The custom resources' schemas as utoipa components (see [`crd_json_schemas`] and
/// [`normalize`]). A unit test checks the conversion loses nothing.
pub fn crd_components() -> Vec<(String, RefOr<Schema>)> {
    crd_json_schemas()
        .into_iter()
        .map(|(name, mut schema)| {
            normalize(&mut schema);
            let converted = serde_json::from_value(schema)
                .unwrap_or_else(|e| panic!("the schema of {name} does not convert to OpenAPI: {e}"));
            (name, converted)
        })
        .collect()
}

/// `GET .../apps/{app}` and friends answer `objects::View<App>`.
pub type AppView = objects::View<App>;
/// `GET .../databases/{db}` and friends answer `objects::View<Database>`.
pub type DatabaseView = objects::View<Database>;
/// `GET .../workspaces/{ws}` and friends answer `objects::View<Workspace>`.
pub type WorkspaceView = objects::View<Workspace>;

impl<K> PartialSchema for objects::View<K>
where
    K: objects::TenantObject,
    K::Spec: JsonSchema,
    K::Status: JsonSchema,
{
    fn schema() -> RefOr<Schema> {
        let kind = K::kind(&());
        let string = |description: &str| ObjectBuilder::new().schema_type(Type::String).description(Some(description));
        ObjectBuilder::new()
            .description(Some(format!("{kind} as the API shows it: the custom resource's spec and status")))
            .property("name", string(&format!("The {kind}'s name, unique in its tenant")))
            .property("tenant", string("The tenant it belongs to"))
            .property("spec", crd::<K::Spec>())
            .property("status", crd::<K::Status>())
            .required("name")
            .required("tenant")
            .required("spec")
            .required("status")
            .into()
    }
}

impl<K> ToSchema for objects::View<K>
where
    K: objects::TenantObject,
    K::Spec: JsonSchema,
    K::Status: JsonSchema,
{
    /// The kind's name, e.g. `App`.
    fn name() -> Cow<'static, str> {
        K::kind(&())
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend(crd_components());
    }
}

/// What names of tenants and objects look like (`slipway_policies::rules::names::check_label`);
/// the handlers' attributes spell it out, a unit test compares.
const NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A path parameter naming a tenant or an object (a DNS label; others answer 400).
fn name_parameter(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    let label = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN))
        .max_length(Some(slipway_policies::rules::names::MAX_LABEL));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(label))
        .build()
}

/// A JSON response of `schema`.
fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

/// A problem-details response.
fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

/// Documents `objects::{list, get, delete}` for the kind `K`, whose objects are
/// `.../{plural}/{param}`: the routes' parameter name.
fn document_objects<K>(doc: &mut Document, tag: &str, param: &str)
where
    K: objects::TenantObject,
    K::Spec: JsonSchema,
    K::Status: JsonSchema,
{
    let kind = K::kind(&());
    let lower = kind.to_lowercase();
    let plural = K::plural(&());
    let collection = format!("/api/v1/tenants/{{tenant}}/{plural}");
    let item = format!("{collection}/{{{param}}}");
    let tenant = name_parameter("tenant", "The tenant's name");
    let name = name_parameter(param, &format!("The {lower}'s name"));
    let view = Ref::from_schema_name(objects::View::<K>::name());
    let not_found = |what: &str| problem_response(&format!("No such {what}, or the caller is not a member"));
    let operation = |id: String, summary: String| {
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(id))
            .summary(Some(summary))
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .parameter(tenant.clone())
    };
    let unverified = || problem_response("The caller's address is not verified yet, or Kubernetes RBAC refuses");
    let list: Operation = operation(format!("list_{plural}"), format!("The tenant's {plural}"))
        .response(
            "200",
            json_response(
                &format!("The tenant's {plural}"),
                ObjectBuilder::new().property("items", ArrayBuilder::new().items(view.clone())).required("items"),
            ),
        )
        .response("403", unverified())
        .response("404", not_found("tenant"))
        .build();
    let get: Operation = operation(format!("get_{lower}"), format!("One {lower}"))
        .parameter(name.clone())
        .response("200", json_response(&format!("The {lower}"), view))
        .response("403", unverified())
        .response("404", not_found(&format!("tenant or {lower}")))
        .build();
    let delete: Operation = operation(format!("delete_{lower}"), format!("Deletes a {lower}"))
        .parameter(name)
        .response("204", ResponseBuilder::new().description(format!("The {lower} is being deleted")).build())
        .response("403", unverified())
        .response("404", not_found(&format!("tenant or {lower}")))
        .build();
    doc.paths.add_path_operation(&collection, vec![HttpMethod::Get], list);
    doc.paths.add_path_operation(&item, vec![HttpMethod::Get], get);
    doc.paths.add_path_operation(&item, vec![HttpMethod::Delete], delete);
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(objects::View::<K>::name().into_owned(), objects::View::<K>::schema());
}

/// Documents the generic handlers of `objects.rs` for each kind, and registers the custom
/// resources' components.
struct TenantObjects;

impl Modify for TenantObjects {
    fn modify(&self, doc: &mut Document) {
        // The parameter names of routes/mod.rs (a unit test compares the paths).
        document_objects::<App>(doc, "apps", "app");
        document_objects::<Database>(doc, "databases", "db");
        document_objects::<Workspace>(doc, "workspaces", "ws");
        let components = doc.components.get_or_insert_with(Default::default);
        components.schemas.extend(crd_components());
    }
}

/// The responses that follow from how every handler is built, added to each operation that
/// does not document that status itself (its own description then covers these cases too):
///
/// | operations | status | why |
/// | --- | --- | --- |
/// | all | 500 | a bug or an outage (`ApiError::Internal`, a panic caught by the router) |
/// | with a body (`StrictJson`) | 400, 413, 415, 422 | not JSON, too large, not `application/json`, a wrong field |
/// | with the bearer scheme (`Caller`) | 401 (`WWW-Authenticate`) | no, an expired or a revoked token |
/// | with path parameters (`paths.rs`) | 400 | a segment that is not a DNS label |
/// | under `/api/v1/tenants` (Kubernetes calls) | 429 (`Retry-After`), 502 | the API server throttles, or fails |
struct CommonResponses;

impl CommonResponses {
    fn add(&self, path: &str, operation: &mut Operation) {
        let has_body = operation.request_body.is_some();
        let has_security = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let has_path_parameters = operation
            .parameters
            .as_ref()
            .is_some_and(|ps| ps.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path)));
        let calls_kubernetes = path.starts_with("/api/v1/tenants");
        let mut add = |status: &str, response: &str| {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
        };
        add("500", "InternalServerError");
        if has_body {
            add("400", "BadRequest");
            add("413", "PayloadTooLarge");
            add("415", "UnsupportedMediaType");
            add("422", "UnprocessableEntity");
        }
        if has_path_parameters {
            add("400", "BadRequest");
        }
        if has_security {
            add("401", "Unauthorized");
        }
        if calls_kubernetes {
            add("429", "TooManyRequests");
            add("502", "BadGateway");
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        for (path, item) in doc.paths.paths.iter_mut() {
            for operation in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                self.add(path, operation);
            }
        }
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, response) in [
            ("InternalServerError", problem_response("A bug or an outage; the cause is logged, never sent")),
            (
                "BadRequest",
                problem_response("The body is not JSON, or a name in the path is not a DNS label (RFC 1123)"),
            ),
            ("PayloadTooLarge", problem_response("The body is larger than the API accepts")),
            ("UnsupportedMediaType", problem_response("The body is not sent as `Content-Type: application/json`")),
            (
                "UnprocessableEntity",
                problem_response("A field is missing, of the wrong type, unknown, or invalid; `errors` lists each one"),
            ),
            ("BadGateway", problem_response("The Kubernetes API failed or is unreachable; try again later")),
        ] {
            components.responses.insert(name.into(), RefOr::T(response));
        }
        for (name, response) in [TooManyRequests::response(), Unauthorized::response()] {
            components.responses.insert(name.into(), response);
        }
    }
}

/// The bearer-JWT security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("An access token from POST /api/v1/auth/login or /api/v1/auth/refresh"))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The 429 answer (`Retry-After`), for `response = TooManyRequests` in handlers' attributes.
pub struct TooManyRequests;

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
            .description(Some("Seconds to wait before asking again"))
            .build();
        let mut response = problem_response(
            "Too many requests: the caller asked too often, or the Kubernetes API asked the API to slow down",
        );
        response.headers.insert("Retry-After".into(), retry_after);
        ("TooManyRequests", RefOr::T(response))
    }
}

/// The 401 answer (`WWW-Authenticate: Bearer`), for `response = Unauthorized` in handlers'
/// attributes.
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let www_authenticate = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["Bearer"])))
            .description(Some("`Bearer`"))
            .build();
        let mut response = problem_response(
            "No access token, or one that is malformed, expired, revoked, or of a deleted account; or wrong \
             credentials",
        );
        response.headers.insert("WWW-Authenticate".into(), www_authenticate);
        ("Unauthorized", RefOr::T(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Every route `router()` registers, as `path → methods`, read from routes/mod.rs: each
    /// `.route("PATH", get(..).post(..)...)` of the `/api/v1` router (`let v1 = ...;`) under
    /// `/api/v1`, the others at the root.
    fn registered_routes() -> BTreeMap<String, BTreeSet<String>> {
        let source = include_str!("routes/mod.rs");
        let (v1, root) = source.split_once(".nest(\"/api/v1\", v1)").expect("router() nests v1 under /api/v1");
        let mut routes = BTreeMap::new();
        for (prefix, part) in [("/api/v1", v1), ("", root)] {
            for call in part.split(".route(").skip(1) {
                let (path, rest) = call.trim_start().strip_prefix('"').unwrap().split_once('"').unwrap();
                // The method router: up to the parenthesis closing `.route(`.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .expect("a closed .route(...)")
                    .0;
                let mut methods = BTreeSet::new();
                let (mut depth, mut word) = (0, String::new());
                for c in rest[..end].chars() {
                    match c {
                        '(' => {
                            if depth == 0 {
                                let method = word.trim().trim_start_matches(',').trim().trim_start_matches('.');
                                assert!(
                                    ["get", "post", "put", "patch", "delete"].contains(&method),
                                    "{path}: teach this test the method router `{method}`"
                                );
                                methods.insert(method.to_string());
                            }
                            depth += 1;
                            word.clear();
                        }
                        ')' => depth -= 1,
                        c if depth == 0 => word.push(c),
                        _ => {}
                    }
                }
                routes.insert(format!("{prefix}{path}"), methods);
            }
        }
        routes
    }

    /// The document's operations, as `path → methods`.
    fn documented_routes(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
        doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, item)| (path.clone(), item.as_object().unwrap().keys().cloned().collect()))
            .collect()
    }

    #[test]
    fn every_route_is_documented_with_its_methods_and_nothing_else() {
        let registered = registered_routes();
        assert!(registered.len() > 20, "the parser found the routes: {registered:?}");
        assert_eq!(registered["/api/v1/me"], ["delete", "get", "patch"].map(String::from).into());
        assert_eq!(documented_routes(&document()), registered);
    }

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50);
        for r in found {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn it_is_openapi_3_1_with_bearer_auth_and_problem_details() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An access token from POST /api/v1/auth/login or /api/v1/auth/refresh"})
        );
        let problem = &doc["components"]["schemas"]["Problem"];
        let mut required: Vec<_> =
            problem["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        required.sort_unstable();
        assert_eq!(required, ["detail", "status", "title", "type"]);
        assert!(problem["properties"]["errors"].is_object());
        let too_many = &doc["components"]["responses"]["TooManyRequests"];
        assert_eq!(too_many["headers"]["Retry-After"]["required"], true);
        assert!(too_many["content"]["application/problem+json"].is_object());
        // Every operation under /api/v1/tenants needs the token and documents 401, 429 and 502.
        let create = &doc["paths"]["/api/v1/tenants/{tenant}/apps"]["post"];
        assert_eq!(create["security"], json!([{"bearer": []}]));
        for status in ["400", "401", "403", "404", "409", "413", "415", "422", "429", "500", "502"] {
            assert!(create["responses"][status].is_object(), "POST apps documents {status}");
        }
        assert!(doc["paths"]["/api/v1/auth/register"]["post"].get("security").is_none());
    }

    #[test]
    fn crd_schemas_convert_without_loss() {
        for (name, mut schema) in crd_json_schemas() {
            normalize(&mut schema);
            let converted: RefOr<Schema> = serde_json::from_value(schema.clone()).unwrap();
            assert_eq!(serde_json::to_value(&converted).unwrap(), schema, "{name} lost something");
        }
    }

    #[test]
    fn specs_are_the_custom_resources_schemas() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let app = &schemas[crd_name::<AppSpec>()];
        assert_eq!(app["required"], json!(["image"]));
        assert_eq!(app["properties"]["replicas"]["maximum"], 1000);
        assert_eq!(
            schemas["App"]["properties"]["spec"]["$ref"],
            format!("#/components/schemas/{}", crd_name::<AppSpec>())
        );
        let request = &schemas[WORKSPACE_REQUEST];
        assert!(request["properties"].get("owner").is_none());
        assert_eq!(request["required"], json!(["sshKeys"]));
        assert!(schemas[crd_name::<WorkspaceSpec>()]["properties"]["owner"].is_object());
    }

    #[test]
    fn names_are_documented_as_the_policies_check_them() {
        use slipway_crds::Kind;
        use slipway_policies::rules::names::{MAX_LABEL, MAX_TENANT_NAME, max_name};
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for (schema, max) in [
            ("CreateTenant", MAX_TENANT_NAME),
            ("CreateApp", max_name(Kind::App)),
            ("CreateDatabase", max_name(Kind::Database)),
            ("CreateWorkspace", max_name(Kind::Workspace)),
        ] {
            let name = &schemas[schema]["properties"]["name"];
            assert_eq!(name["pattern"], NAME_PATTERN, "{schema}");
            assert_eq!(name["maxLength"], max, "{schema}");
        }
        let mut parameters = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    // `{user}` is an account id or an address, not a name (see `paths::MemberPath`).
                    if parameter["in"] == "path" && parameter["name"] != "user" {
                        assert_eq!(parameter["schema"]["pattern"], NAME_PATTERN, "{parameter}");
                        assert_eq!(parameter["schema"]["maxLength"], MAX_LABEL, "{parameter}");
                        parameters += 1;
                    }
                }
            }
        }
        assert!(parameters > 20);
    }

    #[test]
    fn request_bodies_admit_no_unknown_fields() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for closed in ["LoginRequest", "CreateApp", "AppSpec", WORKSPACE_REQUEST] {
            assert_eq!(schemas[closed]["additionalProperties"], false, "{closed}");
        }
        // At any depth: an App's environment variables are inlined in its spec.
        assert_eq!(schemas["AppSpec"]["properties"]["env"]["items"]["additionalProperties"], false);
        // Response-only schemas are left as they are.
        assert!(schemas["MeView"].get("additionalProperties").is_none());
    }

    #[test]
    fn views_document_what_they_serialize() {
        let spec: AppSpec = serde_json::from_value(json!({"image": "nginx"})).unwrap();
        let view = serde_json::to_value(objects::View::new(App::new("web", spec), "acme")).unwrap();
        let documented: BTreeSet<_> = AppView::schema_properties().into_iter().collect();
        let serialized: BTreeSet<_> = view.as_object().unwrap().keys().cloned().collect();
        assert_eq!(documented, serialized);
    }

    impl AppView {
        /// The property names the schema of a view documents.
        fn schema_properties() -> Vec<String> {
            let schema = serde_json::to_value(<Self as PartialSchema>::schema()).unwrap();
            schema["properties"].as_object().unwrap().keys().cloned().collect()
        }
    }
}
