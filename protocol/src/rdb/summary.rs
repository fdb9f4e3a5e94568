//! What a check learned about an RDB file, and the caps that keep it small.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Aux values and function code kept for the summary are cut to this length.
pub(super) const CAPTURE_LIMIT: usize = 4096;

/// Aux fields kept for the summary (a server writes about ten); further
/// distinct fields are only counted, so a corrupt or hostile file of
/// millions of aux records cannot grow the check's memory.
pub(super) const MAX_AUX_FIELDS: usize = 64;
/// Function library names kept for the summary; further ones are counted.
pub(super) const MAX_FUNCTIONS: usize = 1024;

/// Module types counted by name; data of any further type (only a corrupt
/// file has so many) is counted under [`OTHER_MODULES`], so the check's
/// memory stays bounded.
pub(super) const MAX_MODULE_TYPES: usize = 256;
/// Where data of module types past [`MAX_MODULE_TYPES`] is counted (not a
/// valid type name, so it cannot collide with one).
pub const OTHER_MODULES: &str = "(other types)";

/// What a check learned about an RDB file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `REDIS` or `VALKEY`.
    pub magic: String,
    /// The version number after the magic.
    pub rdb_version: u32,
    /// AUX fields (redis-ver, ctime, used-mem, ...), lossily decoded.
    pub aux: BTreeMap<String, String>,
    /// Aux records of further distinct fields, past the first
    /// [`MAX_AUX_FIELDS`]: counted, not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub aux_omitted: u64,
    /// Per-database key and expiry counts, by db number.
    pub databases: BTreeMap<u64, DbSummary>,
    /// Key counts per value type name (e.g. `string`, `hash-listpack`).
    pub types: BTreeMap<String, u64>,
    /// Names of function libraries.
    pub functions: Vec<String>,
    /// Function libraries past the first [`MAX_FUNCTIONS`]: counted, not
    /// named.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub functions_omitted: u64,
    /// Module data by module type name (such as `vectorset`): a server
    /// loads this file only with those modules loaded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, ModuleCounts>,
    /// Total payload length in bytes, trailer included.
    pub payload_len: u64,
    /// Result of the trailer check.
    pub checksum: Checksum,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Keys over all databases.
    pub fn total_keys(&self) -> u64 {
        self.databases.values().map(|d| d.keys).sum()
    }

    /// Keys with an expiry over all databases.
    pub fn total_expires(&self) -> u64 {
        self.databases.values().map(|d| d.expires).sum()
    }
}

/// Counts for one database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSummary {
    /// Keys in the database.
    pub keys: u64,
    /// Keys with an expiry.
    pub expires: u64,
}

/// Module data of one module type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCounts {
    /// Keys holding a value of this type.
    pub values: u64,
    /// Module aux records (opcode 0xF7): data the module keeps outside
    /// keys, such as index definitions.
    pub aux: u64,
}

/// The name of a module type from its 64-bit id: nine characters of six
/// bits each, then ten bits of encoding version (Redis's module.c).
pub fn module_type_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9)
        .map(|j| char::from(CHARSET[((id >> (58 - 6 * j)) & 63) as usize]))
        .collect()
}

/// The outcome of the CRC-64 trailer check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Checksum {
    /// The trailer matched the computed CRC-64/Jones.
    Verified {
        /// The CRC-64 value.
        crc64: u64,
    },
    /// The trailer was zero: the server had `rdbchecksum no`.
    #[default]
    Disabled,
    /// RDB versions before 5 have no trailer.
    Absent,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, raw};
    use super::*;

    #[test]
    fn module_type_names_come_from_their_ids() {
        // Redis encodes a name as each character's place in this set, six
        // bits each from the top, then ten bits of encoding version.
        let set = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (name, encver) in [
            ("vectorset", 0u64),
            ("rvtest-t1", 1),
            ("ReJSON-RL", 3),
            ("A________", 1023),
        ] {
            let id = name.bytes().fold(0u64, |id, c| {
                (id << 6) | set.iter().position(|&x| x == c).expect("in set") as u64
            });
            assert_eq!(module_type_name((id << 10) | encver), name);
        }
    }

    #[test]
    fn aux_fields_and_function_names_past_their_caps_are_counted_not_kept() {
        let mut v = b"REDIS0010".to_vec();
        let aux = |v: &mut Vec<u8>, k: &str, val: &str| {
            v.push(0xFA);
            v.extend(raw(k.as_bytes()));
            v.extend(raw(val.as_bytes()));
        };
        for i in 0..MAX_AUX_FIELDS + 10 {
            aux(&mut v, &format!("f{i}"), "x");
        }
        // A field already kept is still updated once the cap is reached.
        aux(&mut v, "f0", "last");
        for i in 0..MAX_FUNCTIONS + 3 {
            v.push(0xF5);
            v.extend(raw(format!("#!lua name=l{i}\n").as_bytes()));
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        let s = check(&v, 4096, false).expect("passes");
        assert_eq!(s.aux.len(), MAX_AUX_FIELDS);
        assert_eq!(s.aux["f0"], "last");
        assert_eq!(s.aux_omitted, 10);
        assert_eq!(s.functions.len(), MAX_FUNCTIONS);
        assert_eq!(s.functions[0], "l0");
        assert_eq!(s.functions_omitted, 3);
        let json = serde_json::to_string(&s).expect("serializes");
        let back: Summary = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, s);
        // Summaries without omissions carry no omission fields, so their
        // JSON matches summaries written before the fields existed.
        let plain = serde_json::to_string(&Summary::default()).expect("serializes");
        assert!(!plain.contains("omitted"), "{plain}");
    }

    #[test]
    fn module_types_past_the_cap_are_counted_together() {
        // A module value of type id `t`: id (64-bit length), then one
        // unsigned field and EOF; and an aux record of the first type.
        let mut v = b"REDIS0010".to_vec();
        v.extend([0xF7, 0x81]);
        v.extend((1u64 << 10).to_be_bytes());
        v.extend([2, 2, 2, 7, 0]);
        v.extend([0xFE, 0]);
        let types = MAX_MODULE_TYPES as u64 + 44;
        for t in 1..=types {
            v.push(7);
            v.extend(raw(format!("m{t}").as_bytes()));
            v.push(0x81);
            v.extend((t << 10).to_be_bytes());
            v.extend([2, 5, 0]);
        }
        v.push(0xFF);
        let crc = crate::crc64::checksum(&v);
        v.extend(crc.to_le_bytes());
        let s = check(&v, 4096, false).expect("passes");
        assert_eq!(s.types["module"], types);
        assert_eq!(s.modules.len(), MAX_MODULE_TYPES + 1);
        assert_eq!(
            s.modules[&module_type_name(1 << 10)],
            ModuleCounts { values: 1, aux: 1 }
        );
        assert_eq!(
            s.modules[OTHER_MODULES],
            ModuleCounts { values: 44, aux: 0 }
        );
        assert_eq!(s.modules.values().map(|c| c.values).sum::<u64>(), types);
    }
}
