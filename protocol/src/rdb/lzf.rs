//! Streaming LZF decoder, as Redis uses for compressed strings.
//!
//! Crates such as `lzf` decompress whole buffers only; a backup must check a
//! 512 MB compressed string without holding it, so this decodes one control
//! instruction at a time and keeps only the 8 KiB window back-references can
//! reach (or the whole output when the caller needs it, bounded by the caller).

/// Farthest back an LZF back-reference reaches.
const WINDOW: usize = 8192;

/// Decoder state for one compressed string.
#[derive(Debug)]
pub(crate) struct Lzf {
    /// Compressed bytes still to read.
    pub(crate) in_left: u64,
    /// Decompressed bytes still expected.
    pub(crate) out_left: u64,
    /// Recent output (window), or all output when `keep_all`.
    pub(crate) out: Vec<u8>,
    /// Keep the whole output (the caller validates it afterwards).
    pub(crate) keep_all: bool,
}

/// Result of one decoding step.
pub(crate) enum Step {
    /// Consumed this many input bytes.
    Consumed(usize),
    /// The next instruction needs more input than is buffered.
    NeedMore,
}

impl Lzf {
    pub(crate) fn new(clen: u64, len: u64, keep_all: bool) -> Self {
        Lzf {
            in_left: clen,
            out_left: len,
            out: Vec::new(),
            keep_all,
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
                self.out.extend_from_slice(lit);
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
                if back > self.out.len() {
                    return Err("LZF back-reference before the start of the output".into());
                }
                if n as u64 > self.out_left {
                    return Err("LZF output longer than the declared length".into());
                }
                let start = self.out.len() - back;
                // Overlapping copies repeat the pattern, so copy bytewise.
                for i in 0..n {
                    let b = self.out[start + i];
                    self.out.push(b);
                }
                self.out_left -= n as u64;
                self.in_left -= need as u64;
                p += need;
            }
            if !self.keep_all && self.out.len() > 8 * WINDOW {
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
