//! What the engine tells of its state: per (rule, host) pair, what it saves
//! across a restart, and its memory.

use crate::duration::Millis;
use crate::incident::Incident;

/// The state of one rule on one host, as of the last evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct PairStatus {
    pub state: PairState,
    /// The aggregate, `None` when it has no value.
    pub aggregate: Option<f64>,
    /// Samples in the window that carry the rule's field.
    pub samples: u32,
    pub open: Option<Incident>,
    /// End of the last resolved incident.
    pub last_end: Option<Millis>,
    /// Since when its condition holds, while no incident is open (rules
    /// with options): the incident opens once it has held for `for`.
    pub pending_since: Option<Millis>,
    /// Since when its open incident has been clear (rules with options):
    /// it resolves once it has been clear for `keepFiringFor`.
    pub clear_since: Option<Millis>,
}

/// What an operator wants to know of a (rule, host) pair at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairState {
    /// An incident is open.
    Firing,
    /// No incident open; the condition holds, and the incident opens once
    /// it has held for the rule's `for` (and no cooldown runs).
    Pending,
    /// No incident open, and the last one resolved less than a cooldown ago.
    Cooldown,
    /// Nothing open and the aggregate has no value (an empty window).
    NoData,
    Ok,
}

impl PairState {
    pub fn as_str(self) -> &'static str {
        match self {
            PairState::Firing => "firing",
            PairState::Pending => "pending",
            PairState::Cooldown => "cooldown",
            PairState::NoData => "nodata",
            PairState::Ok => "ok",
        }
    }
}

/// What the engine holds in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub hosts: usize,
    /// Field values held in the hosts' rings.
    pub values_held: usize,
    /// Bytes allocated for them, their timestamps and the min/max deques.
    pub window_bytes: usize,
}
