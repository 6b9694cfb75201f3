//! Domain types of tokenwarden. Nothing here does IO: values are parsed once at the edge
//! (`TokenName::parse`, `ProviderId::parse`, ...) and cannot hold bad data afterwards.

pub mod clock;
mod grant;
mod ids;
mod names;
pub mod net;
mod states;

pub use clock::{Clock, ManualClock, OffsetClock, Rfc3339, SystemClock};
pub use grant::{ClientAuthMethod, Grant};
pub use ids::{ApiKeyId, AppId, TokenId};
pub use names::{AppName, KeyLabel, NameError, ProviderId, TokenName, take_refused_name};
pub use net::{is_loopback_authority, is_loopback_host};
pub use states::{
    AppState, AuditAction, AuditOutcome, ChannelKind, DeviceFlowStatus, EventKind, Expiring,
    LeadTime, ParseStateError, StopReason, TokenStatus,
};

/// Every instant in tokenwarden is UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
