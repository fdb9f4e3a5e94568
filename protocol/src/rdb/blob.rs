//! Validation of the encoded blobs RDB embeds as strings: listpack,
//! ziplist, intset and zipmap. Every internal length is checked against the
//! blob, so a corrupt blob is caught at backup time, not when Redis loads it.

/// The kinds of encoded blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlobKind {
    Listpack,
    Ziplist,
    Intset,
    Zipmap,
}

impl BlobKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlobKind::Listpack => "listpack",
            BlobKind::Ziplist => "ziplist",
            BlobKind::Intset => "intset",
            BlobKind::Zipmap => "zipmap",
        }
    }
}

/// Checks a blob; the error says what is wrong and where inside the blob.
pub(crate) fn validate(kind: BlobKind, b: &[u8]) -> Result<(), String> {
    match kind {
        BlobKind::Listpack => listpack(b),
        BlobKind::Ziplist => ziplist(b),
        BlobKind::Intset => intset(b),
        BlobKind::Zipmap => zipmap(b),
    }
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Size of a listpack backlen field for an entry of `len` bytes.
fn lp_backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16383 => 2,
        16384..=2097151 => 3,
        2097152..=268435455 => 4,
        _ => 5,
    }
}

fn listpack(b: &[u8]) -> Result<(), String> {
    let total = u32le(b, 0).ok_or("listpack shorter than its header")? as usize;
    if total != b.len() {
        return Err(format!(
            "listpack header says {total} bytes, blob has {}",
            b.len()
        ));
    }
    let declared = u16le(b, 4).ok_or("listpack shorter than its header")?;
    let mut p = 6;
    let mut count: u32 = 0;
    loop {
        let enc = *b
            .get(p)
            .ok_or_else(|| format!("listpack entry at {p} past the end"))?;
        if enc == 0xFF {
            if p + 1 != b.len() {
                return Err(format!("listpack end marker at {p} is not the last byte"));
            }
            break;
        }
        let (hdr, data): (usize, usize) = if enc & 0x80 == 0 {
            (1, 0)
        } else if enc & 0xC0 == 0x80 {
            (1, (enc & 0x3F) as usize)
        } else if enc & 0xE0 == 0xC0 {
            (2, 0)
        } else if enc & 0xF0 == 0xE0 {
            let lo = *b.get(p + 1).ok_or("listpack entry header truncated")?;
            (2, (((enc & 0x0F) as usize) << 8) | lo as usize)
        } else {
            match enc {
                0xF0 => (
                    5,
                    u32le(b, p + 1).ok_or("listpack entry header truncated")? as usize,
                ),
                0xF1 => (1, 2),
                0xF2 => (1, 3),
                0xF3 => (1, 4),
                0xF4 => (1, 8),
                _ => {
                    return Err(format!(
                        "listpack entry at {p} has invalid encoding {enc:#04x}"
                    ));
                }
            }
        };
        let entry = hdr
            .checked_add(data)
            .ok_or("listpack entry length overflows")?;
        let back = lp_backlen_size(entry);
        let end = p
            .checked_add(entry)
            .and_then(|e| e.checked_add(back))
            .ok_or("listpack entry length overflows")?;
        if end >= b.len() {
            return Err(format!(
                "listpack entry at {p} ({entry} bytes) runs past the end"
            ));
        }
        // The backlen stores the entry length, 7 bits per byte, big-endian
        // in reading order from the end.
        let mut v: usize = 0;
        for (i, byte) in b[p + entry..end].iter().rev().enumerate() {
            v |= ((byte & 0x7F) as usize) << (7 * i);
        }
        if v != entry {
            return Err(format!(
                "listpack entry at {p} has backlen {v}, expected {entry}"
            ));
        }
        p = end;
        count += 1;
    }
    if declared != u16::MAX && u32::from(declared) != count {
        return Err(format!(
            "listpack header says {declared} entries, found {count}"
        ));
    }
    Ok(())
}

fn ziplist(b: &[u8]) -> Result<(), String> {
    let total = u32le(b, 0).ok_or("ziplist shorter than its header")? as usize;
    if total != b.len() {
        return Err(format!(
            "ziplist header says {total} bytes, blob has {}",
            b.len()
        ));
    }
    let tail = u32le(b, 4).ok_or("ziplist shorter than its header")? as usize;
    let declared = u16le(b, 8).ok_or("ziplist shorter than its header")?;
    let mut p = 10;
    let mut prev_len: usize = 0;
    let mut last_entry = 10;
    let mut count: u32 = 0;
    loop {
        let first = *b
            .get(p)
            .ok_or_else(|| format!("ziplist entry at {p} past the end"))?;
        if first == 0xFF {
            if p + 1 != b.len() {
                return Err(format!("ziplist end marker at {p} is not the last byte"));
            }
            break;
        }
        let (prevlen, plen) = if first < 254 {
            (first as usize, 1)
        } else {
            (
                u32le(b, p + 1).ok_or("ziplist prevlen truncated")? as usize,
                5,
            )
        };
        if prevlen != prev_len {
            return Err(format!(
                "ziplist entry at {p} has prevlen {prevlen}, expected {prev_len}"
            ));
        }
        let e = p + plen;
        let enc = *b.get(e).ok_or("ziplist entry truncated")?;
        let (hdr, data): (usize, usize) = match enc >> 6 {
            0 => (1, (enc & 0x3F) as usize),
            1 => {
                let lo = *b.get(e + 1).ok_or("ziplist entry truncated")?;
                (2, (((enc & 0x3F) as usize) << 8) | lo as usize)
            }
            2 => {
                let raw = b.get(e + 1..e + 5).ok_or("ziplist entry truncated")?;
                (
                    5,
                    u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize,
                )
            }
            _ => match enc {
                0xC0 => (1, 2),
                0xD0 => (1, 4),
                0xE0 => (1, 8),
                0xF0 => (1, 3),
                0xFE => (1, 1),
                0xF1..=0xFD => (1, 0),
                _ => {
                    return Err(format!(
                        "ziplist entry at {p} has invalid encoding {enc:#04x}"
                    ));
                }
            },
        };
        let len = plen + hdr + data;
        let end = p.checked_add(len).ok_or("ziplist entry length overflows")?;
        if end >= b.len() {
            return Err(format!(
                "ziplist entry at {p} ({len} bytes) runs past the end"
            ));
        }
        last_entry = p;
        prev_len = len;
        p = end;
        count += 1;
    }
    if count > 0 && tail != last_entry {
        return Err(format!(
            "ziplist tail offset {tail} is not the last entry {last_entry}"
        ));
    }
    if declared != u16::MAX && u32::from(declared) != count {
        return Err(format!(
            "ziplist header says {declared} entries, found {count}"
        ));
    }
    Ok(())
}

fn intset(b: &[u8]) -> Result<(), String> {
    let enc = u32le(b, 0).ok_or("intset shorter than its header")? as usize;
    if !matches!(enc, 2 | 4 | 8) {
        return Err(format!("intset has invalid encoding {enc}"));
    }
    let len = u32le(b, 4).ok_or("intset shorter than its header")? as usize;
    let want = len
        .checked_mul(enc)
        .and_then(|n| n.checked_add(8))
        .ok_or("intset length overflows")?;
    if want != b.len() {
        return Err(format!(
            "intset of {len} × {enc}-byte entries needs {want} bytes, blob has {}",
            b.len()
        ));
    }
    Ok(())
}

fn zipmap(b: &[u8]) -> Result<(), String> {
    let mut p = 1;
    let read_len = |p: &mut usize| -> Result<Option<usize>, String> {
        let first = *b.get(*p).ok_or("zipmap truncated")?;
        match first {
            255 => Ok(None),
            254 => {
                let v = u32le(b, *p + 1).ok_or("zipmap length truncated")? as usize;
                *p += 5;
                Ok(Some(v))
            }
            n => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    loop {
        let Some(klen) = read_len(&mut p)? else {
            if p + 1 != b.len() {
                return Err(format!("zipmap end marker at {p} is not the last byte"));
            }
            return Ok(());
        };
        p = p.checked_add(klen).ok_or("zipmap length overflows")?;
        let Some(vlen) = read_len(&mut p)? else {
            return Err("zipmap key without a value".into());
        };
        let free = *b.get(p).ok_or("zipmap truncated")? as usize;
        p = p
            .checked_add(1 + vlen + free)
            .ok_or("zipmap length overflows")?;
        if p >= b.len() {
            return Err("zipmap entry runs past the end".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_listpack_and_ziplist() {
        assert_eq!(listpack(&[7, 0, 0, 0, 0, 0, 0xFF]), Ok(()));
        assert!(listpack(&[8, 0, 0, 0, 0, 0, 0xFF]).is_err());
        assert_eq!(ziplist(&[11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xFF]), Ok(()));
    }

    #[test]
    fn listpack_with_entries() {
        // "a" (6-bit str), 5 (7-bit uint)
        let body = [0x81, b'a', 2, 0x05, 1, 0xFF];
        let mut lp = vec![0u8; 6];
        lp.extend_from_slice(&body);
        let total = lp.len() as u32;
        lp[0..4].copy_from_slice(&total.to_le_bytes());
        lp[4..6].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(listpack(&lp), Ok(()));
        lp[4] = 3;
        assert!(listpack(&lp).is_err());
        lp[4] = 2;
        lp[8] = 3; // wrong backlen
        assert!(listpack(&lp).is_err());
    }

    #[test]
    fn intset_sizes() {
        let mut is = vec![2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0];
        assert_eq!(intset(&is), Ok(()));
        is.push(0);
        assert!(intset(&is).is_err());
    }
}
