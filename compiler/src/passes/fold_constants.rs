//! Folds QUANTIZE / DEQUANTIZE of constant tensors into new constants, where the result is
//! exactly what the operator would compute at run time (TFLite's reference arithmetic).

use super::Pass;
use crate::error::Result;
use crate::ir::{DType, Graph, Op};

pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }
    fn run(&self, g: &mut Graph) -> Result<()> {
        let nodes: Vec<_> = g.nodes.node_indices().collect();
        for n in nodes {
            let node = g.nodes[n].clone();
            let (Some(inp), Some(&out)) = (node.input(0), node.outputs.first()) else { continue };
            let it = g.t(inp);
            let Some(data) = it.data.clone() else { continue };
            if g.outputs.contains(&out) {
                continue;
            }
            let folded: Option<Vec<u8>> = match node.op {
                Op::Dequantize => dequantize(g, inp, out, &data),
                Op::Quantize => quantize(g, inp, out, &data),
                // The reader already expanded the sparse constant.
                Op::Densify if g.t(out).bytes() == data.len() => Some(data.clone()),
                _ => None,
            };
            if let Some(bytes) = folded {
                g.tensors[out].data = Some(bytes);
                g.nodes.remove_node(n);
            }
        }
        Ok(())
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) & 1) as u32;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign << 31
        } else {
            // subnormal: normalise
            let mut e: i32 = -14;
            let mut m = mant;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            (sign << 31) | (((e + 127) as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        (sign << 31) | (0xff << 23) | (mant << 13)
    } else {
        (sign << 31) | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

fn dequantize(g: &Graph, inp: usize, out: usize, data: &[u8]) -> Option<Vec<u8>> {
    let it = g.t(inp);
    if g.t(out).dtype != DType::F32 {
        return None;
    }
    let vals: Vec<f32> = match it.dtype {
        DType::F16 => data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        DType::I8 | DType::U8 | DType::I16 | DType::I32 => {
            let q = it.quant.as_ref()?;
            let n = it.elems();
            let axis = q.axis;
            let per = q.per_channel();
            let inner: usize = if per { it.shape[axis + 1..].iter().product() } else { 1 };
            let chans = if per { it.shape[axis] } else { 1 };
            (0..n)
                .map(|i| {
                    let v: i64 = match it.dtype {
                        DType::I8 => data[i] as i8 as i64,
                        DType::U8 => data[i] as i64,
                        DType::I16 => i16::from_le_bytes([data[2 * i], data[2 * i + 1]]) as i64,
                        _ => i32::from_le_bytes([data[4 * i], data[4 * i + 1], data[4 * i + 2], data[4 * i + 3]]) as i64,
                    };
                    let c = if per { (i / inner) % chans } else { 0 };
                    let scale = q.scale[c] as f64;
                    let zp = q.zero_point.get(c).copied().unwrap_or(0);
                    (scale * (v - zp) as f64) as f32
                })
                .collect()
        }
        _ => return None,
    };
    if vals.len() != g.t(out).elems() {
        return None;
    }
    Some(vals.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn quantize(g: &Graph, inp: usize, out: usize, data: &[u8]) -> Option<Vec<u8>> {
    let it = g.t(inp);
    let ot = g.t(out);
    if it.dtype != DType::F32 || ot.dtype != DType::I8 {
        return None;
    }
    let q = ot.quant.as_ref()?;
    if q.per_channel() {
        return None;
    }
    let vals: Vec<u8> = data
        .chunks_exact(4)
        .map(|c| {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            microgen_rt::f::quantize(x, q.scale(), q.zp(), -128, 127) as i8 as u8
        })
        .collect();
    (vals.len() == ot.elems()).then_some(vals)
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16_conversion() {
        assert_eq!(super::f16_to_f32(0x3c00), 1.0);
        assert_eq!(super::f16_to_f32(0xc000), -2.0);
        assert_eq!(super::f16_to_f32(0x0001), 5.960464477539063e-8);
        assert_eq!(super::f16_to_f32(0x7bff), 65504.0);
    }
}
