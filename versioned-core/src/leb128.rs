//! Lengths as LEB128 (seven bits a byte, the high bit saying another follows): in the etcd
//! backend's stored rows and in query cursors.

/// Appends `n`.
pub(crate) fn write(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a length from the front of `input`, advancing it; `None` when it ends early or the
/// length does not fit a `usize`.
pub(crate) fn read(input: &mut &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn lengths_round_trip_and_a_cut_one_is_refused() {
        for n in [0, 1, 127, 128, 300, 16_384, usize::MAX] {
            let mut out = Vec::new();
            super::write(&mut out, n);
            let mut input = out.as_slice();
            assert_eq!(super::read(&mut input), Some(n));
            assert!(input.is_empty());
            let mut cut = &out[..out.len() - 1];
            assert_eq!(super::read(&mut cut), None);
        }
    }
}
