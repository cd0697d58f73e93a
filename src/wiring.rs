//! The one place where the server's parts are plugged together: the record engine's object
//! hooks and change listeners, and the job handlers the worker runs. Everything the
//! crates offer as a hook or a listener is installed here, so a reader sees all the wiring.

use crate::config::Config;
use crm_core::jobs::Handlers;
use std::sync::Arc;

/// Installs the record engine's hooks (once per process; later calls do nothing):
/// - tickets: the desk's status machine, numbers, SLA, assignment, attachment clean-up;
/// - every change: workflows' rule fan-out and the approval record lock; GraphQL
///   subscriptions' change notices; plugin installs' event deliveries;
/// - mail: contacts' and customers' addresses count as the company's own recipients.
pub fn install_record_hooks() {
    crm_core::mail::recipients::install(Arc::new(crm_records::recipients::ContactAddresses));
    crm_records::hooks::install(
        crm_records::hooks::Hooks::default()
            .object(crm_records::ObjectKey::Tickets, crm_desk::TicketHooks)
            .listener(crm_workflows::listener::WorkflowListener)
            .listener(crm_graphql::ChangeListener)
            .listener(crm_plugins::PluginListener),
    );
}

/// What the worker can run, by job kind: mail, task reminders, SLA timers, read-access log
/// pruning, the workflows'
/// jobs (rule runs, schedules, actions, webhooks, approval escalations), with a file
/// store the deletion of stored attachment objects and the files of large exports (written,
/// then deleted when they expire), with a plugin host the events delivered to plugin
/// installs, and with the imports' dependencies the imports and undos.
pub fn job_handlers(
    config: &Config,
    master_key: Option<Arc<crm_core::crypto::MasterKey>>,
    rules: &crm_workflows::RuleEngine,
    files: Option<Arc<dyn crm_core::files::FileStore>>,
    plugins: Option<crm_plugins::PluginHost>,
    imports: Option<Arc<crm_imports::Deps>>,
    backups: Option<crm_tenants::backup::Backups>,
) -> anyhow::Result<Handlers> {
    let mut mail = config.mail.clone();
    if mail.base_url.is_none() {
        mail.base_url = Some(config.public_url());
    }
    let send = crm_core::mail::SendMailJob::new(mail, &config.data_dir, master_key.clone())
        .map_err(|e| anyhow::anyhow!("mail settings: {e}"))?;
    let mut handlers = Handlers::default();
    handlers.register::<crm_core::mail::OutgoingMail>(Arc::new(send));
    handlers.register::<crm_records::reminders::ReminderPayload>(Arc::new(
        crm_records::reminders::ReminderJob,
    ));
    handlers.register::<crm_desk::tickets::SlaTimer>(Arc::new(crm_desk::tickets::SlaTimerJob));
    handlers.register::<crm_core::read_limit::log::Prune>(Arc::new(
        crm_core::read_limit::log::PruneJob,
    ));
    let outbound = crm_core::outbound::Outbound::new(config.outbound.clone(), "TC-CRM-Webhook/1");
    crm_workflows::jobs::register(&mut handlers, rules.clone(), outbound);
    if let Some(store) = files {
        handlers.register::<crm_records::export::files::ExportFile>(Arc::new(
            crm_records::export::files::ExportFileJob {
                store: store.clone(),
                master_key: master_key.clone(),
                settings: config.export.clone(),
            },
        ));
        handlers.register::<crm_records::export::files::ExpireExport>(Arc::new(
            crm_records::export::files::ExpireExportJob {
                store: store.clone(),
            },
        ));
        handlers.register::<crm_desk::attachments::DeleteFiles>(Arc::new(
            crm_desk::attachments::DeleteFilesJob { store },
        ));
    }
    if let Some(host) = plugins {
        handlers.register::<crm_plugins::PluginEvent>(Arc::new(crm_plugins::EventJob {
            host: host.clone(),
        }));
        handlers.register::<crm_workflows::payloads::PluginCall>(Arc::new(crm_plugins::CallJob {
            host,
        }));
    }
    if let Some(deps) = imports {
        crm_imports::register(&mut handlers, deps);
    }
    if let Some(backups) = backups {
        crm_tenants::backup::jobs::register(&mut handlers, backups);
    }
    Ok(handlers)
}

/// Tenant backups as configured: the crates' columns of stored-file keys (the desk's
/// attachments), the hooks around a restore (the record engine's metadata version), and a
/// database handle without the requests' statement timeout.
pub fn backups(
    config: &Config,
    db: &crm_core::db::Db,
    files: Arc<dyn crm_core::files::FileStore>,
    master: Option<Arc<crm_core::crypto::MasterKey>>,
) -> crm_tenants::backup::Backups {
    crm_tenants::backup::Backups {
        db: crm_core::db::Db::new(db.pool.clone(), db.isolation),
        files,
        master,
        file_columns: Arc::new(
            crm_desk::attachments::STORED_FILE_COLUMNS
                .iter()
                .copied()
                .chain(IMPORT_FILE_COLUMNS.iter().copied())
                .collect(),
        ),
        hooks: Arc::new(vec![Arc::new(MetadataVersion), Arc::new(EndCredentials)]),
        work_dir: config.data_dir.join("tmp"),
    }
}

/// The imports' uploaded and normalised files (`imports`, crm-imports' table), until that
/// crate declares them itself as the desk does.
const IMPORT_FILE_COLUMNS: &[crm_tenants::backup::FileColumn] = &[
    crm_tenants::backup::FileColumn {
        table: "imports",
        column: "original_key",
    },
    crm_tenants::backup::FileColumn {
        table: "imports",
        column: "data_key",
    },
];

/// Ends the restored tenant's portal sessions, sign-in links and calendar feed tokens, as
/// crm-tenants ends staff sessions: any of them may have been revoked since the backup.
struct EndCredentials;

#[async_trait::async_trait]
impl crm_tenants::backup::RestoreHook for EndCredentials {
    async fn after_restore(
        &self,
        tx: &mut crm_core::db::TenantTx,
        _replaced: Option<&serde_json::Value>,
    ) -> crm_core::Result<()> {
        crm_desk::portal::end_all_sessions(tx).await?;
        crm_records::calendar::revoke_all_tokens(tx).await?;
        Ok(())
    }
}

/// Moves the record engine's metadata version past every version the replaced tenant used,
/// so no schema cached before a restore is taken for the restored metadata.
struct MetadataVersion;

#[async_trait::async_trait]
impl crm_tenants::backup::RestoreHook for MetadataVersion {
    async fn before_replace(
        &self,
        tx: &mut crm_core::db::TenantTx,
    ) -> crm_core::Result<serde_json::Value> {
        Ok(crm_records::fields::metadata_version(tx).await?.into())
    }

    async fn after_restore(
        &self,
        tx: &mut crm_core::db::TenantTx,
        replaced: Option<&serde_json::Value>,
    ) -> crm_core::Result<()> {
        match replaced.and_then(serde_json::Value::as_i64) {
            Some(floor) => crm_records::fields::bump_metadata_version_past(tx, floor).await,
            None => Ok(()),
        }
    }
}
