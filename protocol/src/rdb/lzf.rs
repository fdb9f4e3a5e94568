//! Streaming LZF decoder, as Redis uses for compressed strings.
//!
//! Crates such as `lzf` decompress whole buffers only; a backup must check a
//! 512 MB compressed string without holding it, so this decodes one control
//! instruction at a time and keeps only the 8 KiB window back-references can
//! reach (or the whole output when the caller needs it, bounded by the caller).

/// Farthest back an LZF back-reference reaches.
const WINDOW: usize = 8192;

/// What the decoder keeps of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Nothing: only lengths and back-reference bounds are checked, which
    /// is all a plain string value needs (and the fast path).
    Nothing,
    /// The last [`WINDOW`] bytes or more.
    Window,
    /// Everything (the caller validates it afterwards, bounding its size).
    All,
}

/// Decoder state for one compressed string.
#[derive(Debug)]
pub(crate) struct Lzf {
    /// Compressed bytes still to read.
    pub(crate) in_left: u64,
    /// Decompressed bytes still expected.
    pub(crate) out_left: u64,
    /// Output produced so far.
    produced: u64,
    /// Recent output (window), or all output, per `keep`.
    pub(crate) out: Vec<u8>,
    keep: Keep,
}

/// Result of one decoding step.
pub(crate) enum Step {
    /// Consumed this many input bytes.
    Consumed(usize),
    /// The next instruction needs more input than is buffered.
    NeedMore,
}

impl Lzf {
    pub(crate) fn new(clen: u64, len: u64, keep: Keep) -> Self {
        // One 3-byte back-reference yields at most 264 bytes, so a declared
        // length beyond that ratio is an error found while decoding: never
        // reserve more than the input could produce.
        let cap = match keep {
            Keep::Nothing => 0,
            Keep::Window => len.min(16 * WINDOW as u64),
            Keep::All => len.min(clen.saturating_mul(90)),
        };
        Lzf {
            in_left: clen,
            out_left: len,
            produced: 0,
            out: Vec::with_capacity(usize::try_from(cap).unwrap_or(0)),
            keep,
        }
    }

    /// True when all input has been read (check `out_left == 0` then).
    pub(crate) fn done(&self) -> bool {
        self.in_left == 0
    }

    /// Decodes instructions from `input` until it runs out or the string ends.
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, String> {
        let mut p = 0;
        while self.in_left > 0 {
            let Some(&ctrl) = input.get(p) else { break };
            let ctrl = ctrl as usize;
            if ctrl < 32 {
                let n = ctrl + 1;
                if (1 + n) as u64 > self.in_left {
                    return Err("LZF literal runs past the compressed length".into());
                }
                let Some(lit) = input.get(p + 1..p + 1 + n) else {
                    break;
                };
                if n as u64 > self.out_left {
                    return Err("LZF output longer than the declared length".into());
                }
                if self.keep != Keep::Nothing {
                    self.out.extend_from_slice(lit);
                }
                self.produced += n as u64;
                self.out_left -= n as u64;
                self.in_left -= (1 + n) as u64;
                p += 1 + n;
            } else {
                let mut len = ctrl >> 5;
                let mut need = 2;
                if len == 7 {
                    need = 3;
                }
                if need as u64 > self.in_left {
                    return Err("LZF back-reference runs past the compressed length".into());
                }
                let Some(ops) = input.get(p + 1..p + need) else {
                    break;
                };
                let low = if len == 7 {
                    len += ops[0] as usize;
                    ops[1]
                } else {
                    ops[0]
                };
                let back = ((ctrl & 0x1F) << 8) + low as usize + 1;
                let n = len + 2;
                if back as u64 > self.produced {
                    return Err("LZF back-reference before the start of the output".into());
                }
                if n as u64 > self.out_left {
                    return Err("LZF output longer than the declared length".into());
                }
                if self.keep != Keep::Nothing {
                    let start = self.out.len() - back;
                    if back >= n {
                        self.out.extend_from_within(start..start + n);
                    } else {
                        // Overlapping copies repeat the pattern: bytewise.
                        for i in 0..n {
                            let b = self.out[start + i];
                            self.out.push(b);
                        }
                    }
                }
                self.produced += n as u64;
                self.out_left -= n as u64;
                self.in_left -= need as u64;
                p += need;
            }
            if self.keep == Keep::Window && self.out.len() > 8 * WINDOW {
                let cut = self.out.len() - WINDOW;
                self.out.drain(..cut);
            }
        }
        if p == 0 && self.in_left > 0 {
            return Ok(Step::NeedMore);
        }
        Ok(Step::Consumed(p))
    }
}

/// True when `input` is exactly one valid LZF stream decoding to `out_len`
/// bytes (checked without producing the output).
pub(crate) fn check_complete(input: &[u8], out_len: u64) -> bool {
    let mut l = Lzf::new(input.len() as u64, out_len, Keep::Nothing);
    matches!(l.step(input), Ok(Step::Consumed(n)) if n == input.len())
        && l.in_left == 0
        && l.out_left == 0
}
