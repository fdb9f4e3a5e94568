//! Test harness: start redis-server processes, talk RESP to them.
// SKELETON: helper C writes this.
