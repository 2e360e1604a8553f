//! A check of the value lengths a data set declares (PS3.5 7.1) against the bytes it really has,
//! run before any parser allocates memory for them. Without it a message of a few hundred bytes
//! that claims a 2 GiB Pixel Data value makes the parser reserve 2 GiB.
//!
//! The walk reads element headers only: it descends into sequences and items, skips every other
//! value after checking that it fits, and treats the items of encapsulated Pixel Data (PS3.5
//! A.4) as opaque fragments. It keeps track of the sequences and items it is in (PS3.5 7.5), so
//! that it can tell where the top-level Pixel Data begins: the indexed attributes all precede it,
//! and a store needs to parse no further.

/// Tag of Pixel Data, and of the item and delimitation items of PS3.5 7.5.
const PIXEL_DATA: u32 = 0x7FE0_0010;
const ITEM: u32 = 0xFFFE_E000;
const ITEM_DELIMITER: u32 = 0xFFFE_E00D;
const SEQUENCE_DELIMITER: u32 = 0xFFFE_E0DD;
const UNDEFINED: u32 = 0xFFFF_FFFF;

/// VRs whose explicit header has a 4-byte length (PS3.5 Table 7.1-1).
const LONG_VRS: &[&[u8; 2]] =
    &[b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];

/// A declared length that the data set cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "element ({group:04X},{element:04X}) at byte {offset} declares {declared} bytes but {available} remain"
)]
pub struct LengthError {
    pub group: u16,
    pub element: u16,
    pub offset: usize,
    pub declared: u64,
    pub available: usize,
}

/// How a transfer syntax encodes element headers.
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    /// Explicit VR Little Endian, also the syntax of every inflated data set.
    pub const EXPLICIT_LE: Encoding = Encoding { explicit_vr: true, big_endian: false };

    /// The header encoding of `ts`, or `None` for a deflated syntax, whose bytes are no
    /// element headers until inflated.
    pub fn of(ts: &dicom_encoding::TransferSyntax) -> Option<Encoding> {
        use dicom_encoding::transfer_syntax::{Codec, Endianness};
        if matches!(ts.codec(), Codec::Dataset(_)) {
            return None;
        }
        Some(Encoding {
            explicit_vr: ts.uid() != "1.2.840.10008.1.2",
            big_endian: ts.endianness() == Endianness::Big,
        })
    }
}

struct Header {
    tag: u32,
    sequence: bool,
    length: u32,
    size: usize,
}

/// Where a data set's top-level elements lie, as learnt by [`check_lengths`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Byte offset of the top-level Pixel Data element's header, if the data set has one.
    pub pixel_data_at: Option<usize>,
}

/// Where an open sequence or item ends: at a byte offset, or at its delimitation item.
#[derive(Debug, Clone, Copy)]
enum End {
    At(usize),
    Delimited,
}

/// Checks every declared length of `dataset` and finds its top-level Pixel Data. Truncated
/// headers end the walk quietly: the parser reports those itself without over-allocating.
pub fn check_lengths(dataset: &[u8], encoding: Encoding) -> Result<Layout, LengthError> {
    let mut layout = Layout::default();
    let mut open: Vec<End> = Vec::new();
    let mut offset = 0;
    let mut in_fragments = false;
    loop {
        close_ended(&mut open, offset);
        let Some(header) = read_header(&dataset[offset..], encoding) else { break };
        let value_at = offset + header.size;
        let available = dataset.len() - value_at;
        if header.tag == PIXEL_DATA && open.is_empty() && layout.pixel_data_at.is_none() {
            layout.pixel_data_at = Some(offset);
        }
        offset = value_at;

        match header.tag {
            SEQUENCE_DELIMITER if in_fragments => in_fragments = false,
            SEQUENCE_DELIMITER | ITEM_DELIMITER => close_delimited(&mut open),
            ITEM if in_fragments => offset = skip(&header, value_at, available)?,
            ITEM => open.push(end_of(&header, value_at)),
            _ if header.length == UNDEFINED && header.tag == PIXEL_DATA => in_fragments = true,
            _ if header.length == UNDEFINED || header.sequence => {
                open.push(end_of(&header, value_at))
            }
            _ => offset = skip(&header, value_at, available)?,
        }
    }
    Ok(layout)
}

/// The offset past a value, once it is known to fit in the `available` bytes.
fn skip(header: &Header, value_at: usize, available: usize) -> Result<usize, LengthError> {
    if header.length as usize > available {
        return Err(LengthError {
            group: (header.tag >> 16) as u16,
            element: header.tag as u16,
            offset: value_at - header.size,
            declared: u64::from(header.length),
            available,
        });
    }
    Ok(value_at + header.length as usize)
}

fn end_of(header: &Header, value_at: usize) -> End {
    if header.length == UNDEFINED {
        End::Delimited
    } else {
        End::At(value_at.saturating_add(header.length as usize))
    }
}

/// Leaves the sequences and items of defined length that end at or before `offset`.
fn close_ended(open: &mut Vec<End>, offset: usize) {
    while let Some(End::At(end)) = open.last() {
        if offset < *end {
            break;
        }
        open.pop();
    }
}

/// Leaves the innermost sequence or item of undefined length, and whatever defined-length
/// ones a malformed data set left open inside it.
fn close_delimited(open: &mut Vec<End>) {
    while let Some(end) = open.pop() {
        if matches!(end, End::Delimited) {
            break;
        }
    }
}

fn read_header(bytes: &[u8], encoding: Encoding) -> Option<Header> {
    let u16_at = |i: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(i..i + 2)?.try_into().ok()?;
        Some(if encoding.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(i..i + 4)?.try_into().ok()?;
        Some(if encoding.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    let tag = (u32::from(u16_at(0)?) << 16) | u32::from(u16_at(2)?);

    // Items and delimiters, and every element of implicit VR syntaxes, have a 4-byte length.
    if tag >> 16 == 0xFFFE || !encoding.explicit_vr {
        let sequence = !encoding.explicit_vr && implicit_sequence(tag);
        return Some(Header { tag, sequence, length: u32_at(4)?, size: 8 });
    }
    let vr: &[u8; 2] = bytes.get(4..6)?.try_into().ok()?;
    if LONG_VRS.contains(&vr) {
        Some(Header { tag, sequence: vr == b"SQ", length: u32_at(8)?, size: 12 })
    } else {
        Some(Header { tag, sequence: false, length: u32::from(u16_at(6)?), size: 8 })
    }
}

/// A PS3.10 file whose lengths passed the check: its data set, how the data set's headers are
/// encoded, and where its top-level elements lie.
#[derive(Debug, Clone, Copy)]
pub struct CheckedFile<'a> {
    pub dataset: &'a [u8],
    pub encoding: Encoding,
    pub layout: Layout,
}

impl<'a> CheckedFile<'a> {
    /// The value of the top-level Pixel Data when it has a defined length, as native pixels
    /// have (PS3.5 8.1.1 and A.4: encapsulated ones are of undefined length).
    pub fn native_pixel_data(&self) -> Option<&'a [u8]> {
        let at = self.layout.pixel_data_at?;
        let header = read_header(&self.dataset[at..], self.encoding)?;
        if header.length == UNDEFINED {
            return None;
        }
        let value_at = at + header.size;
        self.dataset.get(value_at..value_at + header.length as usize)
    }
}

/// Checks the data set of PS3.10 file bytes in the transfer syntax its meta group names. Files
/// without a meta group, in an unknown or a deflated syntax are left to the parser (`None`).
pub fn check_part10(bytes: &[u8]) -> Result<Option<CheckedFile<'_>>, String> {
    use dicom_encoding::TransferSyntaxIndex;

    if bytes.get(128..132) != Some(&b"DICM"[..]) {
        return Ok(None);
    }
    let (meta, dataset) = super::files::split_part10(bytes)?;
    let uid = meta.transfer_syntax().trim_end_matches(['\0', ' ']);
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let Some(encoding) = registry.get(uid).and_then(Encoding::of) else { return Ok(None) };
    let layout = check_lengths(dataset, encoding).map_err(|e| e.to_string())?;
    Ok(Some(CheckedFile { dataset, encoding, layout }))
}

/// Whether the dictionary knows `tag` as a sequence, for implicit VR data sets.
fn implicit_sequence(tag: u32) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    let tag = dicom_core::Tag((tag >> 16) as u16, tag as u16);
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| e.vr().relaxed() == dicom_core::VR::SQ)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLICIT_LE: Encoding = Encoding { explicit_vr: true, big_endian: false };

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        let length = declared.unwrap_or(value.len() as u32);
        if LONG_VRS.contains(&vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&length.to_le_bytes());
        } else {
            out.extend_from_slice(&(length as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn honest_lengths_pass() {
        let mut data = element((0x0010, 0x0010), b"PN", b"DOE^JOHN", None);
        data.extend(element((0x7FE0, 0x0010), b"OW", &[0; 16], None));
        assert!(check_lengths(&data, EXPLICIT_LE).is_ok());
    }

    #[test]
    fn a_claim_beyond_the_end_is_refused_before_parsing() {
        let mut data = element((0x0010, 0x0010), b"PN", b"DOE^JOHN", None);
        data.extend(element((0x7FE0, 0x0010), b"OW", &[0; 16], Some(0x7FF0_0000)));

        let err = check_lengths(&data, EXPLICIT_LE).unwrap_err();

        assert_eq!((err.group, err.element), (0x7FE0, 0x0010));
        assert_eq!(err.available, 16);
    }

    #[test]
    fn fragments_of_encapsulated_pixel_data_are_opaque() {
        let mut data = element((0x7FE0, 0x0010), b"OB", &[], Some(UNDEFINED));
        for item in [&[][..], &[0xFF, 0xD8, 0xFF, 0xFE, 0xE0, 0x00, 0xFF, 0xD9][..]] {
            data.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            data.extend_from_slice(&(item.len() as u32).to_le_bytes());
            data.extend_from_slice(item);
        }
        data.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);

        assert!(check_lengths(&data, EXPLICIT_LE).is_ok());
    }

    #[test]
    fn only_top_level_pixel_data_is_located() {
        let icon = element((0x7FE0, 0x0010), b"OW", &[0; 4], None);
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&(icon.len() as u32).to_le_bytes());
        item.extend_from_slice(&icon);
        let mut data = element((0x0088, 0x0200), b"SQ", &item, None);
        data.extend(element((0x0010, 0x0010), b"PN", b"DOE^JOHN", None));
        let top = data.len();
        data.extend(element((0x7FE0, 0x0010), b"OW", &[0; 16], None));

        let layout = check_lengths(&data, EXPLICIT_LE).unwrap();

        assert_eq!(layout.pixel_data_at, Some(top));
    }

    #[test]
    fn pixel_data_after_a_delimited_sequence_is_top_level() {
        let mut data = element((0x0088, 0x0200), b"SQ", &[], Some(UNDEFINED));
        data.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        data.extend(element((0x7FE0, 0x0010), b"OW", &[0; 4], None));
        data.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        data.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let top = data.len();
        data.extend(element((0x7FE0, 0x0010), b"OB", &[], Some(UNDEFINED)));
        data.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        data.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);

        let layout = check_lengths(&data, EXPLICIT_LE).unwrap();

        assert_eq!(layout.pixel_data_at, Some(top));
    }

    #[test]
    fn native_pixel_data_is_the_defined_length_value() {
        let mut data = element((0x0010, 0x0010), b"PN", b"DOE^JOHN", None);
        let value_at = data.len() + 12;
        data.extend(element((0x7FE0, 0x0010), b"OW", &[1, 2, 3, 4], None));
        let layout = check_lengths(&data, EXPLICIT_LE).unwrap();
        let file = CheckedFile { dataset: &data, encoding: EXPLICIT_LE, layout };

        assert_eq!(file.native_pixel_data(), Some(&data[value_at..value_at + 4]));
    }

    #[test]
    fn encapsulated_pixel_data_has_no_native_value() {
        let mut data = element((0x7FE0, 0x0010), b"OB", &[], Some(UNDEFINED));
        data.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        data.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let layout = check_lengths(&data, EXPLICIT_LE).unwrap();
        let file = CheckedFile { dataset: &data, encoding: EXPLICIT_LE, layout };

        assert_eq!(file.native_pixel_data(), None);
    }
}
