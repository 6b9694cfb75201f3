//! A running service's life: the stop that SIGTERM starts (the background pass starts no new
//! work once it is set) and the settings a reload (SIGHUP) replaces without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokenwarden_domain::LeadTime;

/// Shared by every clone of a context (one per process).
#[derive(Debug)]
pub struct Live {
    stopping: AtomicBool,
    stop: tokio::sync::watch::Sender<bool>,
    /// The configured reminder lead times as last reloaded; `None`: as the service started
    /// (`ServerSettings::reminder_lead_times`).
    lead_times: RwLock<Option<Vec<LeadTime>>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            stopping: AtomicBool::new(false),
            stop: tokio::sync::watch::channel(false).0,
            lead_times: RwLock::new(None),
        }
    }
}

impl Live {
    /// The service is stopping: no new background work starts.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Completes once [`Live::stop`] was called (at once if it was already).
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// The configured lead times a reload set, if any.
    pub fn configured_lead_times(&self) -> Option<Vec<LeadTime>> {
        self.lead_times
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configured lead times (SIGHUP); the next background pass reschedules
    /// every token if the lead times in force changed.
    pub fn set_configured_lead_times(&self, mut leads: Vec<LeadTime>) {
        leads.sort_by(|a, b| b.cmp(a));
        leads.dedup();
        *self.lead_times.write().unwrap_or_else(|e| e.into_inner()) = Some(leads);
    }
}

/// Where the email sender lives: shared by every clone of a context, so that a reload of the
/// `[smtp]` settings reaches the delivery worker.
#[derive(Clone, Default)]
pub struct MailerSlot(Arc<RwLock<Option<Arc<tokenwarden_notify::Mailer>>>>);

impl MailerSlot {
    pub fn get(&self) -> Option<Arc<tokenwarden_notify::Mailer>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, mailer: Option<Arc<tokenwarden_notify::Mailer>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = mailer;
    }

    pub fn is_some(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}
