//! Redis Cluster: one backup of every shard, taken at once from replicas
//! (`backup --cluster`), restored shard by shard.
//!
//! - [`topology`]: the shards as `CLUSTER SHARDS` or `CLUSTER NODES` say,
//!   slot coverage, address rewrites.
//! - [`backup`]: the shards' snapshots in parallel, one manifest.

pub mod backup;
pub mod topology;

pub use backup::{ClusterError, ClusterOptions, take_cluster_backup};
