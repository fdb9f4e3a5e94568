//! Content checks the checker can leave to another thread.
//!
//! Walking the records is sequential: where one ends depends on the one
//! before. Checking what is inside a string is not: an LZF body or an
//! encoded blob that lies wholly inside one chunk can be checked anywhere
//! once its bounds are known, and that is most of a check's CPU time on
//! data with compressed values or small collections. See
//! [`Checker::feed_deferring`](super::Checker::feed_deferring).

use super::blob::{self, BlobKind};
use super::lzf::{self, Keep, Lzf};
use super::{CheckError, CheckErrorKind};

/// What to check in a span.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    /// An LZF body that must decode to `ulen` bytes (a plain string).
    Lzf { ulen: u64 },
    /// An LZF body that must decode to an `ulen`-byte valid blob.
    LzfBlob { kind: BlobKind, ulen: u64 },
    /// A raw blob.
    Blob(BlobKind),
}

/// One check, with the payload offsets of its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    /// The offset a failure is reported at: where the checker, checking in
    /// place, would have reported it.
    pub(crate) at: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) check: Check,
}

/// The content checks one [`feed_deferring`](super::Checker::feed_deferring)
/// call left, in payload order.
///
/// Run [`Deferred::check`] on the same chunk, for every chunk in feed
/// order (on any thread). The check's verdict is the first of these checks
/// to fail; if none does, the checker's own. Every deferred check comes
/// before any error the checker reports for the same chunk, so that is the
/// error a check doing everything in place would have reported.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Payload offset of the chunk's first byte.
    pub(crate) base: u64,
    pub(crate) jobs: Vec<Job>,
}

impl Deferred {
    /// True when nothing was left to check.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs the checks against `chunk`, the bytes given to the
    /// `feed_deferring` call that returned this; the first failure, in
    /// payload order.
    pub fn check(&self, chunk: &[u8]) -> Result<(), CheckError> {
        let mut scratch = Vec::new();
        for job in &self.jobs {
            let span = job
                .start
                .checked_sub(self.base)
                .zip(job.end.checked_sub(self.base))
                .and_then(|(s, e)| chunk.get(usize::try_from(s).ok()?..usize::try_from(e).ok()?));
            let Some(span) = span else {
                return Err(CheckError {
                    offset: job.at,
                    kind: CheckErrorKind::Invalid(
                        "internal: a deferred check was given another chunk".into(),
                    ),
                });
            };
            run(job.check, span, &mut scratch).map_err(|kind| CheckError {
                offset: job.at,
                kind,
            })?;
        }
        Ok(())
    }
}

/// One check, with the errors the in-place check gives for the same bytes.
fn run(check: Check, span: &[u8], scratch: &mut Vec<u8>) -> Result<(), CheckErrorKind> {
    match check {
        Check::Lzf { ulen } => {
            let mut l = Lzf::new(span.len() as u64, ulen, Keep::Nothing);
            l.step(span).map_err(CheckErrorKind::Lzf)?;
            l.complete().map_err(CheckErrorKind::Lzf)
        }
        Check::LzfBlob { kind, ulen } => {
            lzf::decode_whole(span, ulen, scratch).map_err(CheckErrorKind::Lzf)?;
            blob(kind, scratch)
        }
        Check::Blob(kind) => blob(kind, span),
    }
}

fn blob(kind: BlobKind, b: &[u8]) -> Result<(), CheckErrorKind> {
    blob::validate(kind, b).map_err(|reason| CheckErrorKind::Blob {
        kind: kind.name(),
        reason,
    })
}
