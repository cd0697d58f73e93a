//! REST API `/api/v1` (poem-openapi): thin adapters that parse input into domain types, check
//! the permission, run one core service inside one tenant transaction, and map the result.

pub mod account;
pub mod api_keys;
pub mod approvals;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod calendar;
pub mod desk;
pub mod error;
pub mod exports;
pub mod fields;
pub mod imports;
pub mod jobs;
pub mod limits;
pub mod mail_verification;
pub mod mfa;
pub mod notifications;
pub mod objects;
pub mod pipelines;
pub mod plugins;
pub mod portal;
pub mod read_limit;
pub mod record_types;
pub mod records;
pub mod roles;
pub mod rules;
pub mod service_report;
pub mod settings;
pub mod setup_auth;
pub mod tags;
pub mod teams;
pub mod tenant_spec;
pub mod tenant_spec_ext;
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
    (
        account::AccountApi,
        users::UsersApi,
        roles::RolesApi,
        teams::TeamsApi,
        api_keys::ApiKeysApi,
        audit::AuditApi,
        tenant_spec::TenantSpecApi,
        notifications::NotificationsApi,
        jobs::JobsApi,
        settings::SettingsApi,
        rules::RulesApi,
        approvals::ApprovalsApi,
        mfa::MfaApi,
        read_limit::ReadLimitApi,
        mail_verification::MailVerificationApi,
    ),
    (
        records::CustomersApi,
        records::CustomerExtrasApi,
        records::ContactsApi,
        fields::FieldsApi,
        objects::ObjectsApi,
        record_types::RecordTypesApi,
        records::RecordsApi,
        tags::TagsApi,
    ),
    (
        records::OpportunitiesApi,
        pipelines::PipelinesApi,
        records::ActivitiesApi,
        records::ActivityExtrasApi,
        records::TasksApi,
        calendar::CalendarApi,
    ),
    (
        records::TicketsApi,
        desk::DeskApi,
        service_report::ServiceReportApi,
        attachments::AttachmentsApi,
        plugins::PluginsApi,
        backups::BackupsApi,
        imports::ImportsApi,
        exports::ExportsApi,
    ),
);

/// The OpenAPI service mounted at /api/v1.
pub fn service(state: AppState) -> OpenApiService<Apis, ()> {
    let s = || state.clone();
    OpenApiService::new(
        (
            (
                account::AccountApi(s()),
                users::UsersApi(s()),
                roles::RolesApi(s()),
                teams::TeamsApi(s()),
                api_keys::ApiKeysApi(s()),
                audit::AuditApi(s()),
                tenant_spec::TenantSpecApi(s()),
                notifications::NotificationsApi(s()),
                jobs::JobsApi(s()),
                settings::SettingsApi(s()),
                rules::RulesApi(s()),
                approvals::ApprovalsApi(s()),
                mfa::MfaApi(s()),
                read_limit::ReadLimitApi(s()),
                mail_verification::MailVerificationApi(s()),
            ),
            (
                records::CustomersApi(s()),
                records::CustomerExtrasApi(s()),
                records::ContactsApi(s()),
                fields::FieldsApi(s()),
                objects::ObjectsApi(s()),
                record_types::RecordTypesApi(s()),
                records::RecordsApi(s()),
                tags::TagsApi(s()),
            ),
            (
                records::OpportunitiesApi(s()),
                pipelines::PipelinesApi(s()),
                records::ActivitiesApi(s()),
                records::ActivityExtrasApi(s()),
                records::TasksApi(s()),
                calendar::CalendarApi(s()),
            ),
            (
                records::TicketsApi(s()),
                desk::DeskApi(s()),
                service_report::ServiceReportApi(s()),
                attachments::AttachmentsApi(s()),
                plugins::PluginsApi(s()),
                backups::BackupsApi(s()),
                imports::ImportsApi(s()),
                exports::ExportsApi(s()),
            ),
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
