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
/// then deleted when they expire), and with a plugin host the events
/// delivered to plugin installs.
pub fn job_handlers(
    config: &Config,
    master_key: Option<Arc<crm_core::crypto::MasterKey>>,
    rules: &crm_workflows::RuleEngine,
    files: Option<Arc<dyn crm_core::files::FileStore>>,
    plugins: Option<crm_plugins::PluginHost>,
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
    Ok(handlers)
}
