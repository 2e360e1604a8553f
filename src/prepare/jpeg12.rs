//! A small decoder for sequential DCT JPEG with Huffman coding (ITU-T T.81 Annex F, processes 1,
//! 2 and 4) of one grey component, at 8 or 12 bits. It exists because dicom-pixeldata 0.10's
//! JPEG decoder refuses 12-bit samples, which DICOM's JPEG Extended transfer syntax
//! (1.2.840.10008.1.2.4.51, PS3.5 A.4.1) carries.
//!
//! Frames of the Pixel Data are read from its fragments (PS3.5 A.4): their bytes are joined and
//! the JPEG streams decoded one after the other.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use ndarray::Array2;

/// The zig-zag order of T.81 Figure A.6: position k of the stream is this natural index.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Decodes every frame of an object's encapsulated Pixel Data as grey stored values.
pub fn decode_object(obj: &InMemDicomObject) -> Result<Vec<Array2<f64>>, String> {
    let element = obj.element(tags::PIXEL_DATA).map_err(|e| e.to_string())?;
    let fragments = element.value().fragments().ok_or("Pixel Data is not encapsulated")?;
    let frames =
        obj.get(tags::NUMBER_OF_FRAMES).and_then(|e| e.to_int::<usize>().ok()).unwrap_or(1).max(1);

    let bytes: Vec<u8> = fragments.iter().flatten().copied().collect();
    let mut offset = 0;
    let mut out = Vec::with_capacity(frames);
    for _ in 0..frames {
        let (image, used) = decode(&bytes[offset..])?;
        out.push(image);
        offset += used;
    }
    Ok(out)
}

/// Decodes one JPEG stream; returns the image and the number of bytes read.
pub fn decode(data: &[u8]) -> Result<(Array2<f64>, usize), String> {
    let mut d = Decoder { data, quant: vec![[0; 64]; 4], ..Decoder::default() };
    d.expect_marker(0xD8)?;
    loop {
        let marker = d.next_marker()?;
        match marker {
            0xC0 | 0xC1 => d.frame_header()?,
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(format!("JPEG process of marker FF{marker:02X} is not supported"));
            }
            0xC4 => d.huffman_tables()?,
            0xDB => d.quantisation_tables()?,
            0xDD => d.restart_interval()?,
            0xDA => d.scan()?,
            0xD9 => return Ok((d.finish()?, d.pos)),
            _ => d.skip_segment()?,
        }
    }
}

#[derive(Default, Clone)]
struct Huffman {
    /// Codes of each length 1..=16, as (max code, index of its first value, min code).
    max_code: [i32; 17],
    val_ptr: [usize; 17],
    min_code: [i32; 17],
    values: Vec<u8>,
}

#[derive(Default)]
struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    precision: u8,
    rows: usize,
    columns: usize,
    quant_table: usize,
    quant: Vec<[u16; 64]>,
    dc: [Huffman; 4],
    ac: [Huffman; 4],
    restart: usize,
    samples: Vec<f64>,
    bits: u32,
    bit_count: u32,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("JPEG stream ends early")?;
        self.pos += 1;
        Ok(b)
    }

    fn word(&mut self) -> Result<usize, String> {
        Ok(((self.byte()? as usize) << 8) | self.byte()? as usize)
    }

    fn expect_marker(&mut self, marker: u8) -> Result<(), String> {
        if self.byte()? != 0xFF || self.byte()? != marker {
            return Err(format!("JPEG marker FF{marker:02X} expected"));
        }
        Ok(())
    }

    fn next_marker(&mut self) -> Result<u8, String> {
        while self.byte()? != 0xFF {}
        let mut marker = self.byte()?;
        while marker == 0xFF {
            marker = self.byte()?;
        }
        Ok(marker)
    }

    fn segment(&mut self) -> Result<&[u8], String> {
        let length = self.word()?.checked_sub(2).ok_or("JPEG segment length below 2")?;
        let start = self.pos;
        self.pos += length;
        self.data.get(start..self.pos).ok_or_else(|| "JPEG segment runs past the end".into())
    }

    fn skip_segment(&mut self) -> Result<(), String> {
        self.segment().map(|_| ())
    }

    fn frame_header(&mut self) -> Result<(), String> {
        let s = self.segment()?.to_vec();
        let [precision, r0, r1, c0, c1, components, ..] = s[..] else {
            return Err("JPEG frame header too short".into());
        };
        if components != 1 {
            return Err(format!("{components} components; only grey JPEG is decoded here"));
        }
        self.precision = precision;
        self.rows = ((r0 as usize) << 8) | r1 as usize;
        self.columns = ((c0 as usize) << 8) | c1 as usize;
        self.quant_table = (*s.get(8).ok_or("JPEG frame header too short")? & 3) as usize;
        self.samples = vec![0.0; self.rows * self.columns];
        Ok(())
    }

    fn quantisation_tables(&mut self) -> Result<(), String> {
        let s = self.segment()?.to_vec();
        let mut i = 0;
        while i < s.len() {
            let (wide, id) = (s[i] >> 4 != 0, (s[i] & 3) as usize);
            i += 1;
            for natural in ZIGZAG {
                let value = if wide { u16::from_be_bytes([s[i], s[i + 1]]) } else { s[i] as u16 };
                self.quant[id][natural] = value;
                i += if wide { 2 } else { 1 };
            }
        }
        Ok(())
    }

    fn huffman_tables(&mut self) -> Result<(), String> {
        let s = self.segment()?.to_vec();
        let mut i = 0;
        while i + 17 <= s.len() {
            let (class, id) = (s[i] >> 4, (s[i] & 3) as usize);
            let counts = &s[i + 1..i + 17];
            let total: usize = counts.iter().map(|c| *c as usize).sum();
            let values = s.get(i + 17..i + 17 + total).ok_or("Huffman table too short")?.to_vec();
            let table = build_huffman(counts, values);
            if class == 0 {
                self.dc[id] = table
            } else {
                self.ac[id] = table
            }
            i += 17 + total;
        }
        Ok(())
    }

    fn restart_interval(&mut self) -> Result<(), String> {
        let s = self.segment()?;
        self.restart = ((s[0] as usize) << 8) | s[1] as usize;
        Ok(())
    }

    fn scan(&mut self) -> Result<(), String> {
        let s = self.segment()?.to_vec();
        let tables = *s.get(2).ok_or("JPEG scan header too short")?;
        let (dc, ac) = ((tables >> 4) as usize & 3, (tables & 3) as usize);
        let (blocks_x, blocks_y) = (self.columns.div_ceil(8), self.rows.div_ceil(8));
        let mut previous_dc = 0i32;
        for b in 0..blocks_x * blocks_y {
            if self.restart > 0 && b > 0 && b % self.restart == 0 {
                self.restart_marker()?;
                previous_dc = 0;
            }
            let block = self.block(dc, ac, &mut previous_dc)?;
            self.store(&block, b % blocks_x, b / blocks_x);
        }
        Ok(())
    }

    fn restart_marker(&mut self) -> Result<(), String> {
        self.bits = 0;
        self.bit_count = 0;
        let marker = self.next_marker()?;
        if !(0xD0..=0xD7).contains(&marker) {
            return Err(format!("restart marker expected, found FF{marker:02X}"));
        }
        Ok(())
    }

    /// Decodes one 8x8 block into dequantised coefficients in natural order (T.81 F.2.2).
    fn block(&mut self, dc: usize, ac: usize, previous_dc: &mut i32) -> Result<[f64; 64], String> {
        let mut coefficients = [0f64; 64];
        let size = self.symbol(dc, true)?;
        *previous_dc += self.extend(size)?;
        let quant = self.quant[self.quant_table];
        coefficients[0] = *previous_dc as f64 * quant[0] as f64;

        let mut k = 1;
        while k < 64 {
            let rs = self.symbol(ac, false)?;
            let (run, size) = ((rs >> 4) as usize, rs & 15);
            if size == 0 {
                if run != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += run;
            let index = *ZIGZAG.get(k).ok_or("JPEG coefficient index past 63")?;
            coefficients[index] = self.extend(size)? as f64 * quant[index] as f64;
            k += 1;
        }
        Ok(coefficients)
    }

    fn bit(&mut self) -> Result<u32, String> {
        if self.bit_count == 0 {
            let b = self.byte()?;
            if b == 0xFF {
                let next = self.byte()?;
                if next != 0 {
                    return Err(format!("marker FF{next:02X} inside entropy-coded data"));
                }
            }
            self.bits = b as u32;
            self.bit_count = 8;
        }
        self.bit_count -= 1;
        Ok((self.bits >> self.bit_count) & 1)
    }

    fn receive(&mut self, size: u8) -> Result<i32, String> {
        let mut v = 0i32;
        for _ in 0..size {
            v = (v << 1) | self.bit()? as i32;
        }
        Ok(v)
    }

    /// T.81 F.2.2.1 EXTEND of a received value of `size` bits.
    fn extend(&mut self, size: u8) -> Result<i32, String> {
        if size == 0 {
            return Ok(0);
        }
        let v = self.receive(size)?;
        Ok(if v < 1 << (size - 1) { v - (1 << size) + 1 } else { v })
    }

    /// T.81 F.2.2.3 DECODE.
    fn symbol(&mut self, id: usize, dc: bool) -> Result<u8, String> {
        let table = if dc { &self.dc[id] } else { &self.ac[id] };
        let table = table.clone();
        let mut code = self.bit()? as i32;
        for length in 1..=16 {
            if code <= table.max_code[length] {
                let index = table.val_ptr[length] + (code - table.min_code[length]) as usize;
                return table.values.get(index).copied().ok_or_else(|| "bad Huffman code".into());
            }
            code = (code << 1) | self.bit()? as i32;
        }
        Err("Huffman code longer than 16 bits".into())
    }

    fn store(&mut self, coefficients: &[f64; 64], bx: usize, by: usize) {
        let samples = idct(coefficients);
        let shift = (1u32 << (self.precision.max(2) - 1)) as f64;
        let max = ((1u32 << self.precision.max(2)) - 1) as f64;
        for y in 0..8 {
            for x in 0..8 {
                let (row, col) = (by * 8 + y, bx * 8 + x);
                if row < self.rows && col < self.columns {
                    let v = (samples[y * 8 + x] + shift).round().clamp(0.0, max);
                    self.samples[row * self.columns + col] = v;
                }
            }
        }
    }

    fn finish(&mut self) -> Result<Array2<f64>, String> {
        let samples = std::mem::take(&mut self.samples);
        Array2::from_shape_vec((self.rows, self.columns), samples)
            .map_err(|_| "JPEG stream has no frame header".to_string())
    }
}

fn build_huffman(counts: &[u8], values: Vec<u8>) -> Huffman {
    let mut table = Huffman { values, ..Huffman::default() };
    let (mut code, mut k) = (0i32, 0usize);
    for length in 1..=16 {
        let n = counts[length - 1] as usize;
        if n == 0 {
            table.max_code[length] = -1;
        } else {
            table.val_ptr[length] = k;
            table.min_code[length] = code;
            code += n as i32;
            k += n;
            table.max_code[length] = code - 1;
        }
        code <<= 1;
    }
    table
}

/// The 8x8 inverse DCT of T.81 A.3.3, separable, in f64.
fn idct(coefficients: &[f64; 64]) -> [f64; 64] {
    let basis = |x: usize, u: usize| {
        let c = if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
        c * (((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0).cos() / 2.0
    };
    let mut rows = [0f64; 64];
    for v in 0..8 {
        for x in 0..8 {
            rows[v * 8 + x] = (0..8).map(|u| basis(x, u) * coefficients[v * 8 + u]).sum();
        }
    }
    let mut out = [0f64; 64];
    for y in 0..8 {
        for x in 0..8 {
            out[y * 8 + x] = (0..8).map(|v| basis(y, v) * rows[v * 8 + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_only_block_is_flat() {
        let mut c = [0f64; 64];
        c[0] = 80.0;
        let s = idct(&c);
        assert!(s.iter().all(|v| (v - 10.0).abs() < 1e-9), "{s:?}");
    }

    #[test]
    fn canonical_codes_follow_counts() {
        // Two codes of length 2 (00, 01) and one of length 3 (100).
        let mut counts = [0u8; 16];
        counts[1] = 2;
        counts[2] = 1;
        let t = build_huffman(&counts, vec![5, 6, 7]);
        assert_eq!((t.min_code[2], t.max_code[2]), (0, 1));
        assert_eq!((t.min_code[3], t.max_code[3], t.val_ptr[3]), (4, 4, 2));
    }
}
