//! Every command-line flag, defined once with its documentation.
//!
//! Flags that several subcommands share live in flattened groups
//! ([`VaultArgs`], [`KeyArgs`], [`SourceArgs`], [`RetentionArgs`]) so each is
//! written once. Environment defaults use the `REPLVAULT_` prefix.
//!
//! Help shows each variable's value, except for those that can hold a
//! secret ([`SECRET_ENV`], `hide_env_values`): the `--redis` URL (it may
//! carry a password) and the passwords. The others hold paths, names and
//! settings; a KMS key id names a key without granting use of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The environment variables that can hold a secret: help never shows
/// their values (a test checks every flag that reads one).
pub const SECRET_ENV: [&str; 3] = [
    "REPLVAULT_REDIS",
    "REPLVAULT_REDIS_PASSWORD",
    "REPLVAULT_SENTINEL_PASSWORD",
];

/// Back up Redis and Valkey by joining them as a replica.
#[derive(Debug, Parser)]
#[command(name = "replvault", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr: `text` or `json`. Logs go to stderr; progress
    /// is shown only when stderr is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "REPLVAULT_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// More log output (repeat for more). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take one backup of a Redis/Valkey server into a vault.
    Backup(BackupArgs),
    /// List the complete backups in a vault, oldest first.
    List(ListArgs),
    /// Restore a backup as a verified dump.rdb.
    Restore(RestoreArgs),
    /// Check that backups decrypt, decompress and parse, without writing.
    Verify(VerifyArgs),
    /// Delete backups outside a retention policy, and incomplete leftovers.
    Prune(PruneArgs),
    /// Run as a daemon: back up on a schedule, prune, serve metrics.
    Run(Box<RunArgs>),
    /// Write a new random 32-byte encryption key file (mode 0600).
    Keygen(KeygenArgs),
    /// Check a local RDB file (CRC and structure) and summarise it.
    Inspect(InspectArgs),
}

/// Where the vault is and how to reach it.
#[derive(Clone, Debug, Args)]
pub struct VaultArgs {
    /// The vault: a directory path, `file://PATH`, or `s3://bucket[/prefix]`.
    /// S3 uses the standard AWS environment (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, profiles, web
    /// identity, instance metadata).
    #[arg(long, env = "REPLVAULT_VAULT")]
    pub vault: String,

    /// Use path-style S3 addressing (`http://host/bucket/key`), which most
    /// S3-compatible servers need.
    #[arg(long, env = "REPLVAULT_S3_PATH_STYLE")]
    pub s3_path_style: bool,

    /// S3 storage class for data objects, e.g. `STANDARD_IA`.
    #[arg(long, env = "REPLVAULT_S3_STORAGE_CLASS")]
    pub s3_storage_class: Option<String>,

    /// S3 server-side encryption: `AES256` (SSE-S3) or `aws:kms` (SSE-KMS).
    #[arg(long, env = "REPLVAULT_S3_SSE")]
    pub s3_sse: Option<String>,

    /// KMS key id for `--s3-sse aws:kms`.
    #[arg(long, env = "REPLVAULT_S3_SSE_KMS_KEY_ID")]
    pub s3_sse_kms_key_id: Option<String>,

    /// Multipart part size to start with (e.g. `8MiB`); it grows as the
    /// upload proceeds so a backup never hits the 10,000-part limit.
    #[arg(long, env = "REPLVAULT_S3_PART_SIZE", value_parser = parse_size)]
    pub s3_part_size: Option<u64>,

    /// Keep every multipart part the same size (for stores that require it).
    #[arg(long, env = "REPLVAULT_S3_EQUAL_PARTS")]
    pub s3_equal_parts: bool,

    /// Multipart parts uploaded (and ranges downloaded) at once.
    #[arg(long, env = "REPLVAULT_S3_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub s3_concurrency: u16,

    /// Attempts per S3 request (with exponential backoff) before giving up
    /// on throttling, 5xx errors, timeouts and dropped connections.
    #[arg(long, env = "REPLVAULT_S3_MAX_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub s3_max_attempts: u32,

    /// Keys per ListObjectsV2 page (testing aid; S3's own maximum is 1000).
    #[arg(long, env = "REPLVAULT_S3_LIST_PAGE_SIZE", hide = true)]
    pub s3_list_page_size: Option<i32>,
}

/// The encryption key.
#[derive(Clone, Debug, Args)]
pub struct KeyArgs {
    /// Key file made by `replvault keygen` (32 random bytes).
    #[arg(long, env = "REPLVAULT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// The Redis/Valkey server to back up.
#[derive(Clone, Debug, Args)]
pub struct SourceArgs {
    /// `redis://[user[:password]@]host[:port]`, or `rediss://` for TLS;
    /// or `sentinel://[user[:password]@]H1:P1,H2:P2/MASTERNAME` to ask
    /// Sentinel where the master and its replicas are (`sentinels://`:
    /// TLS to sentinels and nodes). The password may also come from
    /// REPLVAULT_REDIS_PASSWORD.
    // The URL may hold a password: help names the variable, never its value.
    #[arg(long, env = "REPLVAULT_REDIS", hide_env_values = true)]
    pub redis: String,

    /// With a sentinel:// URL: back up from a `replica` (a healthy one, its
    /// link to the primary up; the primary, with a warning, when there is
    /// none) or from the `primary`. The stream archiver (`run --pitr`)
    /// always follows the primary.
    #[arg(long, value_enum, default_value_t = FromNode::Replica, env = "REPLVAULT_FROM")]
    pub from: FromNode,

    /// With a sentinel:// URL: the sentinels' password (AUTH), if they
    /// need one.
    #[arg(long, env = "REPLVAULT_SENTINEL_PASSWORD", hide_env_values = true)]
    pub sentinel_password: Option<String>,

    /// Password, if not in the URL (keeps it out of `ps`).
    #[arg(long, env = "REPLVAULT_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// CA certificate (PEM) to trust for `rediss://`, instead of the
    /// built-in web PKI roots.
    #[arg(long, env = "REPLVAULT_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// Server name to verify and send as SNI for `rediss://`, when it
    /// differs from the host in the URL.
    #[arg(long, env = "REPLVAULT_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// Client certificate (PEM) for servers that require mutual TLS.
    #[arg(long, env = "REPLVAULT_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// Client private key (PEM) for `--tls-cert-file`.
    #[arg(long, env = "REPLVAULT_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// How to get the data: `sync` (replication), `scan` (SCAN + DUMP, for
    /// servers that refuse SYNC/PSYNC; not point-in-time), or `auto`
    /// (replication, falling back to scan when the server refuses it).
    #[arg(long, value_enum, default_value_t = Mode::Auto, env = "REPLVAULT_MODE")]
    pub mode: Mode,

    /// Give up connecting after this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "REPLVAULT_CONNECT_TIMEOUT")]
    pub connect_timeout: Duration,

    /// Fail when the server sends nothing, not even a keepalive, for this
    /// long (a server waiting out `repl-diskless-sync-delay` or saving to
    /// disk sends keepalives; a fork of a huge dataset is silent).
    #[arg(long, default_value = "120s", value_parser = parse_duration, env = "REPLVAULT_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,

    /// Scan mode: keys per SCAN call.
    #[arg(long, default_value_t = 1000, env = "REPLVAULT_SCAN_COUNT")]
    pub scan_count: u32,

    /// Scan mode: at most this many keys per second, counting every key
    /// SCAN returns, in every pass (0 = unlimited).
    #[arg(long, default_value_t = 0, env = "REPLVAULT_SCAN_RATE")]
    pub scan_rate: u64,

    /// Scan mode: memory for the digests of the keys already written,
    /// which drop the keys SCAN returns twice (16 bytes a slot, at most
    /// 3/4 full: the default holds a pass of about 10 million keys). A
    /// database with more keys is walked in several SCAN passes, each
    /// writing its own share of the keys (README, "Managed Redis: scan
    /// mode"). At least 64KiB.
    #[arg(long, default_value = "256MiB", value_parser = parse_scan_memory, env = "REPLVAULT_SCAN_MEMORY")]
    pub scan_memory: u64,

    /// Refuse a snapshot that declares a string longer than this when the
    /// server did not send the snapshot's length (diskless replication,
    /// scan mode); with a length, nothing may reach past it. The servers'
    /// own limit is 512MiB (`proto-max-bulk-len`): raise this only with it.
    #[arg(long, default_value = "512MiB", value_parser = parse_size, env = "REPLVAULT_MAX_VALUE_SIZE")]
    pub max_value_size: u64,
}

/// Which node to back up from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FromNode {
    /// A healthy replica, else the primary.
    Replica,
    /// The primary.
    Primary,
}

/// How the backup is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Replication, falling back to scan when refused.
    Auto,
    /// Replication only (PSYNC, then SYNC).
    Sync,
    /// SCAN + DUMP only.
    Scan,
}

/// What to write, and how.
#[derive(Clone, Debug, Args)]
pub struct WriteArgs {
    /// zstd compression level (1-19; 1-3 keep up with a fast source).
    /// The default, 2, takes a fifth less CPU than 3 beside the source's
    /// dump, for 1 to 2 % smaller bulk data and 3 to 7 % larger mixed
    /// data (BENCHMARKS.md).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=19), env = "REPLVAULT_COMPRESSION_LEVEL")]
    pub compression_level: i32,

    /// Store the backup unencrypted. Without a key and without this flag,
    /// `backup` refuses to run: plaintext is never written by accident.
    #[arg(long, conflicts_with = "key_file", env = "REPLVAULT_NO_ENCRYPTION")]
    pub no_encryption: bool,

    /// Do not show a progress line even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// `replvault backup`.
#[derive(Clone, Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub source: SourceArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: KeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub write: WriteArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,
}

/// Redis Cluster.
#[derive(Clone, Debug, Args)]
pub struct ClusterArgs {
    /// `--redis` names any node of a Redis Cluster: back up every shard at
    /// once, each from a healthy replica (see --from), into one backup
    /// that commits only when every shard succeeded and their slots cover
    /// all 16,384.
    #[arg(long, env = "REPLVAULT_CLUSTER")]
    pub cluster: bool,

    /// With --cluster: shards backed up at once (default: all).
    #[arg(long, env = "REPLVAULT_CLUSTER_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..))]
    pub cluster_concurrency: Option<u32>,

    /// With --cluster: connect to TO where the cluster announces FROM
    /// (`host:port=host:port`; repeat, or comma-separate), for clusters
    /// behind NAT or in containers.
    #[arg(long, env = "REPLVAULT_CLUSTER_ADDRESS_MAP", value_delimiter = ',')]
    pub cluster_address_map: Vec<String>,
}

/// `replvault list`.
#[derive(Clone, Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    /// Print JSON (an array of manifests) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `replvault restore`.
#[derive(Clone, Debug, Args)]
pub struct RestoreArgs {
    /// Backup id, or `latest`.
    #[arg(default_value = "latest")]
    pub backup: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: KeyArgs,
    /// Where to write the RDB file, e.g. `/var/lib/redis/dump.rdb`.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing file at `--out`.
    #[arg(long)]
    pub force: bool,
    /// Write the file through the page cache instead of with `O_DIRECT`
    /// (for filesystems that take `O_DIRECT` but are slow with it).
    #[arg(long, env = "REPLVAULT_NO_DIRECT_IO")]
    pub no_direct_io: bool,
    /// Restore the data as it was at this time (RFC 3339, e.g.
    /// `2026-12-05T06:00:00.250Z`), or `latest` (the last archived
    /// command): the newest base backup at or before it plus the archived
    /// stream after it (`replvault run --pitr`). Instead of a backup id.
    #[arg(long, value_parser = parse_at)]
    pub at: Option<At>,
    /// With --at: `rdb` (a verified dump.rdb, built by replaying into a
    /// private server), `aof-dir` (a Redis 7+ appendonlydir, --out is the
    /// directory to create) or `aof` (one AOF file with an RDB preamble,
    /// for Redis 4 to 6.2).
    #[arg(long, value_enum, default_value_t = AtFormat::Rdb, requires = "at")]
    pub format: AtFormat,
    /// With --at --format rdb: the server binary that replays (it must
    /// read the base's RDB version).
    #[arg(long, default_value = "redis-server", env = "REPLVAULT_SERVER_BIN")]
    pub server_bin: PathBuf,
    /// Re-split the keys by hash slot into N RDB files over N equal
    /// contiguous slot ranges (as `redis-cli --cluster create` assigns
    /// them), from a cluster backup of any number of shards or a
    /// standalone backup (database 0 only). N >= 2: --out is a directory
    /// to create, with `shard-<i>.rdb` and `slots.json`; N = 1: --out is
    /// one standalone dump.rdb.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16384), conflicts_with = "at")]
    pub shards: Option<u16>,
}

/// A time to restore to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The last archived command.
    Latest,
    /// This time.
    Time(chrono::DateTime<chrono::Utc>),
}

/// Output of `restore --at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AtFormat {
    /// A verified dump.rdb.
    Rdb,
    /// A Redis 7+ multi-part AOF directory.
    AofDir,
    /// One AOF file with an RDB preamble.
    Aof,
}

/// Parses `latest` or an RFC 3339 time.
pub fn parse_at(s: &str) -> Result<At, String> {
    if s.eq_ignore_ascii_case("latest") {
        return Ok(At::Latest);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| At::Time(t.with_timezone(&chrono::Utc)))
        .map_err(|e| {
            format!("{e} (examples: latest, 2026-12-05T06:00:00Z, 2026-12-05T07:00:00.250+01:00)")
        })
}

/// `replvault verify`.
#[derive(Clone, Debug, Args)]
pub struct VerifyArgs {
    /// Backup id, or `latest`.
    #[arg(default_value = "latest", conflicts_with = "all")]
    pub backup: String,
    /// Verify every backup in the vault.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: KeyArgs,
}

/// Which backups to keep. A backup kept by any rule is kept; the newest
/// complete backup is always kept.
#[derive(Clone, Debug, Default, Args)]
pub struct RetentionArgs {
    /// Keep the newest N backups.
    #[arg(long, env = "REPLVAULT_KEEP_LAST")]
    pub keep_last: Option<u32>,
    /// Keep backups newer than this (e.g. `30d`, `12h`).
    #[arg(long, value_parser = parse_duration, env = "REPLVAULT_KEEP_WITHIN")]
    pub keep_within: Option<Duration>,
    /// Keep the newest backup of each of the last N days (UTC).
    #[arg(long, env = "REPLVAULT_KEEP_DAILY")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks.
    #[arg(long, env = "REPLVAULT_KEEP_WEEKLY")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, env = "REPLVAULT_KEEP_MONTHLY")]
    pub keep_monthly: Option<u32>,
    /// Keep the stream archive (`run --pitr`) restorable to any time in
    /// this window before now (e.g. `7d`), and the base backups that
    /// needs. Without it, archived stream older than the oldest kept base
    /// is deleted.
    #[arg(long, value_parser = parse_duration, env = "REPLVAULT_KEEP_PITR")]
    pub keep_pitr: Option<Duration>,
    /// Incomplete backups (no manifest) older than this are removed.
    #[arg(long, default_value = "24h", value_parser = parse_duration, env = "REPLVAULT_INCOMPLETE_GRACE")]
    pub incomplete_grace: Duration,
}

/// `replvault prune`.
#[derive(Clone, Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub retention: RetentionArgs,
    /// Print what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `replvault run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub backup: BackupArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub retention: RetentionArgs,
    /// Back up this often (e.g. `6h`).
    #[arg(long, value_parser = parse_duration, env = "REPLVAULT_EVERY")]
    pub every: Option<Duration>,
    /// Or on this cron schedule (UTC), e.g. `0 */6 * * *`.
    #[arg(long, conflicts_with = "every", env = "REPLVAULT_CRON")]
    pub cron: Option<String>,
    /// Random delay up to this long before each scheduled backup.
    #[arg(long, default_value = "0s", value_parser = parse_duration, env = "REPLVAULT_JITTER")]
    pub jitter: Duration,
    /// Serve `/metrics` (Prometheus) and `/healthz` on this address.
    #[arg(long, env = "REPLVAULT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// `/healthz` fails when the last success is older than this.
    #[arg(long, default_value = "26h", value_parser = parse_duration, env = "REPLVAULT_UNHEALTHY_AFTER")]
    pub unhealthy_after: Duration,
    /// TOML configuration file; flags and environment win over it.
    #[arg(long, env = "REPLVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Point-in-time recovery: stay connected as a replica after the
    /// snapshot and archive the command stream into the vault, so
    /// `restore --at TIME` can rebuild the data as it was at any moment.
    /// The scheduled backups (`--every`, 24h by default with --pitr) are
    /// its base snapshots.
    #[arg(long, env = "REPLVAULT_PITR")]
    pub pitr: bool,
    /// With --pitr: write what arrived at least this often (and only
    /// acknowledge it to the primary once written, so `WAIT 1` on the
    /// primary returns when a write is in the vault).
    #[arg(long, default_value = "1s", value_parser = parse_duration, env = "REPLVAULT_PITR_INTERVAL")]
    pub pitr_interval: Duration,
    /// With --pitr: also write a segment once this much of the stream is
    /// pending (e.g. `16MiB`).
    #[arg(long, default_value = "16MiB", value_parser = parse_size, env = "REPLVAULT_PITR_SEGMENT_SIZE")]
    pub pitr_segment_size: u64,
}

/// `replvault keygen`.
#[derive(Clone, Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (must not exist, unless --if-missing).
    #[arg(long)]
    pub out: PathBuf,
    /// If --out already holds a valid key, leave it as it is and succeed
    /// (for init containers and compose files that run keygen every start).
    /// A file there that is not a key is still an error.
    #[arg(long)]
    pub if_missing: bool,
}

/// `replvault inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// The RDB file to check.
    pub file: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--scan-memory`: a size of at least 64 KiB.
fn parse_scan_memory(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n < crate::source::scan_mode::MIN_MEMORY {
        return Err("at least 64KiB".into());
    }
    Ok(n)
}

/// Parses `30s`, `15m`, `6h`, `30d`, `1w` (humantime syntax).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 15m, 6h, 30d)"))
}

/// Parses a byte size: `8388608`, `8MiB`, `8MB`, `512KiB`, `1GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 8MiB, 16MB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag of every subcommand, with the subcommand's name.
    fn all_args() -> Vec<(String, clap::Arg)> {
        let mut out = Vec::new();
        let mut stack = vec![Cli::command()];
        while let Some(cmd) = stack.pop() {
            let name = cmd.get_name().to_string();
            out.extend(cmd.get_arguments().map(|a| (name.clone(), a.clone())));
            stack.extend(cmd.get_subcommands().cloned());
        }
        out
    }

    #[test]
    fn help_hides_the_values_of_variables_that_can_hold_a_secret() {
        let mut seen = 0;
        for (cmd, arg) in all_args() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                continue;
            };
            // A new variable whose name says secret must be listed too.
            let sounds_secret = ["PASSWORD", "SECRET", "TOKEN", "CREDENTIAL"]
                .iter()
                .any(|w| env.contains(w));
            assert!(
                !sounds_secret || SECRET_ENV.contains(&env),
                "{env} ({cmd}) looks secret: add it to SECRET_ENV"
            );
            if SECRET_ENV.contains(&env) {
                seen += 1;
                assert!(
                    arg.is_hide_env_values_set(),
                    "{cmd} --{}: help would show {env}'s value",
                    arg.get_id()
                );
            }
        }
        // backup and run each read both.
        assert!(seen >= 4, "{seen}");
    }

    #[test]
    fn backups_default_to_zstd_level_2() {
        // The level BENCHMARKS.md measured as the default.
        let cli = Cli::try_parse_from([
            "replvault",
            "backup",
            "--redis",
            "redis://127.0.0.1:6379",
            "--vault",
            "/tmp/v",
            "--no-encryption",
        ])
        .map_err(|e| e.to_string());
        match cli.map(|c| c.command) {
            Ok(Command::Backup(b)) => assert_eq!(b.write.compression_level, 2),
            other => panic!("backup did not parse: {other:?}"),
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("8XB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
