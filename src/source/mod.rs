//! Where RDB bytes come from: the replication socket (TCP or TLS), SCAN +
//! DUMP for servers that refuse replication, or a local file.
// SKELETON: helper C implements `replica`/`tls`/`url`, helper M `scan`.
