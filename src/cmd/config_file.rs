//! The `--config` TOML file. Its keys are the long flag names (`redis`,
//! `vault`, `every`, `keep-daily`, ...); each becomes the flag's
//! `REPLVAULT_*` environment default unless that variable is already set,
//! so flags win over the environment, which wins over the file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cmd::flags::Cli;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A key that is no flag of `replvault run`.
    #[error(
        "config file {path}: unknown key {key:?} (keys are `replvault run` flag names, e.g. vault, every, keep-daily)"
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A table or array where a value should be.
    #[error("config file {path}: {key:?} must be a string, number or boolean")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// The config file named by `--config FILE` / `--config=FILE` in `argv`, or
/// by REPLVAULT_CONFIG.
pub fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("REPLVAULT_CONFIG").map(PathBuf::from)
}

/// Maps a config file's keys to environment variables and values.
pub fn env_from_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    env_from_str(path, &text)
}

fn env_from_str(path: &Path, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run");
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let env = run.and_then(|r| {
            r.get_arguments()
                .chain(cmd.get_arguments())
                .find(|a| a.get_long() == Some(long.as_str()))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        });
        let Some(env) = env else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key,
            });
        };
        let v = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(ConfigError::BadValue {
                    path: path.to_path_buf(),
                    key,
                });
            }
        };
        out.insert(env, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_flag_environment_variables() {
        let m = env_from_str(
            Path::new("t.toml"),
            "redis = \"redis://r:6379\"\nvault = \"s3://b/p\"\nevery = \"6h\"\nkeep-daily = 7\nkeep_weekly = 4\ns3-path-style = true\nlog-format = \"json\"\n",
        )
        .unwrap();
        assert_eq!(m["REPLVAULT_REDIS"], "redis://r:6379");
        assert_eq!(m["REPLVAULT_VAULT"], "s3://b/p");
        assert_eq!(m["REPLVAULT_EVERY"], "6h");
        assert_eq!(m["REPLVAULT_KEEP_DAILY"], "7");
        assert_eq!(m["REPLVAULT_KEEP_WEEKLY"], "4");
        assert_eq!(m["REPLVAULT_S3_PATH_STYLE"], "true");
        assert_eq!(m["REPLVAULT_LOG_FORMAT"], "json");
    }

    #[test]
    fn unknown_keys_and_tables_are_refused() {
        let e = env_from_str(Path::new("t.toml"), "every = \"1h\"\nevry = \"1h\"\n").unwrap_err();
        assert!(
            matches!(e, ConfigError::UnknownKey { ref key, .. } if key == "evry"),
            "{e}"
        );
        let e = env_from_str(Path::new("t.toml"), "[vault]\nx = 1\n").unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{e}");
        let e = env_from_str(Path::new("t.toml"), "every = ").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn config_path_from_argv() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&a(&["replvault", "run", "--config", "/etc/r.toml"])),
            Some(PathBuf::from("/etc/r.toml"))
        );
        assert_eq!(
            config_path(&a(&["replvault", "run", "--config=/etc/r.toml"])),
            Some(PathBuf::from("/etc/r.toml"))
        );
    }
}
