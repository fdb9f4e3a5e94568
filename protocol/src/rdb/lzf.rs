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
    /// The window, and the output since the caller last took it
    /// ([`Lzf::take_fresh`]), so it sees every byte without the decoder
    /// holding them all.
    Stream,
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
    /// `Keep::Stream`: where in `out` the output not yet taken starts.
    taken: usize,
}

/// Result of one decoding step.
pub(crate) enum Step {
    /// Consumed this many input bytes.
    Consumed(usize),
    /// The next instruction needs more input than is buffered.
    NeedMore,
}

/// One LZF instruction, from its control byte (and one or two more).
enum Op {
    /// This many literal bytes follow the control byte.
    Literal(usize),
    /// Copy `n` bytes from `back` bytes behind the output's end; the
    /// instruction is `size` bytes long.
    Back { n: usize, back: usize, size: usize },
}

/// Messages for a stream that ends inside an instruction.
const CUT_LITERAL: &str = "LZF literal runs past the compressed length";
const CUT_BACKREF: &str = "LZF back-reference runs past the compressed length";

/// Reads the instruction at the start of `input` (not empty); `None` when
/// a back-reference is cut short. A literal's bytes are the caller's to
/// check.
#[inline(always)]
fn op(input: &[u8]) -> Option<Op> {
    let ctrl = *input.first()? as usize;
    if ctrl < 32 {
        return Some(Op::Literal(ctrl + 1));
    }
    let mut len = ctrl >> 5;
    let size = if len == 7 { 3 } else { 2 };
    let ops = input.get(1..size)?;
    let low = if len == 7 {
        len += ops[0] as usize;
        ops[1]
    } else {
        ops[0]
    };
    Some(Op::Back {
        n: len + 2,
        back: ((ctrl & 0x1F) << 8) + low as usize + 1,
        size,
    })
}

impl Lzf {
    pub(crate) fn new(clen: u64, len: u64, keep: Keep) -> Self {
        // Reserve what is likely needed, but never trust a declared length
        // with more than 1 MiB up front: the output then grows only as
        // real input produces it.
        let cap = match keep {
            Keep::Nothing => 0,
            Keep::Window | Keep::Stream => len.min(16 * WINDOW as u64),
            Keep::All => len.min(clen.saturating_mul(4)).min(1 << 20),
        };
        Lzf {
            in_left: clen,
            out_left: len,
            produced: 0,
            out: Vec::with_capacity(usize::try_from(cap).unwrap_or(0)),
            keep,
            taken: 0,
        }
    }

    /// Whether the output is kept whole.
    pub(crate) fn keeps_all(&self) -> bool {
        self.keep == Keep::All
    }

    /// `Keep::Stream`: hands `f` the output produced since the last call,
    /// then forgets all but the window. The output of one [`Lzf::step`] is
    /// at most 88 times its input (a 3-byte back-reference copies 264
    /// bytes), which bounds what is held.
    pub(crate) fn take_fresh(&mut self, f: impl FnOnce(&[u8])) {
        f(&self.out[self.taken.min(self.out.len())..]);
        if self.out.len() > 2 * WINDOW {
            let cut = self.out.len() - WINDOW;
            self.out.drain(..cut);
        }
        self.taken = self.out.len();
    }

    /// True when all input has been read (check [`Lzf::complete`] then).
    pub(crate) fn done(&self) -> bool {
        self.in_left == 0
    }

    /// Once all input is read: the output must have its declared length.
    pub(crate) fn complete(&self) -> Result<(), String> {
        if self.out_left != 0 {
            return Err(format!(
                "decodes to {} bytes fewer than declared",
                self.out_left
            ));
        }
        Ok(())
    }

    /// Decodes instructions from `input` until it runs out or the string ends.
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, String> {
        // Only this string's bytes; when all of them are here, an
        // instruction cut short is an error rather than a wait for more.
        let avail = usize::try_from(self.in_left).unwrap_or(usize::MAX);
        let all_here = input.len() >= avail;
        let input = &input[..input.len().min(avail)];
        let (keep, window) = (self.keep != Keep::Nothing, self.keep == Keep::Window);
        // Locals, not fields, in the hot loop.
        let mut p = 0;
        let mut produced = self.produced;
        let mut out_left = self.out_left;
        let res: Result<(), &str> = loop {
            if p == input.len() {
                break Ok(());
            }
            match op(&input[p..]) {
                None if all_here => break Err(CUT_BACKREF),
                None => break Ok(()),
                Some(Op::Literal(n)) => {
                    let Some(lit) = input.get(p + 1..p + 1 + n) else {
                        break if all_here { Err(CUT_LITERAL) } else { Ok(()) };
                    };
                    if n as u64 > out_left {
                        break Err("LZF output longer than the declared length");
                    }
                    if keep {
                        self.out.extend_from_slice(lit);
                    }
                    produced += n as u64;
                    out_left -= n as u64;
                    p += 1 + n;
                }
                Some(Op::Back { n, back, size }) => {
                    if back as u64 > produced {
                        break Err("LZF back-reference before the start of the output");
                    }
                    if n as u64 > out_left {
                        break Err("LZF output longer than the declared length");
                    }
                    if keep {
                        let start = self.out.len() - back;
                        if back >= n {
                            self.out.extend_from_within(start..start + n);
                        } else {
                            // An overlapping copy repeats the last `back`
                            // bytes: copy whole periods from `start`,
                            // doubling each time.
                            let mut done = 0;
                            while done < n {
                                let m = (back + done).min(n - done);
                                self.out.extend_from_within(start..start + m);
                                done += m;
                            }
                        }
                    }
                    produced += n as u64;
                    out_left -= n as u64;
                    p += size;
                }
            }
            if window && self.out.len() > 8 * WINDOW {
                let cut = self.out.len() - WINDOW;
                self.out.drain(..cut);
            }
        };
        self.produced = produced;
        self.out_left = out_left;
        self.in_left -= p as u64;
        res.map_err(str::to_string)?;
        if p == 0 && self.in_left > 0 {
            return Ok(Step::NeedMore);
        }
        Ok(Step::Consumed(p))
    }
}

/// True when `input` is exactly one valid LZF stream decoding to `out_len`
/// bytes (checked without producing the output).
///
/// The checker runs this on every short compressed value in the record walk
/// (the commonest record of bulk data with `rdbcompression yes`), so it is
/// a lean loop of its own rather than [`Lzf::step`] with its state and
/// messages; a `false` sends the caller to `step`, which says what is wrong.
#[inline]
pub(crate) fn check_complete(input: &[u8], out_len: u64) -> bool {
    let mut p = 0usize;
    let mut produced = 0u64;
    while p < input.len() {
        match op(&input[p..]) {
            None => return false,
            // A literal cut short leaves `p` past the end.
            Some(Op::Literal(n)) => {
                p += 1 + n;
                produced += n as u64;
            }
            Some(Op::Back { n, back, size }) => {
                if back as u64 > produced {
                    return false;
                }
                p += size;
                produced += n as u64;
            }
        }
        if produced > out_len {
            return false;
        }
    }
    p == input.len() && produced == out_len
}

/// Most output one input byte can produce: a 3-byte back-reference
/// yields at most 264 bytes.
const MAX_EXPANSION: u64 = 88;

/// Slack past the output's end so short copies can be fixed-size.
const SLACK: usize = 32;

/// Decodes `input`, one whole LZF stream held in memory, into exactly
/// `out_len` bytes in `out` (whose old contents it replaces).
///
/// The fast path for compressed blobs that arrive within one chunk: the
/// output is sized once (bounded by what `input` can expand to, so a lying
/// length cannot make it allocate), and literals and back-references are
/// copied with fixed-size moves into slack past the end rather than one
/// `memcpy` call each.
pub(crate) fn decode_whole(input: &[u8], out_len: u64, out: &mut Vec<u8>) -> Result<(), String> {
    if out_len > (input.len() as u64).saturating_mul(MAX_EXPANSION) {
        return Err(format!(
            "declares {out_len} bytes, more than {} compressed bytes can hold",
            input.len()
        ));
    }
    // At most MAX_EXPANSION times the input, which is in memory already.
    let len = usize::try_from(out_len).map_err(|_| format!("declares {out_len} bytes"))?;
    out.clear();
    out.resize(len + SLACK, 0);
    let buf = &mut out[..];
    let (mut p, mut o) = (0usize, 0usize);
    let res = loop {
        if p == input.len() {
            break if o == len {
                Ok(())
            } else {
                Err(format!("decodes to {} bytes fewer than declared", len - o))
            };
        }
        match op(&input[p..]) {
            None => break Err(CUT_BACKREF.into()),
            Some(Op::Literal(n)) => {
                if p + 1 + n > input.len() {
                    break Err(CUT_LITERAL.into());
                }
                if n > len - o {
                    break Err("LZF output longer than the declared length".into());
                }
                if p + 1 + SLACK <= input.len() {
                    // n <= 32 = SLACK, and `buf` has SLACK bytes past `len`.
                    buf[o..o + SLACK].copy_from_slice(&input[p + 1..p + 1 + SLACK]);
                } else {
                    buf[o..o + n].copy_from_slice(&input[p + 1..p + 1 + n]);
                }
                o += n;
                p += 1 + n;
            }
            Some(Op::Back { n, back, size }) => {
                if back > o {
                    break Err("LZF back-reference before the start of the output".into());
                }
                if n > len - o {
                    break Err("LZF output longer than the declared length".into());
                }
                let start = o - back;
                if back >= 16 && n <= 16 {
                    // Source and destination 16 bytes apart at least, and
                    // the destination has slack: one fixed-size move.
                    buf.copy_within(start..start + 16, o);
                } else if back >= n {
                    buf.copy_within(start..start + n, o);
                } else {
                    // Overlapping: repeat the last `back` bytes, a period
                    // (or a doubling run of them) at a time.
                    let mut done = 0;
                    while done < n {
                        let m = (back + done).min(n - done);
                        buf.copy_within(start..start + m, o + done);
                        done += m;
                    }
                }
                o += n;
                p += size;
            }
        }
    };
    out.truncate(len);
    res
}

/// The LZF instruction that copies `len` bytes from `back` bytes behind
/// the output's end (for tests that build LZF strings).
#[cfg(test)]
pub(crate) fn backref(len: usize, back: usize) -> Vec<u8> {
    let (l, b) = (len - 2, back - 1);
    if l < 7 {
        vec![((l << 5) | (b >> 8)) as u8, b as u8]
    } else {
        vec![((7 << 5) | (b >> 8)) as u8, (l - 7) as u8, b as u8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference decoder: LZF as liblzf defines it, bytewise.
    fn naive(input: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let mut p = 0;
        while p < input.len() {
            let ctrl = input[p] as usize;
            p += 1;
            if ctrl < 32 {
                out.extend_from_slice(&input[p..p + ctrl + 1]);
                p += ctrl + 1;
            } else {
                let mut len = ctrl >> 5;
                if len == 7 {
                    len += input[p] as usize;
                    p += 1;
                }
                let back = ((ctrl & 0x1f) << 8) + input[p] as usize + 1;
                p += 1;
                let start = out.len() - back;
                for i in 0..len + 2 {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
        out
    }

    /// What `check_complete` must agree with: the streaming decoder.
    fn check_by_step(input: &[u8], out_len: u64) -> bool {
        let mut l = Lzf::new(input.len() as u64, out_len, Keep::Nothing);
        matches!(l.step(input), Ok(Step::Consumed(n)) if n == input.len()) && l.complete().is_ok()
    }

    #[test]
    fn the_lean_check_agrees_with_the_decoder() {
        // Valid streams, then every one cut, extended and with a byte
        // changed, against declared lengths around the right one.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut agreed, mut valid) = (0, 0);
        for _ in 0..3000 {
            let mut input = Vec::new();
            let mut out = 0u64;
            for _ in 0..1 + next() % 6 {
                if out == 0 || next() % 2 == 0 {
                    let n = 1 + (next() % 32) as usize;
                    input.push((n - 1) as u8);
                    input.extend((0..n).map(|_| next() as u8));
                    out += n as u64;
                } else {
                    let back = 1 + (next() % out.min(8192)) as usize;
                    let len = 2 + (next() % 263) as usize;
                    input.extend(backref(len, back));
                    out += len as u64;
                }
            }
            let mut variants = vec![input.clone(), input[..input.len() - 1].to_vec()];
            let mut longer = input.clone();
            longer.push(next() as u8);
            variants.push(longer);
            let mut flipped = input.clone();
            let at = (next() % input.len() as u64) as usize;
            flipped[at] ^= 1 << (next() % 8);
            variants.push(flipped);
            for v in &variants {
                for len in [out.saturating_sub(1), out, out + 1, out + 200] {
                    let want = check_by_step(v, len);
                    assert_eq!(check_complete(v, len), want, "{v:?} declared {len}");
                    agreed += 1;
                    valid += usize::from(want);
                }
            }
        }
        // Both outcomes were exercised, not just one.
        assert!(valid > 3000 && valid < agreed - 3000, "{valid} of {agreed}");
    }

    #[test]
    fn overlapping_and_plain_back_references_match_the_reference() {
        for back in [1usize, 2, 3, 5, 8, 31] {
            for len in [2usize, 3, 8, 9, 40, 100, 264] {
                let mut input = vec![31u8];
                input.extend((0..32u8).map(|i| i.wrapping_mul(37)));
                input.extend(backref(len, back));
                input.extend([2, b'a', b'b', b'c']);
                input.extend(backref(len, back));
                let want = naive(&input);
                for keep in [Keep::All, Keep::Window, Keep::Nothing] {
                    let mut l = Lzf::new(input.len() as u64, want.len() as u64, keep);
                    assert!(matches!(l.step(&input), Ok(Step::Consumed(n)) if n == input.len()));
                    assert_eq!(l.out_left, 0);
                    if keep == Keep::All {
                        assert_eq!(l.out, want, "back {back} len {len}");
                    }
                }
                let mut whole = Vec::new();
                decode_whole(&input, want.len() as u64, &mut whole).unwrap();
                assert_eq!(whole, want, "back {back} len {len}");
                // A literal at the very end (no slack in the input).
                let mut tail = input.clone();
                tail.extend([0, b'z']);
                let mut want_tail = want.clone();
                want_tail.push(b'z');
                decode_whole(&tail, want_tail.len() as u64, &mut whole).unwrap();
                assert_eq!(whole, want_tail);
                for wrong in [want.len() - 1, want.len() + 1] {
                    assert!(decode_whole(&input, wrong as u64, &mut whole).is_err());
                }
                assert!(check_complete(&input, want.len() as u64));
                assert!(!check_complete(&input, want.len() as u64 + 1));
            }
        }
        // A reference before the start of the output is refused.
        let mut bad = vec![0u8, b'x'];
        bad.extend(backref(3, 2));
        assert!(!check_complete(&bad, 4));
        assert!(decode_whole(&bad, 4, &mut Vec::new()).is_err());
        // A declared length beyond what the input can expand to is refused
        // before anything is allocated.
        assert!(decode_whole(&[0, b'x'], 1 << 40, &mut Vec::new()).is_err());
        // Cut instructions.
        assert!(decode_whole(&[5, b'x'], 6, &mut Vec::new()).is_err());
        assert!(decode_whole(&[0, b'x', 0xE0], 10, &mut Vec::new()).is_err());
    }
}
