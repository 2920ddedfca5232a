//! Fuzzes the message parser: any bytes, split over segments the way a
//! receive buffer splits them (an 80-byte head, then blocks of a size the
//! input picks), must parse to a request or a `Malformed` value, never
//! panic or read out of bounds, and every payload slice of a parsed request
//! must lie inside the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slabfuse::op::Operation;
use slabfuse::parse::{NAME_SCRATCH_BYTES, ParseContext, parse};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, msg)) = data.split_first() else {
        return;
    };
    let block = [1usize, 7, 64, 4096][usize::from(shape & 3)];
    let ctx = ParseContext {
        name_max: 255,
        setxattr_ext: shape & 4 != 0,
    };
    let head = msg.len().min(80);
    let mut segments: Vec<&[u8]> = vec![&msg[..head]];
    segments.extend(msg[head..].chunks(block));
    let mut scratch = vec![0u8; NAME_SCRATCH_BYTES];
    let range = msg.as_ptr_range();
    if let Ok((header, op)) = parse(&segments, msg.len(), &ctx, &mut scratch) {
        assert_eq!(header.len as usize, msg.len());
        match op {
            Operation::Write(w) => {
                assert!(w.data.slices().all(|s| range.contains(&s.as_ptr())));
                assert_eq!(
                    w.data.slices().map(<[u8]>::len).sum::<usize>(),
                    w.data.len()
                );
            }
            Operation::SetXattr(x) => {
                assert!(x.value.slices().all(|s| range.contains(&s.as_ptr())));
            }
            Operation::BatchForget(b) => {
                assert_eq!(b.iter().count(), b.len());
            }
            _ => {}
        }
    }
});
