// Shared by the firmware crates' build.rs (`include!`d): selects the model and the input
// samples at build time and writes $OUT_DIR/model.rs, which the firmware `include!`s.
//
// Environment (all optional; relative paths are taken from the firmware crate's folder):
//   MICROGEN_MODEL    .tflite file   (default: ../../models/hello_world_int8.tflite)
//   MICROGEN_INPUT    raw samples, the `microgen run` format: per sample the model's inputs'
//                     little-endian bytes concatenated (default: the hello_world_int8
//                     conformance inputs, first 10 samples)
//   MICROGEN_SAMPLES  use only the first N samples of MICROGEN_INPUT (default: all)
//   MICROGEN_REPEAT   run `predict` N times on each sample (default 1), each call between the
//                     markers; the output printed is the last one (the benchmark uses 3 and
//                     counts the third call, as the TFLM anchors do)
//   MICROGEN_BASELINE=1  no model: a stub `predict` (1-byte input and output, no arena), so the
//                     image is the harness alone; the benchmark subtracts its sections
// With the cargo feature `microflow`, the model is compiled by MicroFlow's `#[model]` macro
// instead (crates.io `microflow`), behind the same `model::{Arena, Input, Output, predict}` API.
//
// The model and the chosen samples are copied into OUT_DIR; model.rs holds
//   mod model { microgen_macros::include_model!("<OUT_DIR>/model.tflite"); }
// plus the samples (`include_bytes!`) and byte <-> tensor conversion functions.

fn fw_env_path(var: &str, default: &str) -> std::path::PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => manifest.join(v),
        _ => manifest.join(default),
    }
}

fn fw_gen_model() {
    use microgen::ir::DType;
    use std::fmt::Write as _;
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let model = fw_env_path("MICROGEN_MODEL", "../../models/hello_world_int8.tflite");
    let default_input = std::env::var_os("MICROGEN_INPUT").map_or(true, |v| v.is_empty());
    let input = fw_env_path("MICROGEN_INPUT", "../../../tests/conformance/data/hello_world_int8.in.bin");
    println!("cargo:rerun-if-env-changed=MICROGEN_SAMPLES");
    let limit: Option<usize> = match std::env::var("MICROGEN_SAMPLES") {
        Ok(s) if !s.is_empty() => Some(s.trim().parse().unwrap_or_else(|_| panic!("MICROGEN_SAMPLES={s:?} is not a number"))),
        _ if default_input => Some(10),
        _ => None,
    };
    println!("cargo:rerun-if-changed={}", model.display());
    println!("cargo:rerun-if-changed={}", input.display());

    println!("cargo:rerun-if-env-changed=MICROGEN_REPEAT");
    let repeat: usize = match std::env::var("MICROGEN_REPEAT") {
        Ok(s) if !s.is_empty() => s.trim().parse().ok().filter(|&r| r > 0).unwrap_or_else(|| panic!("MICROGEN_REPEAT={s:?} is not a positive number")),
        _ => 1,
    };
    println!("cargo:rerun-if-env-changed=MICROGEN_BASELINE");
    if std::env::var("MICROGEN_BASELINE").map_or(false, |v| !v.is_empty() && v != "0") {
        return fw_write_model_rs(&out, BASELINE_RS.to_string());
    }
    let microflow = std::env::var_os("CARGO_FEATURE_MICROFLOW").is_some();

    let bytes = std::fs::read(&model).unwrap_or_else(|e| panic!("cannot read model {}: {e}", model.display()));
    let name = model.file_name().unwrap().to_string_lossy().into_owned();
    let (g, _) = microgen::analyse(&bytes, &microgen::Options::new(name.clone())).unwrap_or_else(|e| panic!("{e}"));
    let stateful = !g.variables.is_empty();
    let elem = |d: DType| match d {
        DType::F32 => "f32",
        DType::I8 => "i8",
        DType::U8 => "u8",
        DType::I16 => "i16",
        DType::I32 => "i32",
        DType::I64 => "i64",
        d => panic!("model {name}: input/output type {d:?} is not supported by the firmware harness"),
    };
    let ins: Vec<(DType, usize)> = g.inputs.iter().map(|&t| (g.t(t).dtype, g.t(t).elems())).collect();
    let outs: Vec<(DType, usize)> = g.outputs.iter().map(|&t| (g.t(t).dtype, g.t(t).elems())).collect();
    let in_bytes: usize = ins.iter().map(|(d, n)| d.size() * n).sum();
    let out_bytes: usize = outs.iter().map(|(d, n)| d.size() * n).sum();

    let data = std::fs::read(&input).unwrap_or_else(|e| panic!("cannot read input {}: {e}", input.display()));
    if in_bytes == 0 || data.len() % in_bytes != 0 {
        panic!("input file {} has {} bytes, not a multiple of the {in_bytes} bytes of one sample", input.display(), data.len());
    }
    let mut n = data.len() / in_bytes;
    if let Some(l) = limit {
        n = n.min(l);
    }
    if n == 0 {
        panic!("input file {} holds no sample", input.display());
    }
    std::fs::copy(&model, out.join("model.tflite")).unwrap();
    std::fs::write(out.join("input.bin"), &data[..n * in_bytes]).unwrap();

    let single_in = ins.len() == 1;
    let single_out = outs.len() == 1;
    let mut load = String::new();
    let mut off = 0;
    for (k, &(d, n)) in ins.iter().enumerate() {
        let f = if single_in { "input".to_string() } else { format!("input.input{k}") };
        elem(d); // a type the harness cannot hold panics here
        let sz = d.size();
        let _ = writeln!(load, "    crate::harness::copy_bytes(unsafe {{ core::slice::from_raw_parts_mut({f}.as_mut_ptr() as *mut u8, {b}) }}, &s[{off}..{off} + {b}]);", b = sz * n);
        off += sz * n;
    }
    let mut store = String::new();
    let mut off = 0;
    for (k, &(d, n)) in outs.iter().enumerate() {
        let f = if single_out { "output".to_string() } else { format!("output.output{k}") };
        let sz = d.size();
        let _ = writeln!(store, "    crate::harness::copy_bytes(&mut o[{off}..{off} + {b}], unsafe {{ core::slice::from_raw_parts({f}.as_ptr() as *const u8, {b}) }});", b = sz * n);
        off += sz * n;
    }
    let model_mod = if microflow {
        fw_microflow_shim(&g, &out.join("model.tflite").display().to_string())
    } else {
        format!("    microgen_macros::include_model!({:?});\n", out.join("model.tflite").display().to_string())
    };
    let state = if stateful && !microflow {
        "pub type State = model::State;\npub const fn new_state() -> State { model::State::new() }\npub const STATE_BYTES: usize = model::STATE_BYTES;\n\
         /// One inference; the state is carried from call to call.\n#[inline(always)]\n\
         pub fn predict(a: &mut model::Arena, s: &mut State, i: &model::Input, o: &mut model::Output) { model::predict(a, s, i, o) }\n"
    } else {
        "pub type State = ();\npub const fn new_state() -> State {}\npub const STATE_BYTES: usize = 0;\n\
         /// One inference (the model has no state).\n#[inline(always)]\n\
         pub fn predict(a: &mut model::Arena, _: &mut State, i: &model::Input, o: &mut model::Output) { model::predict(a, i, o) }\n"
    };
    let new_in = if single_in { format!("[0 as {}; {}]", elem(ins[0].0), ins[0].1) } else { "model::Input::new()".into() };
    let new_out = if single_out { format!("[0 as {}; {}]", elem(outs[0].0), outs[0].1) } else { "model::Output::new()".into() };
    let code = format!(
        r#"// @generated by build.rs (examples/firmware/common/build_model.rs) from {model_src}
#[allow(dead_code, clippy::all)]
pub mod model {{
{model_mod}}}
/// Inference engine compiled in.
pub const SYSTEM: &str = {system:?};
/// `predict` calls per sample (MICROGEN_REPEAT).
pub const REPEAT: usize = {repeat};
{state}
/// File name of the model.
pub const MODEL_NAME: &str = {name:?};
/// Number of compiled-in samples.
pub const SAMPLES: usize = {n};
/// Bytes of one input sample (the model's inputs concatenated).
pub const IN_BYTES: usize = {in_bytes};
/// Bytes of one output sample (the model's outputs concatenated).
pub const OUT_BYTES: usize = {out_bytes};
/// The samples, `SAMPLES * IN_BYTES` bytes.
pub static INPUTS: &[u8] = include_bytes!({input_lit:?});
pub const fn new_input() -> model::Input {{ {new_in} }}
pub const fn new_output() -> model::Output {{ {new_out} }}
/// Fills `input` from one sample's bytes.
#[allow(unused_variables)]
pub fn load_input(s: &[u8], input: &mut model::Input) {{
{load}}}
/// Writes `output` as one output sample's bytes.
pub fn store_output(output: &model::Output, o: &mut [u8; OUT_BYTES]) {{
{store}}}
"#,
        model_src = model.display(),
        system = if microflow { "microflow" } else { "microgen" },
        input_lit = out.join("input.bin").display().to_string(),
    );
    fw_write_model_rs(&out, code);
}

fn fw_write_model_rs(out: &std::path::Path, code: String) {
    // Only rewrite when changed, so an unchanged model does not recompile the firmware.
    let path = out.join("model.rs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
        std::fs::write(&path, code).unwrap();
    }
    println!("cargo:rerun-if-changed=../common/build_model.rs");
}

/// MICROGEN_BASELINE=1: the harness without a model (its sections are subtracted by the benchmark).
const BASELINE_RS: &str = r#"// @generated by build.rs (examples/firmware/common/build_model.rs): MICROGEN_BASELINE=1, no model
#[allow(dead_code)]
pub mod model {
    pub const ARENA_BYTES: usize = 0;
    pub const MACS: u64 = 0;
    pub struct Arena(pub [u8; 0]);
    impl Arena { pub const fn new() -> Self { Arena([]) } }
    pub type Input = [i8; 1];
    pub type Output = [i8; 1];
    #[inline(never)]
    pub fn predict(_: &mut Arena, input: &Input, output: &mut Output) { output[0] = input[0]; }
}
pub const MODEL_NAME: &str = "baseline";
pub const SYSTEM: &str = "baseline";
pub const REPEAT: usize = 1;
pub type State = ();
pub const fn new_state() -> State {}
pub const STATE_BYTES: usize = 0;
#[inline(always)]
pub fn predict(a: &mut model::Arena, _: &mut State, i: &model::Input, o: &mut model::Output) { model::predict(a, i, o) }
pub const SAMPLES: usize = 1;
pub const IN_BYTES: usize = 1;
pub const OUT_BYTES: usize = 1;
pub static INPUTS: &[u8] = &[0];
pub const fn new_input() -> model::Input { [0; 1] }
pub const fn new_output() -> model::Output { [0; 1] }
pub fn load_input(s: &[u8], input: &mut model::Input) {
    crate::harness::copy_bytes(unsafe { core::slice::from_raw_parts_mut(input.as_mut_ptr() as *mut u8, 1) }, &s[0..1]);
}
pub fn store_output(output: &model::Output, o: &mut [u8; OUT_BYTES]) {
    crate::harness::copy_bytes(&mut o[0..1], unsafe { core::slice::from_raw_parts(output.as_ptr() as *const u8, 1) });
}
"#;

/// The body of `mod model` for MicroFlow: `#[microflow::model]` on a struct, wrapped in the
/// harness's API. Its int8 `predict_inner` is called directly (the public `predict` and
/// `predict_quantized` return dequantized f32); the input tensor gets the model's scale and
/// zero point, as MicroFlow's own `predict_quantized` does.
fn fw_microflow_shim(g: &microgen::ir::Graph, path: &str) -> String {
    use microgen::ir::DType;
    if g.inputs.len() != 1 || g.outputs.len() != 1 {
        panic!("microflow: only models with one input and one output");
    }
    let (ti, to) = (g.t(g.inputs[0]), g.t(g.outputs[0]));
    // MicroFlow: a rank-1 shape becomes [1, n]; rank 2 -> Buffer2D (row, col); rank 4 -> Buffer4D
    // [batch][(row, col)][channel]; anything else is unimplemented!() in the macro.
    let shape2 = |s: &[usize]| -> Vec<usize> { if s.len() == 1 { vec![1, s[0]] } else { s.to_vec() } };
    let (si, so) = (shape2(&ti.shape), shape2(&to.shape));
    let elem = |d: DType| match d {
        DType::F32 => "f32",
        _ => "i8",
    };
    let q = ti.q();
    if ti.dtype != DType::I8 || to.dtype != DType::I8 || q.is_none() || ![2, 4].contains(&si.len()) || ![2, 4].contains(&so.len()) {
        // MicroFlow's macro refuses these itself (`unimplemented!()` for float inputs and other
        // ranks): emit it with a stub around it, so that its own error is what the build reports.
        return format!(
            "    #[microflow::model({path:?})]\n    pub struct MicroFlowModel;\n    pub const ARENA_BYTES: usize = 0;\n    pub const MACS: u64 = 0;\n\
             pub struct Arena;\n    impl Arena {{ pub const fn new() -> Self {{ Arena }} }}\n\
             pub type Input = [{ti}; {ni}];\n    pub type Output = [{to}; {no}];\n\
             pub fn predict(_: &mut Arena, _: &Input, _: &mut Output) {{}}\n",
            ti = elem(ti.dtype), to = elem(to.dtype), ni = ti.elems(), no = to.elems());
    }
    let q = q.unwrap();
    let (scale, zp) = (q.scale(), q.zp());
    let load = match si.len() {
        2 => format!("microflow::buffer::Buffer2D::<i8, {r}, {c}>::from_fn(|r, c| input[r * {c} + c])", r = si[0], c = si[1]),
        4 => format!(
            "core::array::from_fn::<_, {b}, _>(|b| microflow::buffer::Buffer2D::<[i8; {ch}], {r}, {c}>::from_fn(|r, c| core::array::from_fn(|k| input[((b * {r} + r) * {c} + c) * {ch} + k])))",
            b = si[0], r = si[1], c = si[2], ch = si[3]),
        n => panic!("microflow: not implemented: rank-{n} input"),
    };
    let tensor = if si.len() == 2 { "Tensor2D" } else { "Tensor4D" };
    let store = match so.len() {
        2 => format!("for r in 0..{r} {{ for c in 0..{c} {{ output[r * {c} + c] = y.buffer[(r, c)]; }} }}", r = so[0], c = so[1]),
        4 => format!(
            "for b in 0..{b} {{ for r in 0..{r} {{ for c in 0..{c} {{ for k in 0..{ch} {{ output[((b * {r} + r) * {c} + c) * {ch} + k] = y.buffer[b][(r, c)][k]; }} }} }} }}",
            b = so[0], r = so[1], c = so[2], ch = so[3]),
        n => panic!("microflow: not implemented: rank-{n} output"),
    };
    format!(
        r#"    #[microflow::model({path:?})]
    pub struct MicroFlowModel;
    /// MicroFlow keeps every tensor on the stack: no arena.
    pub const ARENA_BYTES: usize = 0;
    pub const MACS: u64 = 0;
    pub struct Arena;
    impl Arena {{ pub const fn new() -> Self {{ Arena }} }}
    pub type Input = [i8; {ni}];
    pub type Output = [i8; {no}];
    #[inline(never)]
    pub fn predict(_: &mut Arena, input: &Input, output: &mut Output) {{
        let x = microflow::tensor::{tensor}::new({load}, [{scale:?}f32], [{zp}i8]);
        let y = MicroFlowModel::predict_inner(x);
        {store}
    }}
"#,
        ni = ti.elems(),
        no = to.elems(),
    )
}
