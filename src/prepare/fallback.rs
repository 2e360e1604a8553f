//! Decoding where dicom-pixeldata 0.10 gives up on files of the corpus: RLE Lossless with 32
//! bits allocated (PS3.5 Annex G) and multi-frame encapsulated Pixel Data whose frames span
//! several fragments without a Basic Offset Table (PS3.5 A.4).

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

/// A copy of `obj` whose fragments are regrouped one per frame, when a frame's fragments can
/// be told apart: a frame starts with a JPEG SOI (FFD8) or a JPEG 2000 SOC (FF4F) marker.
pub fn regroup_fragments(obj: &DefaultDicomObject) -> Option<DefaultDicomObject> {
    let fragments = obj.element(tags::PIXEL_DATA).ok()?.value().fragments()?.to_vec();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for fragment in fragments {
        let starts_frame = matches!(fragment.get(..2), Some([0xFF, 0xD8] | [0xFF, 0x4F]));
        match frames.last_mut() {
            Some(frame) if !starts_frame => frame.extend_from_slice(&fragment),
            _ => frames.push(fragment),
        }
    }

    let mut copy = obj.clone();
    let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), frames);
    copy.put(DataElement::new(tags::PIXEL_DATA, VR::OB, Value::PixelSequence(sequence)));
    Some(copy)
}

/// Decodes RLE Lossless frames into native little-endian bytes, samples interleaved.
pub fn decode_rle(
    obj: &DefaultDicomObject,
    bytes_per_sample: usize,
    samples: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let element = obj.element(tags::PIXEL_DATA).map_err(|e| e.to_string())?;
    let fragments = element.value().fragments().ok_or("Pixel Data is not encapsulated")?;
    fragments.iter().map(|f| rle_frame(f, bytes_per_sample, samples)).collect()
}

/// One RLE frame: a 64-byte header of segment offsets, then one PackBits segment per byte
/// plane, most significant byte of sample 0 first (PS3.5 G.2 and G.3).
fn rle_frame(data: &[u8], bytes_per_sample: usize, samples: usize) -> Result<Vec<u8>, String> {
    let word = |i: usize| -> Result<usize, String> {
        let b = data.get(4 * i..4 * i + 4).ok_or("RLE header truncated")?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    let count = word(0)?;
    if count != bytes_per_sample * samples || count > 15 {
        return Err(format!(
            "{count} RLE segments for {samples} samples of {bytes_per_sample} bytes"
        ));
    }
    let mut planes = Vec::with_capacity(count);
    for s in 0..count {
        let end = if s + 1 < count { word(s + 2)? } else { data.len() };
        planes
            .push(packbits(data.get(word(s + 1)?..end).ok_or("RLE segment offset past the end")?));
    }

    let pixels = planes.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = vec![0u8; pixels * count];
    for (s, plane) in planes.iter().enumerate() {
        let (sample, byte) = (s / bytes_per_sample, bytes_per_sample - 1 - s % bytes_per_sample);
        for (p, value) in plane.iter().take(pixels).enumerate() {
            out[(p * samples + sample) * bytes_per_sample + byte] = *value;
        }
    }
    Ok(out)
}

/// The PackBits scheme of PS3.5 G.3.1.
fn packbits(segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segment.len() * 2);
    let mut i = 0;
    while i < segment.len() {
        let n = segment[i] as i8;
        i += 1;
        match n {
            0..=127 => {
                let end = (i + n as usize + 1).min(segment.len());
                out.extend_from_slice(&segment[i..end]);
                i = end;
            }
            -127..=-1 => {
                if let Some(&v) = segment.get(i) {
                    out.extend(std::iter::repeat_n(v, (1 - n as isize) as usize));
                }
                i += 1;
            }
            -128 => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literals_and_runs() {
        // 2 literals (n = 1), then a run of 3 (n = -2).
        assert_eq!(packbits(&[1, 10, 11, 0xFE, 7]), [10, 11, 7, 7, 7]);
    }
}
