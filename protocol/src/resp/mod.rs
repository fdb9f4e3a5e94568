//! RESP2/RESP3 wire format: frames, incremental decoding, command encoding.
//!
//! Decoding is two-phase as in mini-redis: [`Frame::check`] walks a buffer
//! without allocating and returns [`Error::Incomplete`] when more bytes are
//! needed; [`Frame::parse`] runs only once a whole frame is buffered.

mod frame;

pub use frame::{Error, Frame, decode, encode_command};
