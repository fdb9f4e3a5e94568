//! The single integration-test binary: real redis-server processes, a real
//! S3-compatible server, the real `replvault` binary.

mod it;
