//! REST API `/api/v1` (poem-openapi): thin adapters that parse input into domain types, check
//! the permission, run one core service inside one tenant transaction, and map the result.

pub mod account;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod error;
pub mod fields;
pub mod pipelines;
pub mod records;
pub mod roles;
pub mod tags;
pub mod teams;
pub mod tenant_spec;
pub mod users;

use crate::server::AppState;
use error::ApiResult;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApiService, Tags};

/// Groups in the OpenAPI document.
#[derive(Tags)]
pub enum Tag {
    /// Sign-up, login, logout and the caller's own account.
    Account,
    /// Staff users of the company.
    Users,
    /// Roles, permissions and record scopes.
    Roles,
    /// Teams of users.
    Teams,
    /// API keys for integrations.
    ApiKeys,
    /// The security audit log.
    Audit,
    /// Customers, contacts and tags on the record engine.
    Records,
    /// Custom fields of objects.
    Fields,
}

/// 201 with the created resource.
#[derive(ApiResponse)]
pub enum Created<T: ToJSON> {
    #[oai(status = 201)]
    Created(Json<T>),
}

/// 204, nothing to return.
#[derive(ApiResponse)]
pub enum NoContent {
    #[oai(status = 204)]
    NoContent,
}

/// The APIs of /api/v1.
pub type Apis = (
    account::AccountApi,
    users::UsersApi,
    roles::RolesApi,
    teams::TeamsApi,
    api_keys::ApiKeysApi,
    audit::AuditApi,
    records::CustomersApi,
    records::CustomerExtrasApi,
    records::ContactsApi,
    records::OpportunitiesApi,
    pipelines::PipelinesApi,
    fields::FieldsApi,
    tags::TagsApi,
    tenant_spec::TenantSpecApi,
);

/// The OpenAPI service mounted at /api/v1.
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            account::AccountApi(state.clone()),
            users::UsersApi(state.clone()),
            roles::RolesApi(state.clone()),
            teams::TeamsApi(state.clone()),
            api_keys::ApiKeysApi(state.clone()),
            audit::AuditApi(state.clone()),
            records::CustomersApi(state.clone()),
            records::CustomerExtrasApi(state.clone()),
            records::ContactsApi(state.clone()),
            records::OpportunitiesApi(state.clone()),
            pipelines::PipelinesApi(state.clone()),
            fields::FieldsApi(state.clone()),
            tags::TagsApi(state.clone()),
            tenant_spec::TenantSpecApi(state),
        ),
        "TC CRM",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant CRM and service desk. Authenticate with `Authorization: Bearer <token>` \
         (a session token from POST /auth/login or an API key). Errors are RFC 9457 \
         application/problem+json with a stable `code`.",
    )
    .server("/api/v1")
}

/// Unwraps a value a [`crm_core::domain::Validator`] already vouched for.
pub fn checked<T>(value: Option<T>) -> ApiResult<T> {
    value.ok_or_else(|| crm_core::Error::internal("validated value missing").into())
}
