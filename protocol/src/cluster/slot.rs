//! Hash slots: the slot of a key, sets of slots, and the ranges
//! `redis-cli --cluster create` gives N primaries.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// Hash slots in a Redis or Valkey cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, init 0, not reflected), as
/// `crc16.c` in Redis computes it. `CRC16[0]` is the bytewise table;
/// `CRC16[k][b]` is the CRC of byte `b` followed by `k` zero bytes, so
/// eight bytes are folded in with eight independent lookups
/// ("slicing-by-8") rather than a chain of eight dependent ones: keys are
/// hashed once each, and a bulk check hashes millions.
const CRC16: [[u16; 256]; 8] = {
    let mut t = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// Continues a CRC16/XMODEM over `bytes`.
#[inline]
fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    let mut blocks = bytes.chunks_exact(8);
    for b in &mut blocks {
        let [hi, lo] = crc.to_be_bytes();
        crc = CRC16[7][usize::from(b[0] ^ hi)]
            ^ CRC16[6][usize::from(b[1] ^ lo)]
            ^ CRC16[5][usize::from(b[2])]
            ^ CRC16[4][usize::from(b[3])]
            ^ CRC16[3][usize::from(b[4])]
            ^ CRC16[2][usize::from(b[5])]
            ^ CRC16[1][usize::from(b[6])]
            ^ CRC16[0][usize::from(b[7])];
    }
    // The last two to seven bytes the same way, with the tables for
    // fewer trailing zeros (the register is wholly shifted out by two).
    match *blocks.remainder() {
        [] => crc,
        [b] => (crc << 8) ^ CRC16[0][usize::from(b ^ crc.to_be_bytes()[0])],
        ref rest => {
            let [hi, lo] = crc.to_be_bytes();
            let n = rest.len();
            let mut out =
                CRC16[n - 1][usize::from(rest[0] ^ hi)] ^ CRC16[n - 2][usize::from(rest[1] ^ lo)];
            for (j, &b) in rest.iter().enumerate().skip(2) {
                out ^= CRC16[n - 1 - j][usize::from(b)];
            }
            out
        }
    }
}

/// The position of the first `b` in `bytes`: eight bytes at a time in a
/// word for the short slices most keys are (no call), `memchr` for the
/// rest.
#[inline]
fn find(b: u8, bytes: &[u8]) -> Option<usize> {
    if bytes.len() > 64 {
        return memchr::memchr(b, bytes);
    }
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let pattern = LOW * u64::from(b);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        // A zero byte of `x` is a match; the lowest flagged one is exact
        // (borrows only run upwards from a real zero).
        let x = u64::from_le_bytes(a) ^ pattern;
        let found = x.wrapping_sub(LOW) & !x & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&x| x == b)
        .map(|p| at + p)
}

/// The hash slot of a key, as Redis's `keyHashSlot` computes it: CRC16 of
/// the key mod 16384, or of its hash tag when it has one. The tag is what
/// lies between the first `{` and the first `}` after it, when that is
/// not empty; otherwise (no `{`, no `}` after it, or `{}`) the whole key is
/// hashed.
///
/// ```
/// use replvault_protocol::cluster::key_slot;
/// assert_eq!(key_slot(b"123456789"), 12739); // CRC16 0x31C3
/// assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
/// assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match find(b'{', key) {
        Some(open) => match find(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(0, hashed) & (SLOTS - 1)
}

/// Where a [`SlotHasher`] is in the hash-tag rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Tag {
    /// No `{` yet.
    #[default]
    Before,
    /// After the first `{`, no `}` yet: the tag so far.
    Inside,
    /// The tag closed and is not empty: it is the slot.
    Closed,
    /// The tag closed empty (`{}`): the whole key is hashed.
    Whole,
}

/// The slot of a key fed in pieces of any size, without holding it: the
/// CRC16 runs over the whole key and, from the first `{` on, over the tag,
/// whichever the key turns out to need. Same result as [`key_slot`].
#[derive(Clone, Debug, Default)]
pub struct SlotHasher {
    whole: u16,
    tag: u16,
    tag_len: u64,
    state: Tag,
}

impl SlotHasher {
    /// A hasher at the start of a key.
    pub fn new() -> Self {
        SlotHasher::default()
    }

    /// Feeds the next bytes of the key.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                Tag::Closed => return,
                Tag::Whole => {
                    self.whole = crc16(self.whole, bytes);
                    return;
                }
                Tag::Before => {
                    let Some(open) = find(b'{', bytes) else {
                        self.whole = crc16(self.whole, bytes);
                        return;
                    };
                    self.whole = crc16(self.whole, &bytes[..=open]);
                    self.state = Tag::Inside;
                    bytes = &bytes[open + 1..];
                }
                Tag::Inside => {
                    let Some(close) = find(b'}', bytes) else {
                        self.whole = crc16(self.whole, bytes);
                        self.tag = crc16(self.tag, bytes);
                        self.tag_len += bytes.len() as u64;
                        return;
                    };
                    self.tag = crc16(self.tag, &bytes[..close]);
                    self.tag_len += close as u64;
                    if self.tag_len > 0 {
                        self.state = Tag::Closed;
                        return;
                    }
                    self.whole = crc16(self.whole, &bytes[..=close]);
                    self.state = Tag::Whole;
                    bytes = &bytes[close + 1..];
                }
            }
        }
    }

    /// The slot, if the bytes so far already fix it (a non-empty hash tag
    /// has closed: nothing after it matters).
    pub fn decided(&self) -> Option<u16> {
        (self.state == Tag::Closed).then_some(self.tag & (SLOTS - 1))
    }

    /// The slot of the key fed, taken as complete.
    pub fn slot(&self) -> u16 {
        match self.state {
            Tag::Closed => self.tag & (SLOTS - 1),
            _ => self.whole & (SLOTS - 1),
        }
    }
}

/// What is wrong with a slot, a slot range or a slot list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotError {
    /// A slot past 16383.
    #[error("slot {0} is out of range (slots are 0 to 16383)")]
    OutOfRange(u64),
    /// A range whose start is after its end.
    #[error("slot range {start}-{end} is empty (start after end)")]
    EmptyRange {
        /// First slot.
        start: u16,
        /// Last slot.
        end: u16,
    },
    /// Outputs or shards out of 1..=16384.
    #[error("{0} outputs: there must be 1 to 16384 (one slot each at most)")]
    Count(usize),
    /// Two sets meant to be disjoint share a slot.
    #[error("slot {0} is in two of the sets")]
    Overlap(u16),
    /// Text that is not a slot list like `0-5460,5462`.
    #[error("not a slot list (like \"0-5460,5462\"): {0:?}")]
    Parse(String),
}

/// A set of hash slots (16,384 bits).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotSet {
    bits: Box<[u64; SLOTS as usize / 64]>,
}

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet::new()
    }
}

impl SlotSet {
    /// The empty set.
    pub fn new() -> Self {
        SlotSet {
            bits: Box::new([0; SLOTS as usize / 64]),
        }
    }

    /// Every slot, 0 to 16383.
    pub fn all() -> Self {
        SlotSet {
            bits: Box::new([u64::MAX; SLOTS as usize / 64]),
        }
    }

    /// The slots of some inclusive ranges (as `CLUSTER SLOTS` lists them),
    /// such as `[0..=5460, 10923..=16383]`.
    pub fn from_ranges(
        ranges: impl IntoIterator<Item = RangeInclusive<u16>>,
    ) -> Result<Self, SlotError> {
        let mut set = SlotSet::new();
        for r in ranges {
            set.insert_range(r)?;
        }
        Ok(set)
    }

    /// Adds one slot.
    pub fn insert(&mut self, slot: u16) -> Result<(), SlotError> {
        if slot >= SLOTS {
            return Err(SlotError::OutOfRange(u64::from(slot)));
        }
        self.bits[usize::from(slot / 64)] |= 1 << (slot % 64);
        Ok(())
    }

    /// Adds an inclusive range of slots.
    pub fn insert_range(&mut self, range: RangeInclusive<u16>) -> Result<(), SlotError> {
        let (start, end) = (*range.start(), *range.end());
        if end >= SLOTS {
            return Err(SlotError::OutOfRange(u64::from(end)));
        }
        if start > end {
            return Err(SlotError::EmptyRange { start, end });
        }
        for slot in start..=end {
            self.bits[usize::from(slot / 64)] |= 1 << (slot % 64);
        }
        Ok(())
    }

    /// Whether `slot` is in the set (never for slots past 16383).
    #[inline]
    pub fn contains(&self, slot: u16) -> bool {
        slot < SLOTS && self.bits[usize::from(slot / 64)] & (1 << (slot % 64)) != 0
    }

    /// Slots in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Whether the two sets share no slot.
    pub fn is_disjoint(&self, other: &SlotSet) -> bool {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .all(|(a, b)| a & b == 0)
    }

    /// Adds every slot of `other`.
    pub fn union_with(&mut self, other: &SlotSet) {
        for (a, b) in self.bits.iter_mut().zip(other.bits.iter()) {
            *a |= b;
        }
    }

    /// The set as maximal inclusive ranges, in order.
    pub fn ranges(&self) -> Vec<RangeInclusive<u16>> {
        let mut out = Vec::new();
        let mut start: Option<u16> = None;
        for slot in 0..SLOTS {
            match (self.contains(slot), start) {
                (true, None) => start = Some(slot),
                (false, Some(s)) => {
                    out.push(s..=slot - 1);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(s..=SLOTS - 1);
        }
        out
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotSet({self})")
    }
}

/// The slot list form: ranges and single slots separated by commas, such
/// as `0-5460,5462`; `-` for the empty set.
impl fmt::Display for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges = self.ranges();
        if ranges.is_empty() {
            return f.write_str("-");
        }
        for (i, r) in ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// Parses the form [`Display`](fmt::Display) writes: `0-5460,5462` (spaces
/// around items allowed), or `-` for the empty set.
impl FromStr for SlotSet {
    type Err = SlotError;

    fn from_str(s: &str) -> Result<Self, SlotError> {
        let mut set = SlotSet::new();
        if s.trim() == "-" {
            return Ok(set);
        }
        let slot = |t: &str| -> Result<u16, SlotError> {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SlotError::Parse(s.to_string()));
            }
            let n: u64 = t.parse().map_err(|_| SlotError::OutOfRange(u64::MAX))?;
            u16::try_from(n)
                .ok()
                .filter(|&n| n < SLOTS)
                .ok_or(SlotError::OutOfRange(n))
        };
        for item in s.split(',') {
            match item.split_once('-') {
                Some((a, b)) => set.insert_range(slot(a)?..=slot(b)?)?,
                None => set.insert(slot(item)?)?,
            }
        }
        Ok(set)
    }
}

/// The slot ranges `redis-cli --cluster create` (and `valkey-cli`) gives
/// `n` primaries, in order, as `clusterManagerCommandCreate` computes them:
/// a `float` step of 16384 / n, each range ending at the rounded cursor,
/// the last one at 16383. For 3 primaries: 0-5460, 5461-10922,
/// 10923-16383 (not the 0-5460, 5461-10921, 10922-16383 that integer
/// division would give).
///
/// For some counts past 7541 that arithmetic leaves the last primary
/// nothing but slot 16384, which does not exist (redis-cli then writes past
/// its slot table): those counts are refused with [`SlotError::Count`].
pub fn create_ranges(n: usize) -> Result<Vec<RangeInclusive<u16>>, SlotError> {
    if n == 0 || n > usize::from(SLOTS) {
        return Err(SlotError::Count(n));
    }
    // The same single-precision arithmetic as redis-cli, so the same
    // rounding: its `lround` rounds halves away from zero, as `round` does.
    let per_node = f32::from(SLOTS) / n as f32;
    let mut ranges = Vec::with_capacity(n);
    let mut first: i64 = 0;
    let mut cursor = 0.0f32;
    for i in 0..n {
        let mut last = (cursor + per_node - 1.0).round() as i64;
        if last > i64::from(SLOTS) || i == n - 1 {
            last = i64::from(SLOTS) - 1;
        }
        if last < first {
            last = first;
        }
        let (Ok(a), Ok(b)) = (u16::try_from(first), u16::try_from(last)) else {
            return Err(SlotError::Count(n));
        };
        if b >= SLOTS || a > b {
            return Err(SlotError::Count(n));
        }
        ranges.push(a..=b);
        first = last + 1;
        cursor += per_node;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC16/XMODEM a bit at a time, as the polynomial defines it.
    fn crc16_bitwise(bytes: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in bytes {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn sliced_crc16_matches_the_bitwise_one() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 151 % 256) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc16(0, &data[..len]), crc16_bitwise(&data[..len]), "{len}");
        }
        // Continued in pieces, the same.
        let whole = crc16(0, &data);
        for cut in 0..data.len() {
            assert_eq!(crc16(crc16(0, &data[..cut]), &data[cut..]), whole);
        }
    }

    #[test]
    fn find_agrees_with_position() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..200 {
            for _ in 0..20 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        [b'{', b'}', b'a', 0x7A, 0x7C, 0xFB, 0x00][(rng % 7) as usize]
                    })
                    .collect();
                for b in [b'{', b'}'] {
                    assert_eq!(find(b, &v), v.iter().position(|&x| x == b), "{v:?}");
                }
            }
        }
    }

    #[test]
    fn crc16_and_slots_match_redis() {
        // crc16.c's own test value, and Redis's cluster spec examples.
        assert_eq!(crc16(0, b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 0x3FFF);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b""), 0);
        // CLUSTER KEYSLOT on a real server (Redis 7.0).
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
    }

    #[test]
    fn hash_tags_follow_redis_rule() {
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag: the whole key.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(0, b"foo{}{bar}") & 0x3FFF);
        // The first `{`, then the first `}` after it.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(0, b"{bar") & 0x3FFF);
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // No closing brace, or one only before the opening one.
        assert_eq!(key_slot(b"foo{bar"), crc16(0, b"foo{bar") & 0x3FFF);
        assert_eq!(key_slot(b"}foo{bar"), crc16(0, b"}foo{bar") & 0x3FFF);
        assert_eq!(key_slot(b"a}b{c}"), key_slot(b"c"));
    }

    /// Keys made of the characters the tag rule looks at.
    fn tricky_keys() -> Vec<Vec<u8>> {
        let alphabet = b"{}ab";
        let mut keys = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..6 {
            let mut next = Vec::new();
            for k in &last {
                for &c in alphabet {
                    let mut k = k.clone();
                    k.push(c);
                    next.push(k);
                }
            }
            keys.extend(next.iter().cloned());
            last = next;
        }
        keys
    }

    #[test]
    fn the_hasher_in_pieces_agrees_with_key_slot() {
        for key in tricky_keys() {
            let want = key_slot(&key);
            for cut in 0..=key.len() {
                for cut2 in cut..=key.len() {
                    let mut h = SlotHasher::new();
                    h.update(&key[..cut]);
                    h.update(&key[cut..cut2]);
                    if let Some(s) = h.decided() {
                        assert_eq!(s, want, "{:?} decided early", key.escape_ascii());
                    }
                    h.update(&key[cut2..]);
                    assert_eq!(h.slot(), want, "{:?} cut {cut} {cut2}", key.escape_ascii());
                }
            }
            // Once the tag has closed, the slot is known.
            let mut h = SlotHasher::new();
            for b in &key {
                h.update(std::slice::from_ref(b));
            }
            let closed = key
                .iter()
                .position(|&b| b == b'{')
                .and_then(|o| key[o + 1..].iter().position(|&b| b == b'}'))
                .is_some_and(|l| l > 0);
            assert_eq!(h.decided().is_some(), closed, "{:?}", key.escape_ascii());
        }
    }

    #[test]
    fn slot_sets_hold_ranges() {
        let s = SlotSet::from_ranges([0..=5460, 10923..=16383]).unwrap();
        assert!(s.contains(0) && s.contains(5460) && !s.contains(5461));
        assert!(s.contains(16383) && !s.contains(16384) && !s.contains(u16::MAX));
        assert_eq!(s.len(), 5461 + 5461);
        assert_eq!(s.ranges(), vec![0..=5460, 10923..=16383]);
        assert_eq!(s.to_string(), "0-5460,10923-16383");
        assert_eq!("0-5460, 10923-16383".parse::<SlotSet>().unwrap(), s);
        assert_eq!("7".parse::<SlotSet>().unwrap().ranges(), vec![7..=7]);
        assert_eq!("-".parse::<SlotSet>().unwrap(), SlotSet::new());
        assert_eq!(SlotSet::new().to_string(), "-");
        assert_eq!(SlotSet::all().to_string(), "0-16383");
        assert_eq!(SlotSet::all().len(), 16384);
        assert!(SlotSet::new().is_empty());
        assert_eq!(
            SlotSet::from_ranges([5..=16384]),
            Err(SlotError::OutOfRange(16384))
        );
        assert_eq!(
            SlotSet::from_ranges([RangeInclusive::new(6, 5)]),
            Err(SlotError::EmptyRange { start: 6, end: 5 })
        );
        assert_eq!(
            "1-99999".parse::<SlotSet>(),
            Err(SlotError::OutOfRange(99999))
        );
        for bad in [
            "",
            "a",
            "1-",
            "1,,2",
            "-1",
            "1-2-3",
            "99999999999999999999999",
        ] {
            assert!(bad.parse::<SlotSet>().is_err(), "{bad:?}");
        }
        let a = SlotSet::from_ranges([0..=9]).unwrap();
        let b = SlotSet::from_ranges([10..=19]).unwrap();
        assert!(a.is_disjoint(&b) && !a.is_disjoint(&a));
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.ranges(), vec![0..=19]);
    }

    #[test]
    fn create_ranges_match_redis_cli() {
        // What `redis-cli --cluster create` prints for 3 primaries.
        assert_eq!(
            create_ranges(3).unwrap(),
            vec![0..=5460, 5461..=10922, 10923..=16383]
        );
        assert_eq!(create_ranges(1).unwrap(), vec![0..=16383]);
        assert_eq!(create_ranges(2).unwrap(), vec![0..=8191, 8192..=16383]);
        assert_eq!(
            create_ranges(5).unwrap(),
            vec![
                0..=3276,
                3277..=6553,
                6554..=9829,
                9830..=13106,
                13107..=16383
            ]
        );
        // redis-cli's own arithmetic (compiled from clusterManagerCommandCreate).
        assert_eq!(
            create_ranges(7).unwrap(),
            vec![
                0..=2340,
                2341..=4680,
                4681..=7021,
                7022..=9361,
                9362..=11702,
                11703..=14042,
                14043..=16383
            ]
        );
        assert_eq!(create_ranges(0), Err(SlotError::Count(0)));
        assert_eq!(create_ranges(16385), Err(SlotError::Count(16385)));
        // Every count: contiguous, in order, covering every slot once; or,
        // where redis-cli's float arithmetic would run past slot 16383
        // before the last primary (from 7542 on, 2989 counts in all, as
        // the C code computes them), an error.
        let mut refused = Vec::new();
        for n in 1..=usize::from(SLOTS) {
            let Ok(r) = create_ranges(n) else {
                refused.push(n);
                continue;
            };
            assert_eq!(r.len(), n);
            assert_eq!(*r[0].start(), 0);
            assert_eq!(*r[n - 1].end(), SLOTS - 1);
            for w in r.windows(2) {
                assert_eq!(*w[1].start(), *w[0].end() + 1, "n = {n}");
            }
        }
        assert_eq!((refused.len(), refused.first()), (2989, Some(&7542)));
    }
}
