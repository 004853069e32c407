//! What the forwarder reads out of an RTP payload without depacketizing it: whether a
//! packet starts a key frame (the only place a subscriber may switch simulcast layers), and
//! the width of the VP8 picture id that must stay continuous across such a switch. Plain
//! functions of the payload bytes.

use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

/// Whether this packet is the first of a key frame, for the codecs the server negotiates
/// (see `new_peer` in the media loop). Audio and unknown codecs never start one.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        Codec::Vp9 => vp9_starts_keyframe(payload),
        Codec::H264 => h264_starts_keyframe(payload),
        _ => false,
    }
}

/// VP9 (RFC 9628): the start of a frame (B) that is not inter-predicted (P clear), on the
/// base spatial layer when the descriptor names layers (L).
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let (picture_id, inter, layers, begin) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x08 != 0,
    );
    if inter || !begin {
        return false;
    }
    if !layers {
        return true;
    }
    let mut at = 1;
    if picture_id {
        let Some(&p) = payload.get(1) else {
            return false;
        };
        // M bit: a 15-bit picture id takes two bytes.
        at += if p & 0x80 != 0 { 2 } else { 1 };
    }
    // Layer indices: TID(3) U(1) SID(3) D(1).
    payload.get(at).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

/// NAL unit types that begin a key frame: an IDR slice, or the SPS sent ahead of it.
const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// H.264 (RFC 6184): a single NAL unit, an aggregate (STAP-A) holding one, or the first
/// fragment (FU-A) of one, that is an SPS or an IDR slice.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let key = |t: u8| t == H264_IDR || t == H264_SPS;
    match b0 & 0x1f {
        H264_STAP_A => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let len = usize::from(hi) << 8 | usize::from(lo);
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if key(nal & 0x1f) {
                    return true;
                }
                at += 2 + len;
            }
            false
        }
        H264_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && key(fu & 0x1f)),
        t => key(t),
    }
}

/// Whether a VP8 descriptor carries its picture id in the 7-bit form (X and I set, M
/// clear; RFC 7741 §4.2).
pub fn vp8_short_picture_id(payload: &[u8]) -> bool {
    matches!(payload, [x, i, m, ..] if x & 0x80 != 0 && i & 0x80 != 0 && m & 0x80 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp8_picture_id(payload: &[u8]) -> Option<u16> {
        Vp8Descriptor::parse(payload).ok()?.picture_id()
    }

    #[test]
    fn vp8_key_frame_is_the_start_of_partition_zero_with_p_clear() {
        // X=0, S=1, PID=0; payload header P bit clear.
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x00, 0xff]));
        // P set: a delta frame.
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x01, 0xff]));
        // Not the start of a partition.
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x00, 0xff]));
        // With a 15-bit picture id (X, I, M): the payload header comes after it.
        let p = [0x90, 0x80, 0x81, 0x23, 0x00, 0xff];
        assert!(starts_keyframe(Codec::Vp8, &p));
        assert_eq!(vp8_picture_id(&p), Some(0x0123));
        assert_eq!(vp8_picture_id(&[0x10, 0x00, 0xff]), None);
        assert!(!vp8_short_picture_id(&p));
        let short = [0x90, 0x80, 0x23, 0x00, 0xff];
        assert_eq!(vp8_picture_id(&short), Some(0x23));
        assert!(vp8_short_picture_id(&short));
        assert!(
            !vp8_short_picture_id(&[0x10, 0x00, 0xff]),
            "no picture id at all"
        );
    }

    #[test]
    fn vp9_key_frame_is_a_non_predicted_frame_start_on_the_base_layer() {
        // B set, P clear, no layers.
        assert!(starts_keyframe(Codec::Vp9, &[0x08, 0xaa]));
        // P set.
        assert!(!starts_keyframe(Codec::Vp9, &[0x48, 0xaa]));
        // Not the beginning of a frame.
        assert!(!starts_keyframe(Codec::Vp9, &[0x00, 0xaa]));
        // I (7-bit id), L: SID 0, then SID 1.
        assert!(starts_keyframe(Codec::Vp9, &[0xa8, 0x05, 0x00, 0x00]));
        assert!(!starts_keyframe(Codec::Vp9, &[0xa8, 0x05, 0x02, 0x00]));
        // 15-bit id.
        assert!(starts_keyframe(Codec::Vp9, &[0xa8, 0x85, 0x01, 0x00, 0x00]));
    }

    #[test]
    fn h264_key_frame_is_an_sps_or_idr_whole_aggregated_or_first_fragment() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88])); // IDR
        assert!(starts_keyframe(Codec::H264, &[0x67, 0x42])); // SPS
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A: a 2-byte AUD, then an SPS.
        assert!(starts_keyframe(
            Codec::H264,
            &[0x78, 0, 2, 0x09, 0xf0, 0, 2, 0x67, 0x42]
        ));
        assert!(!starts_keyframe(
            Codec::H264,
            &[0x78, 0, 2, 0x09, 0xf0, 0, 2, 0x41, 0x9a]
        ));
        // A truncated aggregate is not a key frame.
        assert!(!starts_keyframe(Codec::H264, &[0x78, 0, 9]));
        // FU-A of an IDR: only the first fragment starts the frame.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 0x88]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x81, 0x9a]));
    }

    #[test]
    fn audio_and_empty_payloads_never_start_a_key_frame() {
        assert!(!starts_keyframe(Codec::Opus, &[0x10, 0x00]));
        for c in [Codec::Vp8, Codec::Vp9, Codec::H264] {
            assert!(!starts_keyframe(c, &[]));
        }
    }
}
