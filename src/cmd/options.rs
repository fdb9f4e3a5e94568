//! Resolving the command line into the library's option types.
//!
//! Values reach a flag from the command line, its `REPLVAULT_*` variable,
//! or the `--config` file (which [`super::config_file`] turns into those
//! variables before parsing), in that order of precedence; clap merges
//! them. What is left is turning each flag group into the plain options a
//! library module takes, so no module outside `cmd` sees clap.

use std::time::Duration;

use crate::cluster::ClusterOptions;
use crate::cluster::topology::AddressMap;
use crate::daemon::{DaemonOptions, Schedule, ScheduleError};
use crate::pitr::PitrOptions;
use crate::source::{self, ConnectOptions, NodeRole, SourceOptions};
use crate::store::{S3Options, StoreOptions};
use crate::vault::RetentionPolicy;

use super::flags::{BackupArgs, FromNode, Mode, RetentionArgs, RunArgs, SourceArgs, VaultArgs};

impl From<Mode> for source::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Auto => source::Mode::Auto,
            Mode::Sync => source::Mode::Sync,
            Mode::Scan => source::Mode::Scan,
        }
    }
}

impl SourceArgs {
    /// The source these flags name.
    pub fn options(&self) -> SourceOptions {
        SourceOptions {
            url: self.redis.clone(),
            password: self.redis_password.clone(),
            mode: self.mode.into(),
            connect: ConnectOptions {
                connect_timeout: self.connect_timeout,
                tls_ca_file: self.tls_ca_file.clone(),
                tls_server_name: self.tls_server_name.clone(),
                tls_cert_file: self.tls_cert_file.clone(),
                tls_key_file: self.tls_key_file.clone(),
            },
            idle_timeout: self.idle_timeout,
            scan_count: self.scan_count,
            scan_rate: self.scan_rate,
            from: match self.from {
                FromNode::Replica => NodeRole::Replica,
                FromNode::Primary => NodeRole::Primary,
            },
            sentinel_password: self.sentinel_password.clone(),
            scan_memory: self.scan_memory,
            max_value_size: self.max_value_size,
        }
    }
}

impl BackupArgs {
    /// The cluster settings, with `--cluster`.
    pub fn cluster_options(&self) -> Result<Option<ClusterOptions>, String> {
        if !self.cluster.cluster {
            return Ok(None);
        }
        Ok(Some(ClusterOptions {
            from: match self.source.from {
                FromNode::Replica => NodeRole::Replica,
                FromNode::Primary => NodeRole::Primary,
            },
            concurrency: self.cluster.cluster_concurrency.map(|n| n as usize),
            address_map: AddressMap::parse(&self.cluster.cluster_address_map)?,
        }))
    }
}

impl VaultArgs {
    /// The store these flags name.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            location: self.vault.clone(),
            s3: S3Options {
                path_style: self.s3_path_style,
                storage_class: self.s3_storage_class.clone(),
                sse: self.s3_sse.clone(),
                sse_kms_key_id: self.s3_sse_kms_key_id.clone(),
                part_size: self.s3_part_size,
                equal_parts: self.s3_equal_parts,
                concurrency: self.s3_concurrency,
                max_attempts: self.s3_max_attempts,
                list_page_size: self.s3_list_page_size,
            },
        }
    }
}

impl RetentionArgs {
    /// The retention rules these flags give.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            last: self.keep_last,
            within: self.keep_within,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
}

/// Base snapshots with `--pitr` when neither `--every` nor `--cron` says.
const DEFAULT_PITR_EVERY: Duration = Duration::from_secs(24 * 3600);

impl RunArgs {
    /// The daemon these flags describe.
    pub fn options(&self) -> Result<DaemonOptions, anyhow::Error> {
        // A scan-mode snapshot has no replication offset: no stream can
        // continue from it.
        if self.pitr && self.backup.source.mode == Mode::Scan {
            anyhow::bail!(
                "--pitr needs base snapshots taken over replication, and --mode scan takes none: use --mode sync or auto (the backup user needs +sync +psync +replconf)"
            );
        }
        let cluster = self.backup.cluster_options().map_err(anyhow::Error::msg)?;
        Ok(DaemonOptions {
            cluster,
            source: self.backup.source.options(),
            compression_level: self.backup.write.compression_level,
            schedule: Schedule::new(
                // With --pitr the stream covers the time between bases.
                self.every
                    .or((self.pitr && self.cron.is_none()).then_some(DEFAULT_PITR_EVERY)),
                self.cron.as_deref(),
            )
            .map_err(|e: ScheduleError| anyhow::Error::new(e))?,
            jitter: self.jitter,
            retention: self.retention.policy(),
            incomplete_grace: self.retention.incomplete_grace,
            keep_pitr: self.retention.keep_pitr,
            listen: self.listen,
            unhealthy_after: self.unhealthy_after,
            pitr: self.pitr.then_some(PitrOptions {
                interval: self.pitr_interval,
                segment_size: self.pitr_segment_size,
                compression_level: self.backup.write.compression_level,
                store_base: !self.backup.cluster.cluster,
                shard: None,
            }),
        })
    }
}
