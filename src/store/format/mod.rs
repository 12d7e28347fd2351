//! The stored forms of samples, shared by every store backend: the embedded
//! store keeps them in SQLite rows, a cluster in Redis values. Each is a pure
//! function of its input; every decoder checks every byte and fails with
//! [`StoreError::Corrupt`](super::StoreError::Corrupt) rather than panic.
//!
//! - [`batch`]: the samples of one append, as they arrive (recent samples);
//! - [`block`]: one host's samples of one period, column by column (compacted);
//! - [`rollup`]: per host, field and step, the aggregates of the samples.

pub mod batch;
pub mod block;
mod bytes;
pub mod rollup;
