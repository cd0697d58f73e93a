//! `/graphql`: the HTTP side of the GraphQL interface (the `crm-graphql` crate does the rest).
//! `POST /graphql` runs a query or mutation with a bearer credential (session token or API
//! key, as REST), in one tenant transaction opened exactly as REST opens it; `GET /graphql`
//! in a browser is GraphiQL; `GET /graphql/ws` serves subscriptions over WebSocket
//! (graphql-transport-ws, and the older graphql-ws), authenticated by the upgrade's
//! `Authorization` header or the `connection_init` payload's `Authorization` / `token`.

use crate::config::Config;
use crate::rest::auth::{bearer, credential_of, missing_credential, Admit, Credential};
use crate::rest::error::ApiError;
use crate::server::AppState;
use async_graphql::http::WebSocketProtocols;
use async_graphql::{Data, Executor};
use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
use crm_core::Error;
use crm_graphql::{Door, Gateway, Opened, TenantSchema};
use futures::stream::BoxStream;
use poem::http::{header, StatusCode};
use poem::web::websocket::WebSocket;
use poem::web::Data as PoemData;
use poem::{handler, Body, IntoResponse, Request, Response};
use std::sync::{Arc, OnceLock};

/// How the GraphQL crate opens a tenant transaction for a checked credential.
struct CredentialDoor {
    state: AppState,
    credential: Credential,
}

#[async_trait::async_trait]
impl Door for CredentialDoor {
    async fn open(&self) -> Result<Opened, Error> {
        let (tx, caller, ctx) = self
            .state
            .open(&self.credential, Admit::Unrestricted)
            .await
            .map_err(|e| e.0)?;
        Ok(Opened { tx, caller, ctx })
    }
}

/// The GraphQL gateway of a server, from its config, its record schema cache and its plugin
/// host (for `ext`).
pub fn gateway(
    config: &Config,
    schemas: &Arc<crm_records::SchemaCache>,
    master_key: Option<&Arc<crm_core::crypto::MasterKey>>,
    plugins: crm_plugins::PluginHost,
) -> Arc<Gateway> {
    let c = &config.graphql;
    Arc::new(
        Gateway::new(
            c.schema_cache_tenants,
            schemas.clone(),
            master_key.cloned(),
            crm_graphql::Limits {
                max_depth: c.max_depth,
                max_complexity: c.max_complexity,
                max_records: c.max_records,
                max_fields: c.max_fields,
                cache_mb: c.schema_cache_mb,
            },
            Arc::new(|e: Error| serde_json::to_value(ApiError(e).problem()).unwrap_or_default()),
        )
        .with_plugins(plugins),
    )
}

fn problem(err: Error) -> Response {
    ApiError(err).problem().into_response()
}

/// `POST /graphql`: `{"query", "variables", "operationName"}` → `{"data", "errors"}`. A
/// missing or bad credential is the REST 401 problem; errors inside the query come back in
/// `errors` with the REST `code` in their `extensions`.
#[handler]
pub async fn post(req: &Request, body: Body, state: PoemData<&AppState>) -> Response {
    let Some(token) = bearer(req) else {
        return problem(missing_credential());
    };
    let credential = match credential_of(&state, req, &token).await {
        Ok(c) => c,
        Err(e) => return problem(e.0),
    };
    let request: async_graphql::Request = match body.into_json().await {
        Ok(r) => r,
        Err(e) => {
            return problem(Error::bad_request(
                "graphql.invalid_request",
                format!("the body must be JSON {{\"query\": \"…\", \"variables\": {{…}}}}: {e}"),
            ))
        }
    };
    let opened = match (CredentialDoor {
        state: state.clone(),
        credential,
    })
    .open()
    .await
    {
        Ok(o) => o,
        Err(e) => return problem(e),
    };
    let response = state.graphql.execute(opened, request).await;
    let body = serde_json::to_vec(&response).unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/json")
        .body(body)
}

/// `GET /graphql`: GraphiQL for a browser (paste a token into its headers:
/// `{"Authorization": "Bearer …"}`); anything else is told to POST.
#[handler]
pub async fn get(req: &Request) -> Response {
    let wants_html = req
        .header(header::ACCEPT)
        .is_some_and(|a| a.contains("text/html"));
    // Anything but a browser's page load (an API client, curl) is told how to ask.
    if !wants_html {
        return problem(Error::bad_request(
            "graphql.use_post",
            "send GraphQL requests as POST /graphql with a JSON body; GET shows GraphiQL in a browser",
        ));
    }
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        )
        .body(GRAPHIQL_PAGE)
}

/// GraphiQL from the web app's build (`admin-ui/dist/graphiql/`, pinned npm packages): no CDN,
/// no inline script.
const GRAPHIQL_PAGE: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>TC CRM GraphQL</title>
    <link rel="stylesheet" href="/graphiql/graphiql.min.css" />
    <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="/graphiql/react.production.min.js"></script>
    <script src="/graphiql/react-dom.production.min.js"></script>
    <script src="/graphiql/graphiql.min.js"></script>
    <script src="/graphiql/init.js"></script>
  </body>
</html>
"#;

/// Runs subscriptions on the schema chosen once the connection is authenticated.
#[derive(Clone)]
struct TenantExecutor(Arc<OnceLock<Arc<TenantSchema>>>);

impl Executor for TenantExecutor {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        match self.0.get() {
            Some(s) => s.schema.execute(request).await,
            None => async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                "authenticate first: connection_init with {\"Authorization\": \"Bearer …\"}",
                None,
            )]),
        }
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        match self.0.get() {
            Some(s) => Executor::execute_stream(&s.schema, request, session_data),
            None => Box::pin(futures::stream::once(async {
                async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                    "authenticate first",
                    None,
                )])
            })),
        }
    }
}

/// Checks `token` and readies the connection: picks the tenant's schema and returns the
/// data subscriptions need (they open their own transactions per event).
async fn authenticate(
    state: &AppState,
    req_meta: &Request,
    token: &str,
    slot: &OnceLock<Arc<TenantSchema>>,
) -> Result<Data, Error> {
    let credential = credential_of(state, req_meta, token)
        .await
        .map_err(|e| e.0)?;
    let tenant = credential.tenant_id();
    let door: Arc<dyn Door> = Arc::new(CredentialDoor {
        state: state.clone(),
        credential,
    });
    let mut opened = door.open().await?;
    let version = opened.ctx.principal.metadata_version;
    let schema = state.graphql.schema_for(&mut opened.tx, version).await?;
    opened.tx.commit().await?;
    let _ = slot.set(schema);
    let mut data = Data::default();
    data.insert(state.graphql.subscriber(door, tenant));
    Ok(data)
}

/// `GET /graphql/ws`: subscriptions over WebSocket.
#[handler]
pub async fn ws(
    req: &Request,
    protocol: GraphQLProtocol,
    websocket: WebSocket,
    state: PoemData<&AppState>,
) -> Response {
    let state = state.clone();
    let slot: Arc<OnceLock<Arc<TenantSchema>>> = Arc::new(OnceLock::new());
    let early = match bearer(req) {
        Some(token) => match authenticate(&state, req, &token, &slot).await {
            Ok(data) => Some(data),
            Err(e) => return problem(e),
        },
        None => None,
    };
    // What `connection_init` needs of the upgrade request: its address and agent.
    let meta_req = Request::builder()
        .uri(req.uri().clone())
        .header(
            header::USER_AGENT,
            req.header(header::USER_AGENT).unwrap_or_default(),
        )
        .finish();
    let executor = TenantExecutor(slot.clone());
    let protocol: WebSocketProtocols = protocol.0;
    websocket
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            let socket = GraphQLWebSocket::new(stream, executor, GraphQLProtocol(protocol));
            match early {
                Some(data) => socket.with_data(data).serve().await,
                None => {
                    socket
                        .on_connection_init(move |payload: serde_json::Value| async move {
                            let token = ["Authorization", "authorization", "token"]
                                .iter()
                                .find_map(|k| payload[*k].as_str())
                                .map(|t| t.trim_start_matches("Bearer ").trim().to_owned())
                                .ok_or_else(|| {
                                    async_graphql::Error::new(
                                        "send {\"Authorization\": \"Bearer <token>\"} in connection_init",
                                    )
                                })?;
                            authenticate(&state, &meta_req, &token, &slot)
                                .await
                                .map_err(|e| async_graphql::Error::new(e.to_string()))
                        })
                        .serve()
                        .await;
                }
            }
        })
        .into_response()
}
