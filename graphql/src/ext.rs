//! `ext`: the endpoints of the tenant's enabled plugin installs as fields. GET endpoints sit
//! under `Query.ext` (type `Ext`), the others under `Mutation.ext` (type `ExtMutation`), each
//! named `<install>_<method>_<path>` (`leadImport_post_leads`), taking the raw `body` and
//! `query` string and returning the plugin's `PluginResponse`. A resolver goes through the
//! same door as REST's `/api/v1/ext/{install}/{path}`: `crm_plugins::endpoints::open` checks
//! the install, the endpoint and its declared permission with the session's caller in the
//! request's transaction, and `endpoints::call` runs the plugin; nothing is checked here.
//! Its type names (`Ext`, `ExtMutation`, `PluginResponse`, `PluginHeader`) are reserved in
//! `model::FIXED_TYPES`, and `ext` among the query fields, whether a tenant has plugins or not.

use crate::names;
use crate::resolve::{arg, session, settled_field};
use crate::session::Session;
use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputValue, Object, ResolverContext, SchemaBuilder, TypeRef,
};
use async_graphql::ErrorExtensions;
use crm_core::Error;
use crm_plugins::endpoints;
use crm_plugins::installs::Install;
use crm_plugins::manifest::Manifest;
use crm_plugins::{PluginHost, RequestIn, ResponseOut};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// One endpoint of one install, named for GraphQL.
#[derive(Debug, Clone)]
pub struct ExtEndpoint {
    pub gql: String,
    pub install: Uuid,
    pub method: String,
    pub path: String,
    pub description: String,
}

/// The endpoints of a tenant's enabled installs: GET ones are queries, the rest mutations.
#[derive(Debug, Clone, Default)]
pub struct ExtModel {
    pub queries: Vec<ExtEndpoint>,
    pub mutations: Vec<ExtEndpoint>,
}

/// `lead-import` → `leadImport`, `leads/import` → `leadsImport`.
fn lower_camel(raw: &str) -> String {
    let mut out = names::pascal(raw);
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    out
}

/// `wanted` if valid and free, else `wanted_2`, `wanted_3`, … (two installs of one plugin).
fn claim(taken: &mut HashSet<String>, wanted: String) -> String {
    let base = if names::is_name(&wanted) {
        wanted
    } else {
        format!("endpoint_{}", names::pascal(&wanted))
    };
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

impl ExtModel {
    /// Names the endpoints of `served` (installs oldest first, so names are stable).
    pub fn build(served: &[(Install, Manifest)]) -> ExtModel {
        let mut model = ExtModel::default();
        let (mut queries, mut mutations) = (HashSet::new(), HashSet::new());
        for (install, manifest) in served {
            for e in &manifest.endpoints {
                let method = e.method.to_ascii_uppercase();
                let is_query = method == "GET";
                let taken = if is_query {
                    &mut queries
                } else {
                    &mut mutations
                };
                let wanted = format!(
                    "{}_{}_{}",
                    lower_camel(&install.name),
                    method.to_ascii_lowercase(),
                    lower_camel(&e.path)
                );
                let endpoint = ExtEndpoint {
                    gql: claim(taken, wanted),
                    install: install.id,
                    description: format!(
                        "{} — {method} /api/v1/ext/{}/{} of the plugin {} {}; needs the permission {}.",
                        e.summary, install.id, e.path, install.name, install.version, e.permission
                    ),
                    method,
                    path: e.path.clone(),
                };
                if is_query {
                    model.queries.push(endpoint);
                } else {
                    model.mutations.push(endpoint);
                }
            }
        }
        model
    }

    /// How many fields it adds, for the schema cache's weight.
    pub fn len(&self) -> usize {
        self.queries.len() + self.mutations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object `ext` resolves to: its fields need nothing of it.
struct ExtRoot;

/// A plugin's answer as `PluginResponse` reads it.
struct Answer(ResponseOut);

/// One response header as `PluginHeader` reads it.
struct Header(String, String);

fn answer_of<'a>(ctx: &'a ResolverContext<'_>) -> async_graphql::Result<&'a ResponseOut> {
    Ok(&ctx.parent_value.try_downcast_ref::<Answer>()?.0)
}

fn header_of<'a>(ctx: &'a ResolverContext<'_>) -> async_graphql::Result<&'a Header> {
    ctx.parent_value.try_downcast_ref::<Header>()
}

fn response_types(builder: SchemaBuilder) -> SchemaBuilder {
    let response = Object::new("PluginResponse")
        .description("What a plugin endpoint answered.")
        .field(Field::new(
            "status",
            TypeRef::named_nn(TypeRef::INT),
            |ctx| {
                FieldFuture::new(async move {
                    Ok(Some(FieldValue::value(i32::from(answer_of(&ctx)?.status))))
                })
            },
        ))
        .field(Field::new(
            "headers",
            TypeRef::named_nn_list_nn("PluginHeader"),
            |ctx| {
                FieldFuture::new(async move {
                    let headers = answer_of(&ctx)?
                        .headers
                        .iter()
                        .map(|(n, v)| FieldValue::owned_any(Header(n.clone(), v.clone())));
                    Ok(Some(FieldValue::list(headers)))
                })
            },
        ))
        .field(
            Field::new("body", TypeRef::named_nn(TypeRef::STRING), |ctx| {
                FieldFuture::new(async move {
                    let body = String::from_utf8_lossy(&answer_of(&ctx)?.body).into_owned();
                    Ok(Some(FieldValue::value(body)))
                })
            })
            .description("The body as UTF-8 text (invalid bytes replaced)."),
        );
    let header = Object::new("PluginHeader")
        .field(Field::new(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| {
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::value(header_of(&ctx)?.0.clone()))) },
                )
            },
        ))
        .field(Field::new(
            "value",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| {
                FieldFuture::new(
                    async move { Ok(Some(FieldValue::value(header_of(&ctx)?.1.clone()))) },
                )
            },
        ));
    builder.register(response).register(header)
}

fn plugins(session: &Session) -> async_graphql::Result<Arc<PluginHost>> {
    session.plugins.clone().ok_or_else(|| {
        session.fail(Error::internal(
            "this GraphQL service runs no plugins, yet its schema names plugin endpoints",
        ))
    })
}

/// A string argument's bytes, empty when left out.
fn string_arg(ctx: &ResolverContext<'_>, name: &str) -> async_graphql::Result<String> {
    Ok(match arg(ctx, name) {
        Some(v) => v.string()?.to_owned(),
        None => String::new(),
    })
}

/// Calls one endpoint as the session's caller.
async fn call(
    ctx: &ResolverContext<'_>,
    install: Uuid,
    method: String,
    path: String,
) -> async_graphql::Result<Option<FieldValue<'static>>> {
    let session = session(ctx)?;
    let host = plugins(&session)?;
    let body = string_arg(ctx, "body")?.into_bytes();
    let query = string_arg(ctx, "query")?;
    let opened = {
        let mut tx = session.tx().await.map_err(|e| session.fail(e))?;
        session.count_call();
        endpoints::open(&host, &mut tx, &session.caller, install, &method, &path)
            .await
            .map_err(|e| session.fail(e))?
    };
    // REST commits its transaction before the plugin runs; here the request's transaction
    // stays open until the whole GraphQL request ends, and is not committed early (the
    // mutations before this one would be committed with it, half a request). That is safe
    // because the plugin never uses this transaction: its host calls and its run log open
    // transactions of their own. The cost: it holds a connection while the plugin runs,
    // and a plugin writing a row this request already changed waits for it until the
    // plugin's deadline (plugin.timeout).
    let request = RequestIn {
        method,
        path,
        query,
        headers: Vec::new(),
        body,
        user_id: session
            .caller
            .user_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
    };
    let answer = endpoints::call(
        &host,
        &session.ctx.tenant,
        opened,
        request,
        session.ctx.meta.request_id.clone(),
    )
    .await
    .map_err(|e| session.fail(e))?;
    match answer {
        Ok(response) => Ok(Some(FieldValue::owned_any(Answer(response)))),
        Err(e) => {
            let code = e.code().to_owned();
            Err(async_graphql::Error::new(e.message()).extend_with(|_, x| x.set("code", code)))
        }
    }
}

fn endpoint_field(e: &ExtEndpoint) -> Field {
    let (install, method, path) = (e.install, e.method.clone(), e.path.clone());
    settled_field(
        e.gql.clone(),
        TypeRef::named("PluginResponse"),
        move |ctx| Box::pin(call(ctx, install, method.clone(), path.clone())),
    )
    .argument(
        InputValue::new("body", TypeRef::named(TypeRef::STRING))
            .description("The request body, passed to the plugin as it is."),
    )
    .argument(
        InputValue::new("query", TypeRef::named(TypeRef::STRING))
            .description("The query string without '?' (a=1&b=2)."),
    )
    .description(e.description.clone())
}

fn ext_type(name: &str, endpoints: &[ExtEndpoint]) -> Object {
    endpoints
        .iter()
        .fold(Object::new(name), |t, e| t.field(endpoint_field(e)))
        .description("The endpoints of the company's plugins.")
}

fn ext_field(type_name: &str, description: &str) -> Field {
    Field::new("ext", TypeRef::named_nn(type_name), |_| {
        FieldFuture::new(async { Ok(Some(FieldValue::owned_any(ExtRoot))) })
    })
    .description(description)
}

/// Adds `ext` to `query` and `mutation` (each only when it has endpoints) and their types.
pub fn register(
    mut builder: SchemaBuilder,
    mut query: Object,
    mut mutation: Object,
    ext: &ExtModel,
) -> (SchemaBuilder, Object, Object) {
    if ext.is_empty() {
        return (builder, query, mutation);
    }
    builder = response_types(builder);
    if !ext.queries.is_empty() {
        builder = builder.register(ext_type("Ext", &ext.queries));
        query = query.field(ext_field(
            "Ext",
            "The GET endpoints of the company's plugins.",
        ));
    }
    if !ext.mutations.is_empty() {
        builder = builder.register(ext_type("ExtMutation", &ext.mutations));
        mutation = mutation.field(ext_field(
            "ExtMutation",
            "The POST, PUT, PATCH and DELETE endpoints of the company's plugins. The fields \
             of one `ext` run side by side; select `ext` twice (with aliases) to run them in \
             order.",
        ));
    }
    (builder, query, mutation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::dynamic::Schema;
    use crm_plugins::manifest::Endpoint;

    fn install(name: &str) -> Install {
        Install {
            id: Uuid::now_v7(),
            package_id: Uuid::now_v7(),
            name: name.into(),
            version: "1.0.0".into(),
            wit_version: "1.0".into(),
            enabled: true,
            config: serde_json::json!({}),
            secret_keys: Vec::new(),
            grants: Vec::new(),
            allowed_hosts: Vec::new(),
            events: Vec::new(),
            limits: Default::default(),
            consecutive_failures: 0,
            disabled_reason: None,
            created_by: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn manifest(name: &str, endpoints: &[(&str, &str)]) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1.0.0".into(),
            description: String::new(),
            events: Vec::new(),
            endpoints: endpoints
                .iter()
                .map(|(method, path)| Endpoint {
                    method: (*method).into(),
                    path: (*path).into(),
                    permission: "customers:read".into(),
                    summary: "s".into(),
                })
                .collect(),
            config_schema: String::new(),
            permissions: Vec::new(),
        }
    }

    fn sdl_of(ext: &ExtModel) -> String {
        let me = Field::new("me", TypeRef::named(TypeRef::STRING), |_| {
            FieldFuture::new(async { Ok(None::<FieldValue>) })
        });
        let query = Object::new("Query").field(me);
        let mutation = Object::new("Mutation").field(Field::new(
            "noop",
            TypeRef::named(TypeRef::STRING),
            |_| FieldFuture::new(async { Ok(None::<FieldValue>) }),
        ));
        let builder = Schema::build("Query", Some("Mutation"), None);
        let (builder, query, mutation) = register(builder, query, mutation, ext);
        builder
            .register(query)
            .register(mutation)
            .finish()
            .unwrap()
            .sdl()
    }

    #[test]
    fn gets_are_queries_the_rest_mutations_and_none_means_no_ext() {
        let served = vec![
            (
                install("lead-import"),
                manifest("lead-import", &[("GET", "leads"), ("POST", "leads")]),
            ),
            (
                install("lead-import"),
                manifest("lead-import", &[("POST", "leads")]),
            ),
            (install("quiet"), manifest("quiet", &[])),
        ];
        let ext = ExtModel::build(&served);
        let names = |e: &[ExtEndpoint]| e.iter().map(|e| e.gql.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ext.queries), ["leadImport_get_leads"]);
        assert_eq!(
            names(&ext.mutations),
            ["leadImport_post_leads", "leadImport_post_leads_2"]
        );
        assert_eq!(ext.mutations[1].install, served[1].0.id);
        let sdl = sdl_of(&ext);
        assert!(sdl.contains("ext: Ext!"), "{sdl}");
        assert!(sdl.contains("ext: ExtMutation!"), "{sdl}");
        let ext_type = sdl.split("type Ext {").nth(1).unwrap_or_default();
        let ext_type = ext_type.split('}').next().unwrap_or_default();
        assert!(ext_type.contains("leadImport_get_leads("), "{sdl}");
        assert!(!ext_type.contains("leadImport_post_leads("), "{sdl}");
        let only_posts = ExtModel::build(&served[1..]);
        let sdl = sdl_of(&only_posts);
        assert!(!sdl.contains("ext: Ext!"), "{sdl}");
        assert!(sdl.contains("ext: ExtMutation!"), "{sdl}");
        assert!(!sdl_of(&ExtModel::build(&served[2..])).contains("ext: Ext"));
    }

    #[test]
    fn endpoint_names_are_graphql_names_and_unique() {
        let mut taken = HashSet::new();
        let want =
            |name: &str, path: &str| format!("{}_post_{}", lower_camel(name), lower_camel(path));
        assert_eq!(
            claim(&mut taken, want("lead-import", "leads")),
            "leadImport_post_leads"
        );
        assert_eq!(
            claim(&mut taken, want("lead-import", "leads")),
            "leadImport_post_leads_2"
        );
        assert_eq!(
            claim(&mut taken, want("probe", "v2/items.json")),
            "probe_post_v2ItemsJson"
        );
        assert_eq!(claim(&mut taken, "1x".into()), "endpoint_1x");
    }
}
