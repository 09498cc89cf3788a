//! TFLite FlatBuffers -> IR. The file is untrusted: every access goes through planus'
//! verified accessors, every index is range-checked, and hard limits are checked before
//! anything is allocated.

pub mod schema;

use crate::error::{Error, Result};
use crate::ir::{Act, DType, Graph, Node, Op, Padding, Quant, Tensor, Window};
use planus::ReadAsRoot;
use schema::{BuiltinOptionsRef, BuiltinOperator, ModelRef, OperatorRef};

/// Hard limits, checked before allocation.
pub mod limits {
    /// Largest model file accepted.
    pub const MAX_FILE_BYTES: usize = 256 << 20;
    /// Most tensors in the subgraph.
    pub const MAX_TENSORS: usize = 100_000;
    /// Most operators in the subgraph.
    pub const MAX_OPERATORS: usize = 100_000;
    /// Largest tensor rank.
    pub const MAX_RANK: usize = 8;
    /// Most elements in one tensor.
    pub const MAX_ELEMENTS: usize = 1 << 28;
    /// Most operands of one operator.
    pub const MAX_OPERANDS: usize = 4096;
}

fn mal(e: planus::Error) -> Error {
    Error::malformed(format!("not a valid TFLite FlatBuffer ({e})"))
        .with_hint("the file is truncated or corrupted; re-export it from the converter")
}

/// The builtin operator code of an operator code entry (the larger of the deprecated
/// 8-bit field and the 32-bit field, as the format defines it).
fn op_code(c: &schema::OperatorCodeRef) -> Result<i32> {
    let dep = c.deprecated_builtin_code().map_err(mal)? as i32;
    let new = c.builtin_code().map_err(mal)?;
    Ok(dep.max(new))
}

/// A readable name for an operator code.
pub fn op_name(code: i32) -> String {
    match BuiltinOperator::try_from(code) {
        Ok(b) => {
            // Debug gives CamelCase; convert to the TFLite SCREAMING_CASE name.
            let s = format!("{b:?}");
            let mut out = String::new();
            let chars: Vec<char> = s.chars().collect();
            for (i, &ch) in chars.iter().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    let prev = chars[i - 1];
                    let next_lower = chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
                    if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                        out.push('_');
                    }
                }
                out.push(ch.to_ascii_uppercase());
            }
            // A few names where the CamelCase split differs from TFLite's.
            match out.as_str() {
                "CONV2_D" => "CONV_2D".into(),
                "DEPTHWISE_CONV2_D" => "DEPTHWISE_CONV_2D".into(),
                "AVERAGE_POOL2_D" => "AVERAGE_POOL_2D".into(),
                "MAX_POOL2_D" => "MAX_POOL_2D".into(),
                "L2_POOL2_D" => "L2_POOL_2D".into(),
                "RELU_N1_TO1" => "RELU_N1_TO_1".into(),
                "PAD_V2" => "PADV2".into(),
                "TOPK_V2" | "TOP_K_V2" => "TOPK_V2".into(),
                _ => out,
            }
        }
        Err(_) => format!("BUILTIN_{code}"),
    }
}

fn dtype(t: i8) -> DType {
    match t {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::I32,
        3 => DType::U8,
        4 => DType::I64,
        6 => DType::Bool,
        7 => DType::I16,
        9 => DType::I8,
        10 => DType::F64,
        12 => DType::U64,
        15 => DType::U32,
        16 => DType::U16,
        17 => DType::I4,
        other => DType::Other(other),
    }
}

fn act(v: i8) -> Result<Act> {
    Ok(match v {
        0 => Act::None,
        1 => Act::Relu,
        2 => Act::ReluN1To1,
        3 => Act::Relu6,
        4 => return Err(Error::unsupported("fused TANH activation is not supported")),
        5 => return Err(Error::unsupported("fused SIGN_BIT activation is not supported")),
        v => return Err(Error::malformed(format!("unknown fused activation {v}"))),
    })
}

fn padding(v: i8) -> Result<Padding> {
    match v {
        0 => Ok(Padding::Same),
        1 => Ok(Padding::Valid),
        v => Err(Error::malformed(format!("unknown padding {v}"))),
    }
}

fn pos(v: i32, what: &str) -> Result<usize> {
    if v >= 1 && v <= 1 << 16 {
        Ok(v as usize)
    } else {
        Err(Error::invalid(format!("{what} must be between 1 and 65536, got {v}")))
    }
}

/// Reads a `.tflite` file into the IR. `name` is used in messages.
pub fn read(bytes: &[u8], name: &str) -> Result<Graph> {
    read_inner(bytes, name).map_err(|e| e.with_model(name))
}

fn read_inner(bytes: &[u8], name: &str) -> Result<Graph> {
    if bytes.len() > limits::MAX_FILE_BYTES {
        return Err(Error::limit(format!("file is {} bytes; the limit is {} bytes", bytes.len(), limits::MAX_FILE_BYTES)));
    }
    if bytes.len() < 8 {
        return Err(Error::malformed(format!("file is only {} bytes; a TFLite model is a FlatBuffer of at least 8 bytes", bytes.len())));
    }
    if &bytes[4..8] != b"TFL3" {
        return Err(Error::malformed(format!(
            "file identifier is {:?}, expected \"TFL3\"",
            String::from_utf8_lossy(&bytes[4..8])
        ))
        .with_hint("this is not a TensorFlow Lite model (.tflite)"));
    }
    let model = ModelRef::read_as_root(bytes).map_err(mal)?;
    let subgraphs = model.subgraphs().map_err(mal)?.ok_or_else(|| Error::malformed("model has no subgraphs"))?;
    if subgraphs.is_empty() {
        return Err(Error::malformed("model has no subgraphs"));
    }
    let sg = subgraphs.get(0).ok_or_else(|| Error::malformed("model has no subgraphs"))?.map_err(mal)?;
    let codes: Vec<schema::OperatorCodeRef> = match model.operator_codes().map_err(mal)? {
        Some(v) => v.iter().collect::<std::result::Result<Vec<_>, _>>().map_err(mal)?,
        None => Vec::new(),
    };
    let buffers = model.buffers().map_err(mal)?;
    let tensors_fb = sg.tensors().map_err(mal)?.ok_or_else(|| Error::malformed("subgraph 0 has no tensors"))?;
    if tensors_fb.len() > limits::MAX_TENSORS {
        return Err(Error::limit(format!("{} tensors; the limit is {}", tensors_fb.len(), limits::MAX_TENSORS)));
    }
    let ops_fb = sg.operators().map_err(mal)?;
    let n_ops = ops_fb.as_ref().map_or(0, |v| v.len());
    if n_ops > limits::MAX_OPERATORS {
        return Err(Error::limit(format!("{n_ops} operators; the limit is {}", limits::MAX_OPERATORS)));
    }

    let mut g = Graph::new(name);
    let n_tensors = tensors_fb.len();
    for (i, t) in tensors_fb.iter().enumerate() {
        let t = t.map_err(mal)?;
        g.tensors.push(read_tensor(t, i, &buffers, bytes)?);
    }
    let tensor_index = |v: i32, what: &str| -> Result<Option<usize>> {
        if v == -1 {
            return Ok(None);
        }
        if v < 0 || v as usize >= n_tensors {
            return Err(Error::malformed(format!("{what} tensor index {v} out of range (subgraph has {n_tensors} tensors)")));
        }
        Ok(Some(v as usize))
    };
    for v in sg.inputs().map_err(mal)?.map(|v| v.iter().collect::<Vec<i32>>()).unwrap_or_default() {
        let t = tensor_index(v, "model input")?.ok_or_else(|| Error::malformed("model input index -1"))?;
        g.inputs.push(t);
    }
    for v in sg.outputs().map_err(mal)?.map(|v| v.iter().collect::<Vec<i32>>()).unwrap_or_default() {
        let t = tensor_index(v, "model output")?.ok_or_else(|| Error::malformed("model output index -1"))?;
        g.outputs.push(t);
    }
    if g.inputs.is_empty() || g.outputs.is_empty() {
        return Err(Error::invalid("model has no inputs or no outputs"));
    }
    let mut unknown: Vec<(usize, String, Error)> = Vec::new();
    if let Some(ops) = ops_fb {
        for (i, op) in ops.iter().enumerate() {
            let op = op.map_err(mal)?;
            let ci = op.opcode_index().map_err(mal)? as usize;
            let code = codes.get(ci).ok_or_else(|| {
                Error::malformed(format!("operator code index {ci} out of range (model has {} codes)", codes.len())).with_op(i, "?")
            })?;
            let c = op_code(code)?;
            let oname = if c == 32 {
                format!("CUSTOM:{}", code.custom_code().map_err(mal)?.unwrap_or("?"))
            } else {
                op_name(c)
            };
            let wrap = |e: Error| e.with_op(i, oname.clone());
            let mut inputs = Vec::new();
            let mut outputs = Vec::new();
            let ins: Vec<i32> = op.inputs().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
            let outs: Vec<i32> = op.outputs().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
            if ins.len() > limits::MAX_OPERANDS || outs.len() > limits::MAX_OPERANDS {
                return Err(wrap(Error::limit("too many operands")));
            }
            for v in ins {
                inputs.push(tensor_index(v, "input").map_err(wrap)?);
            }
            for v in outs {
                outputs.push(tensor_index(v, "output").map_err(wrap)?.ok_or_else(|| wrap(Error::malformed("output tensor index -1")))?);
            }
            match decode(c, &oname, &op, &g, &inputs, &outputs) {
                Ok(node_op) => {
                    g.nodes.add_node(Node { index: i, op: node_op, inputs, outputs });
                }
                // Unknown operators: collect them all, so one error lists every one.
                Err(e) if e.kind == crate::error::ErrorKind::Unsupported && e.message.starts_with("operator ") => {
                    unknown.push((i, oname.clone(), e));
                }
                Err(e) => return Err(wrap(e)),
            }
        }
    }
    if let Some((i, name, first)) = unknown.first() {
        if unknown.len() == 1 {
            return Err(first.clone().with_op(*i, name.clone()));
        }
        let list: Vec<String> = unknown.iter().map(|(i, n, _)| format!("{i} {n}")).collect();
        let mut names: Vec<&str> = unknown.iter().map(|(_, n, _)| n.as_str()).collect();
        names.sort();
        names.dedup();
        let any_custom = names.iter().any(|n| n.starts_with("CUSTOM:"));
        return Err(Error::unsupported(format!(
            "{} operators are not supported: {} (operators {}); supported operators: {}",
            unknown.len(),
            names.join(", "),
            list.join(", "),
            crate::codegen::kernels::supported_list()
        ))
        .with_op(*i, name.clone())
        .with_hint(if any_custom {
            "custom operators cannot be compiled; replace them with builtin operators"
        } else {
            "replace them with supported operators or open an issue"
        }));
    }
    resolve_variables(&mut g, &model, &codes, &buffers, bytes)?;
    g.rebuild_edges();
    Ok(g)
}

/// Turns VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE / CALL_ONCE into [`Variable`]s with
/// initial values (from the init subgraph) and variable reads and writes chained by
/// zero-byte ordering tokens, so later stages keep their order.
fn resolve_variables(
    g: &mut Graph,
    model: &ModelRef,
    codes: &[schema::OperatorCodeRef],
    buffers: &Option<planus::Vector<'_, planus::Result<schema::BufferRef<'_>>>>,
    bytes: &[u8],
) -> Result<()> {
    use crate::ir::Variable;
    let mut order: Vec<_> = g.nodes.node_indices().collect();
    order.sort_by_key(|n| g.nodes[*n].index);
    // Resource tensor -> variable.
    let mut handle_var: std::collections::HashMap<usize, usize> = Default::default();
    let mut init_subgraph = None;
    for &n in &order {
        match &g.nodes[n].op {
            Op::VarHandle { name } => {
                let name = name.clone();
                let v = match g.variables.iter().position(|v| v.name == name) {
                    Some(v) => v,
                    None => {
                        g.variables.push(Variable { name, dtype: DType::Other(-1), shape: Vec::new(), quant: None, init: Vec::new() });
                        g.variables.len() - 1
                    }
                };
                handle_var.insert(g.nodes[n].outputs[0], v);
            }
            Op::CallOnce { init_subgraph: s } => {
                if init_subgraph.is_some_and(|x| x != *s) {
                    return Err(Error::unsupported("several CALL_ONCE init subgraphs").with_op(g.nodes[n].index, "CALL_ONCE"));
                }
                init_subgraph = Some(*s);
            }
            _ => {}
        }
    }
    if handle_var.is_empty() && init_subgraph.is_none() {
        return Ok(());
    }
    // Rewrite reads and writes, chaining them with ordering tokens.
    let mut last_assign: Vec<Option<usize>> = vec![None; g.variables.len()];
    let mut reads_since: Vec<Vec<usize>> = vec![Vec::new(); g.variables.len()];
    for &n in &order {
        let node = g.nodes[n].clone();
        let at = |e: Error| e.with_op(node.index, node.op.name());
        let var_of = |h: Option<usize>| -> Result<usize> {
            h.and_then(|h| handle_var.get(&h).copied())
                .ok_or_else(|| at(Error::unsupported("variable handle does not come from a VAR_HANDLE of the main subgraph")))
        };
        match node.op {
            Op::ReadVariable { .. } => {
                let v = var_of(node.input(0))?;
                let y = node.outputs[0];
                let yt = g.t(y).clone();
                let var = &mut g.variables[v];
                if var.shape.is_empty() && matches!(var.dtype, DType::Other(-1)) {
                    (var.dtype, var.shape, var.quant) = (yt.dtype, yt.shape.clone(), yt.quant.clone());
                } else if var.dtype != yt.dtype || var.shape.iter().product::<usize>() != yt.elems() {
                    return Err(at(Error::invalid(format!("reads variable '{}' as {} {:?}, but it is {} {:?}", var.name, yt.dtype, yt.shape, var.dtype, var.shape))));
                }
                let token = new_token(g);
                let node = &mut g.nodes[n];
                node.op = Op::ReadVariable { var: v };
                node.inputs = last_assign[v].map(Some).into_iter().collect();
                node.outputs.push(token);
                reads_since[v].push(token);
            }
            Op::AssignVariable { .. } => {
                let v = var_of(node.input(0))?;
                let x = node.input(1).ok_or_else(|| at(Error::invalid("ASSIGN_VARIABLE without a value")))?;
                let xt = g.t(x).clone();
                let var = &mut g.variables[v];
                if var.shape.is_empty() && matches!(var.dtype, DType::Other(-1)) {
                    (var.dtype, var.shape, var.quant) = (xt.dtype, xt.shape.clone(), xt.quant.clone());
                } else if var.dtype != xt.dtype || var.shape.iter().product::<usize>() != xt.elems() {
                    return Err(at(Error::invalid(format!("assigns {} {:?} to variable '{}' of {} {:?}", xt.dtype, xt.shape, var.name, var.dtype, var.shape))));
                }
                let token = new_token(g);
                let mut inputs = vec![Some(x)];
                inputs.extend(last_assign[v].map(Some));
                inputs.extend(reads_since[v].drain(..).map(Some));
                let node = &mut g.nodes[n];
                node.op = Op::AssignVariable { var: v };
                node.inputs = inputs;
                node.outputs = vec![token];
                last_assign[v] = Some(token);
            }
            _ => {}
        }
    }
    for &n in &order {
        if matches!(g.nodes[n].op, Op::VarHandle { .. } | Op::CallOnce { .. }) {
            g.nodes.remove_node(n);
        }
    }
    for v in g.variables.iter_mut() {
        if matches!(v.dtype, DType::Other(-1)) {
            return Err(Error::unsupported(format!("variable '{}' is never read or written by the main subgraph", v.name)));
        }
        v.init = vec![0; v.bytes()];
    }
    // Initial values from the init subgraph: VAR_HANDLE + ASSIGN_VARIABLE of constants.
    if let Some(si) = init_subgraph {
        let subgraphs = model.subgraphs().map_err(mal)?.ok_or_else(|| Error::malformed("model has no subgraphs"))?;
        let sg = subgraphs
            .get(si)
            .ok_or_else(|| Error::malformed(format!("CALL_ONCE init subgraph {si} does not exist ({} subgraphs)", subgraphs.len())))?
            .map_err(mal)?;
        let tfb = sg.tensors().map_err(mal)?;
        let n_t = tfb.as_ref().map_or(0, |t| t.len());
        if n_t > limits::MAX_TENSORS {
            return Err(Error::limit(format!("init subgraph has {n_t} tensors")));
        }
        let mut tensors = Vec::with_capacity(n_t);
        if let Some(tv) = tfb {
            for (i, t) in tv.iter().enumerate() {
                tensors.push(read_tensor(t.map_err(mal)?, i, buffers, bytes)?);
            }
        }
        let tix = |v: i32| -> Result<usize> {
            if v < 0 || v as usize >= tensors.len() {
                Err(Error::malformed(format!("init subgraph tensor index {v} out of range")))
            } else {
                Ok(v as usize)
            }
        };
        let mut handles: std::collections::HashMap<usize, String> = Default::default();
        if let Some(ops) = sg.operators().map_err(mal)? {
            for (i, op) in ops.iter().enumerate() {
                let op = op.map_err(mal)?;
                let ci = op.opcode_index().map_err(mal)? as usize;
                let code = op_code(codes.get(ci).ok_or_else(|| Error::malformed(format!("operator code index {ci} out of range")))?)?;
                let ins: Vec<i32> = op.inputs().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
                let outs: Vec<i32> = op.outputs().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
                let where_ = |e: Error| e.with_op(i, format!("init subgraph {si}: {}", op_name(code)));
                match BuiltinOperator::try_from(code) {
                    Ok(BuiltinOperator::VarHandle) => {
                        let (c, n) = match op.builtin_options().map_err(mal)? {
                            Some(BuiltinOptionsRef::VarHandleOptions(o)) => (
                                o.container().map_err(mal)?.unwrap_or("").to_string(),
                                o.shared_name().map_err(mal)?.unwrap_or("").to_string(),
                            ),
                            _ => (String::new(), String::new()),
                        };
                        let o = tix(*outs.first().ok_or_else(|| where_(Error::malformed("VAR_HANDLE without output")))?)?;
                        handles.insert(o, format!("{c}/{n}"));
                    }
                    Ok(BuiltinOperator::AssignVariable) => {
                        if ins.len() != 2 {
                            return Err(where_(Error::malformed("ASSIGN_VARIABLE needs 2 inputs")));
                        }
                        let (h, x) = (tix(ins[0])?, tix(ins[1])?);
                        let name = handles.get(&h).ok_or_else(|| where_(Error::unsupported("handle not from a VAR_HANDLE")))?;
                        let Some(v) = g.variables.iter_mut().find(|v| &v.name == name) else { continue };
                        let data = tensors[x]
                            .data
                            .clone()
                            .ok_or_else(|| where_(Error::unsupported("the init subgraph computes a variable's value; only constants are supported")))?;
                        if data.len() != v.bytes() || tensors[x].dtype != v.dtype {
                            return Err(where_(Error::invalid(format!(
                                "initial value of '{}' is {} bytes of {}, the variable is {} bytes of {}",
                                v.name,
                                data.len(),
                                tensors[x].dtype,
                                v.bytes(),
                                v.dtype
                            ))));
                        }
                        v.init = data;
                    }
                    _ => {
                        return Err(where_(Error::unsupported(
                            "the CALL_ONCE init subgraph may only contain VAR_HANDLE and ASSIGN_VARIABLE of constants",
                        )))
                    }
                }
            }
        }
    }
    Ok(())
}

/// A zero-byte tensor that only orders two operators.
fn new_token(g: &mut Graph) -> usize {
    let id = g.tensors.len();
    g.tensors.push(Tensor {
        index: id,
        name: "state-order-token".into(),
        dtype: DType::Bool,
        shape: vec![0],
        quant: None,
        data: None,
        is_variable: false,
    });
    id
}

fn need(inputs: &[Option<usize>], outputs: &[usize], min_in: usize, max_in: usize, n_out: usize) -> Result<()> {
    let present = inputs.len();
    if present < min_in || present > max_in {
        return Err(Error::invalid(format!("expects {min_in}..={max_in} inputs, has {present}")));
    }
    for (k, i) in inputs.iter().enumerate().take(min_in) {
        if i.is_none() {
            return Err(Error::invalid(format!("required input {k} is missing")));
        }
    }
    if n_out != usize::MAX && outputs.len() != n_out {
        return Err(Error::invalid(format!("expects {n_out} outputs, has {}", outputs.len())));
    }
    Ok(())
}

fn decode(code: i32, name: &str, op: &OperatorRef, g: &Graph, inputs: &[Option<usize>], outputs: &[usize]) -> Result<Op> {
    let opts = op.builtin_options().map_err(mal)?;
    let b = BuiltinOperator::try_from(code).ok();
    use BuiltinOperator as B;
    let Some(b) = b else {
        return Err(unsupported(name));
    };
    let _ = g;
    Ok(match b {
        B::FullyConnected => {
            need(inputs, outputs, 2, 3, 1)?;
            let (a, keep, asym) = match opts {
                Some(BuiltinOptionsRef::FullyConnectedOptions(o)) => {
                    if o.weights_format().map_err(mal)? != 0 {
                        return Err(Error::unsupported("FULLY_CONNECTED with shuffled weights format"));
                    }
                    (act(o.fused_activation_function().map_err(mal)?)?, o.keep_num_dims().map_err(mal)?, o.asymmetric_quantize_inputs().map_err(mal)?)
                }
                _ => (Act::None, false, false),
            };
            Op::FullyConnected { act: a, keep_num_dims: keep, asymmetric_inputs: asym }
        }
        B::Conv2d => {
            need(inputs, outputs, 2, 3, 1)?;
            let Some(BuiltinOptionsRef::Conv2DOptions(o)) = opts else { return Err(Error::malformed("CONV_2D without Conv2DOptions")) };
            Op::Conv2d {
                win: Window {
                    stride_h: pos(o.stride_h().map_err(mal)?, "stride_h")?,
                    stride_w: pos(o.stride_w().map_err(mal)?, "stride_w")?,
                    dilation_h: pos(o.dilation_h_factor().map_err(mal)?, "dilation_h_factor")?,
                    dilation_w: pos(o.dilation_w_factor().map_err(mal)?, "dilation_w_factor")?,
                    padding: padding(o.padding().map_err(mal)?)?,
                },
                act: act(o.fused_activation_function().map_err(mal)?)?,
            }
        }
        B::DepthwiseConv2d => {
            need(inputs, outputs, 2, 3, 1)?;
            let Some(BuiltinOptionsRef::DepthwiseConv2DOptions(o)) = opts else {
                return Err(Error::malformed("DEPTHWISE_CONV_2D without DepthwiseConv2DOptions"));
            };
            Op::DepthwiseConv2d {
                win: Window {
                    stride_h: pos(o.stride_h().map_err(mal)?, "stride_h")?,
                    stride_w: pos(o.stride_w().map_err(mal)?, "stride_w")?,
                    dilation_h: pos(o.dilation_h_factor().map_err(mal)?, "dilation_h_factor")?,
                    dilation_w: pos(o.dilation_w_factor().map_err(mal)?, "dilation_w_factor")?,
                    padding: padding(o.padding().map_err(mal)?)?,
                },
                depth_multiplier: o.depth_multiplier().map_err(mal)?.max(0) as usize,
                act: act(o.fused_activation_function().map_err(mal)?)?,
            }
        }
        B::AveragePool2d | B::MaxPool2d => {
            need(inputs, outputs, 1, 1, 1)?;
            let Some(BuiltinOptionsRef::Pool2DOptions(o)) = opts else { return Err(Error::malformed("pool without Pool2DOptions")) };
            let win = Window {
                stride_h: pos(o.stride_h().map_err(mal)?, "stride_h")?,
                stride_w: pos(o.stride_w().map_err(mal)?, "stride_w")?,
                dilation_h: 1,
                dilation_w: 1,
                padding: padding(o.padding().map_err(mal)?)?,
            };
            let fh = pos(o.filter_height().map_err(mal)?, "filter_height")?;
            let fw = pos(o.filter_width().map_err(mal)?, "filter_width")?;
            let a = act(o.fused_activation_function().map_err(mal)?)?;
            if b == B::AveragePool2d {
                Op::AveragePool2d { win, filter_h: fh, filter_w: fw, act: a }
            } else {
                Op::MaxPool2d { win, filter_h: fh, filter_w: fw, act: a }
            }
        }
        B::Softmax => {
            need(inputs, outputs, 1, 1, 1)?;
            let beta = match opts {
                Some(BuiltinOptionsRef::SoftmaxOptions(o)) => o.beta().map_err(mal)?,
                _ => 1.0,
            };
            if !(beta.is_finite() && beta > 0.0) {
                return Err(Error::invalid(format!("softmax beta {beta} must be positive and finite")));
            }
            Op::Softmax { beta }
        }
        B::LogSoftmax => {
            need(inputs, outputs, 1, 1, 1)?;
            Op::LogSoftmax
        }
        B::Reshape | B::Squeeze | B::ExpandDims => {
            need(inputs, outputs, 1, 2, 1)?;
            let kind = match b {
                B::Reshape => "RESHAPE",
                B::Squeeze => "SQUEEZE",
                _ => "EXPAND_DIMS",
            };
            let (i, o) = (inputs[0].unwrap_or(0), outputs[0]);
            if g.t(i).elems() != g.t(o).elems() || g.t(i).dtype != g.t(o).dtype {
                return Err(Error::invalid(format!(
                    "{kind} changes the element count or type ({:?} {} -> {:?} {})",
                    g.t(i).shape, g.t(i).dtype, g.t(o).shape, g.t(o).dtype
                )));
            }
            Op::View { kind }
        }
        B::Quantize => {
            need(inputs, outputs, 1, 1, 1)?;
            Op::Quantize
        }
        B::Dequantize => {
            need(inputs, outputs, 1, 1, 1)?;
            Op::Dequantize
        }
        B::Relu => unary(inputs, outputs, Op::Relu)?,
        B::Relu6 => unary(inputs, outputs, Op::Relu6)?,
        B::ReluN1To1 => unary(inputs, outputs, Op::ReluN1To1)?,
        B::Logistic => unary(inputs, outputs, Op::Logistic)?,
        B::Tanh => unary(inputs, outputs, Op::Tanh)?,
        B::HardSwish => unary(inputs, outputs, Op::HardSwish)?,
        B::LeakyRelu => {
            need(inputs, outputs, 1, 1, 1)?;
            let alpha = match opts {
                Some(BuiltinOptionsRef::LeakyReluOptions(o)) => o.alpha().map_err(mal)?,
                _ => 0.2,
            };
            Op::LeakyRelu { alpha }
        }
        B::Add | B::Sub | B::Mul => {
            need(inputs, outputs, 2, 2, 1)?;
            let a = match opts {
                Some(BuiltinOptionsRef::AddOptions(o)) => act(o.fused_activation_function().map_err(mal)?)?,
                Some(BuiltinOptionsRef::SubOptions(o)) => act(o.fused_activation_function().map_err(mal)?)?,
                Some(BuiltinOptionsRef::MulOptions(o)) => act(o.fused_activation_function().map_err(mal)?)?,
                _ => Act::None,
            };
            match b {
                B::Add => Op::Add { act: a },
                B::Sub => Op::Sub { act: a },
                _ => Op::Mul { act: a },
            }
        }
        B::Mean => {
            need(inputs, outputs, 2, 2, 1)?;
            let keep_dims = match opts {
                Some(BuiltinOptionsRef::ReducerOptions(o)) => o.keep_dims().map_err(mal)?,
                _ => false,
            };
            Op::Mean { keep_dims }
        }
        B::Pad | B::Padv2 => {
            need(inputs, outputs, 2, 3, 1)?;
            Op::Pad
        }
        B::Concatenation => {
            need(inputs, outputs, 1, limits::MAX_OPERANDS, 1)?;
            let (axis, a) = match opts {
                Some(BuiltinOptionsRef::ConcatenationOptions(o)) => (o.axis().map_err(mal)?, act(o.fused_activation_function().map_err(mal)?)?),
                _ => (0, Act::None),
            };
            Op::Concatenation { axis, act: a }
        }
        B::StridedSlice => {
            need(inputs, outputs, 4, 4, 1)?;
            let Some(BuiltinOptionsRef::StridedSliceOptions(o)) = opts else {
                return Err(Error::malformed("STRIDED_SLICE without StridedSliceOptions"));
            };
            Op::StridedSlice {
                begin_mask: o.begin_mask().map_err(mal)?,
                end_mask: o.end_mask().map_err(mal)?,
                ellipsis_mask: o.ellipsis_mask().map_err(mal)?,
                new_axis_mask: o.new_axis_mask().map_err(mal)?,
                shrink_axis_mask: o.shrink_axis_mask().map_err(mal)?,
                offset: o.offset().map_err(mal)?,
            }
        }
        B::Transpose => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::Transpose
        }
        B::Minimum => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::Minimum
        }
        B::Maximum => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::Maximum
        }
        B::ResizeNearestNeighbor => {
            need(inputs, outputs, 2, 2, 1)?;
            let (align_corners, half_pixel_centers) = match opts {
                Some(BuiltinOptionsRef::ResizeNearestNeighborOptions(o)) => (o.align_corners().map_err(mal)?, o.half_pixel_centers().map_err(mal)?),
                _ => (false, false),
            };
            Op::ResizeNearestNeighbor { align_corners, half_pixel_centers }
        }
        B::Split => {
            need(inputs, outputs, 2, 2, usize::MAX)?;
            Op::Split { num_splits: outputs.len() }
        }
        B::SplitV => {
            need(inputs, outputs, 3, 3, usize::MAX)?;
            Op::SplitV { num_splits: outputs.len() }
        }
        B::Pack => {
            need(inputs, outputs, 1, limits::MAX_OPERANDS, 1)?;
            let axis = match opts {
                Some(BuiltinOptionsRef::PackOptions(o)) => o.axis().map_err(mal)?,
                _ => 0,
            };
            Op::Pack { axis, values_count: inputs.len() }
        }
        B::Unpack => {
            need(inputs, outputs, 1, 1, usize::MAX)?;
            let axis = match opts {
                Some(BuiltinOptionsRef::UnpackOptions(o)) => o.axis().map_err(mal)?,
                _ => 0,
            };
            Op::Unpack { axis, num: outputs.len() }
        }
        B::ArgMax => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::ArgMax
        }
        B::ArgMin => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::ArgMin
        }
        B::Prelu => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::Prelu
        }
        B::Densify => {
            need(inputs, outputs, 1, 1, 1)?;
            Op::Densify
        }
        B::VarHandle => {
            need(inputs, outputs, 0, 0, 1)?;
            let (c, n) = match opts {
                Some(BuiltinOptionsRef::VarHandleOptions(o)) => (
                    o.container().map_err(mal)?.unwrap_or("").to_string(),
                    o.shared_name().map_err(mal)?.unwrap_or("").to_string(),
                ),
                _ => (String::new(), String::new()),
            };
            let name = if c.is_empty() && n.is_empty() { format!("#tensor{}", outputs[0]) } else { format!("{c}/{n}") };
            Op::VarHandle { name }
        }
        B::ReadVariable => {
            need(inputs, outputs, 1, 1, 1)?;
            Op::ReadVariable { var: usize::MAX }
        }
        B::AssignVariable => {
            need(inputs, outputs, 2, 2, 0)?;
            Op::AssignVariable { var: usize::MAX }
        }
        B::CallOnce => {
            need(inputs, outputs, 0, 0, 0)?;
            let init = match opts {
                Some(BuiltinOptionsRef::CallOnceOptions(o)) => o.init_subgraph_index().map_err(mal)?,
                _ => return Err(Error::malformed("CALL_ONCE without CallOnceOptions")),
            };
            if init < 0 {
                return Err(Error::malformed(format!("CALL_ONCE init subgraph index {init}")));
            }
            Op::CallOnce { init_subgraph: init as usize }
        }
        B::TransposeConv => {
            need(inputs, outputs, 3, 4, 1)?;
            let Some(BuiltinOptionsRef::TransposeConvOptions(o)) = opts else {
                return Err(Error::malformed("TRANSPOSE_CONV without TransposeConvOptions"));
            };
            Op::TransposeConv {
                win: Window {
                    stride_h: pos(o.stride_h().map_err(mal)?, "stride_h")?,
                    stride_w: pos(o.stride_w().map_err(mal)?, "stride_w")?,
                    dilation_h: 1,
                    dilation_w: 1,
                    padding: padding(o.padding().map_err(mal)?)?,
                },
                act: act(o.fused_activation_function().map_err(mal)?)?,
            }
        }
        B::ReduceMax => {
            need(inputs, outputs, 2, 2, 1)?;
            let keep_dims = match opts {
                Some(BuiltinOptionsRef::ReducerOptions(o)) => o.keep_dims().map_err(mal)?,
                _ => false,
            };
            Op::ReduceMax { keep_dims }
        }
        B::Tile => {
            need(inputs, outputs, 2, 2, 1)?;
            Op::Tile
        }
        B::ResizeBilinear => {
            need(inputs, outputs, 2, 2, 1)?;
            let (align_corners, half_pixel_centers) = match opts {
                Some(BuiltinOptionsRef::ResizeBilinearOptions(o)) => (o.align_corners().map_err(mal)?, o.half_pixel_centers().map_err(mal)?),
                _ => (false, false),
            };
            Op::ResizeBilinear { align_corners, half_pixel_centers }
        }
        _ => return Err(unsupported(name)),
    })
}

fn unary(inputs: &[Option<usize>], outputs: &[usize], op: Op) -> Result<Op> {
    need(inputs, outputs, 1, 1, 1)?;
    Ok(op)
}

fn unsupported(name: &str) -> Error {
    let hint = if name.starts_with("CUSTOM:") {
        "custom operators cannot be compiled; replace it with builtin operators"
    } else {
        "replace it with supported operators or open an issue"
    };
    Error::unsupported(format!(
        "operator {name} is not supported; supported operators: {}",
        crate::codegen::kernels::supported_list()
    ))
    .with_hint(hint)
}

/// Decodes one tensor of a subgraph (shape, type, quantization, constant data), checking limits.
fn read_tensor(t: schema::TensorRef, i: usize, buffers: &Option<planus::Vector<'_, planus::Result<schema::BufferRef<'_>>>>, bytes: &[u8]) -> Result<Tensor> {
    let tname = t.name().map_err(mal)?.unwrap_or("").to_string();
    let terr = |e: Error| e.with_tensor(i, tname.clone());
    let dt = dtype(t.type_().map_err(mal)?);
    let shape_v: Vec<i32> = match t.shape().map_err(mal)? {
        Some(s) => {
            if s.len() > limits::MAX_RANK {
                return Err(terr(Error::limit(format!("rank {} exceeds the limit of {}", s.len(), limits::MAX_RANK))));
            }
            s.iter().collect()
        }
        None => Vec::new(),
    };
    let sig: Option<Vec<i32>> = t.shape_signature().map_err(mal)?.map(|s| s.iter().collect());
    let mut shape = Vec::with_capacity(shape_v.len());
    for (d, &v) in shape_v.iter().enumerate() {
        let dynamic = sig.as_ref().and_then(|s| s.get(d)).is_some_and(|&s| s == -1);
        if dynamic && d == 0 && (v == 1 || v == -1) {
            shape.push(1);
            continue;
        }
        if dynamic || v < 0 {
            return Err(terr(Error::unsupported(format!("dimension {d} is dynamic (shape {shape_v:?})"))
                .with_hint("only a dynamic batch dimension (resolved to 1) is supported; export the model with static shapes")));
        }
        shape.push(v as usize);
    }
    let mut elems: usize = 1;
    for &d in &shape {
        elems = elems.checked_mul(d).filter(|&e| e <= limits::MAX_ELEMENTS).ok_or_else(|| {
            terr(Error::limit(format!("shape {shape_v:?} has more than {} elements", limits::MAX_ELEMENTS)))
        })?;
    }
    let quant = match t.quantization().map_err(mal)? {
        Some(q) => {
            let scale: Vec<f32> = q.scale().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
            let zp: Vec<i64> = q.zero_point().map_err(mal)?.map(|v| v.iter().collect()).unwrap_or_default();
            if scale.is_empty() {
                None
            } else {
                if scale.len() > elems.max(1) {
                    return Err(terr(Error::invalid(format!("{} quantization scales for {} elements", scale.len(), elems))));
                }
                if let Some(s) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    // TFLite writes scale 0 for some unused tensors; only reject where used.
                    if *s != 0.0 {
                        return Err(terr(Error::invalid(format!("quantization scale {s} is not a positive finite number"))));
                    }
                }
                if !zp.is_empty() && zp.len() != scale.len() {
                    return Err(terr(Error::invalid(format!("{} zero points for {} scales", zp.len(), scale.len()))));
                }
                let axis = q.quantized_dimension().map_err(mal)?;
                let axis = if scale.len() > 1 {
                    // TFLM accepts 1-D tensors (person_detect's biases) whose stored
                    // quantized_dimension is out of range: the only axis is 0.
                    let axis = if shape.len() == 1 && shape[0] == scale.len() { 0 } else { axis };
                    if axis < 0 || axis as usize >= shape.len() || shape[axis as usize] != scale.len() {
                        return Err(terr(Error::invalid(format!(
                            "per-channel quantization along dimension {axis} with {} scales does not match shape {shape:?}",
                            scale.len()
                        ))));
                    }
                    axis as usize
                } else {
                    // person_detect has 1-D biases with quantized_dimension 3; TFLM ignores it.
                    0
                };
                let zero_point = if zp.is_empty() { vec![0; scale.len()] } else { zp };
                Some(Quant { scale, zero_point, axis })
            }
        }
        None => None,
    };
    let bidx = t.buffer().map_err(mal)? as usize;
    let mut data = None;
    if bidx != 0 {
        let bufs = buffers.as_ref().ok_or_else(|| terr(Error::malformed("tensor refers to a buffer but the model has none")))?;
        if bidx >= bufs.len() {
            return Err(terr(Error::malformed(format!("buffer index {bidx} out of range (model has {} buffers)", bufs.len()))));
        }
        let b = bufs.get(bidx).ok_or_else(|| Error::malformed("buffer index out of range"))?.map_err(mal)?;
        let mut bytes_opt: Option<&[u8]> = b.data().map_err(mal)?.filter(|d| !d.is_empty());
        if bytes_opt.is_none() {
            let off = b.offset().map_err(mal)?;
            let size = b.size().map_err(mal)?;
            if off > 1 {
                let start = usize::try_from(off).ok();
                let end = start.and_then(|s| s.checked_add(usize::try_from(size).ok()?));
                match (start, end) {
                    (Some(s), Some(e)) if e <= bytes.len() => bytes_opt = Some(&bytes[s..e]),
                    _ => return Err(terr(Error::malformed(format!("buffer {bidx} [offset {off}, size {size}] lies outside the file")))),
                }
            }
        }
        let densified;
        if let (Some(d), Some(sp)) = (bytes_opt, t.sparsity().map_err(mal)?) {
            densified = densify(d, &shape, dt, &sp).map_err(terr)?;
            bytes_opt = Some(&densified[..]);
        }
        if let Some(d) = bytes_opt {
            let need = if dt == DType::I4 { elems.div_ceil(2) } else { elems.checked_mul(dt.size()).unwrap_or(usize::MAX) };
            if d.len() != need && !matches!(dt, DType::Other(_)) {
                return Err(terr(Error::invalid(format!(
                    "constant data has {} bytes; shape {shape:?} of {dt} needs {need}",
                    d.len()
                ))));
            }
            data = Some(d.to_vec());
        }
    }
    Ok(Tensor { index: i, name: tname, dtype: dt, shape, quant, data, is_variable: t.is_variable().map_err(mal)? })
}

fn index_vector(v: Option<schema::SparseIndexVectorRef>) -> Result<Vec<usize>> {
    use schema::SparseIndexVectorRef as S;
    Ok(match v {
        None => Vec::new(),
        Some(S::Int32Vector(x)) => x
            .values()
            .map_err(mal)?
            .map(|v| v.iter().map(|i| usize::try_from(i).map_err(|_| Error::malformed("negative sparse index"))).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default(),
        Some(S::Uint16Vector(x)) => x.values().map_err(mal)?.map(|v| v.iter().map(|i| i as usize).collect()).unwrap_or_default(),
        Some(S::Uint8Vector(x)) => x.values().map_err(mal)?.map(|v| v.iter().map(|&i| i as usize).collect()).unwrap_or_default(),
    })
}

/// Expands a sparse constant (TFLite sparsity: traversal order, block map, per-level dense
/// or CSR metadata) into its dense bytes, as TFLite's sparsity format converter does, with
/// every index checked.
fn densify(values: &[u8], shape: &[usize], dt: DType, sp: &schema::SparsityParametersRef) -> Result<Vec<u8>> {
    let esz = dt.size();
    let traversal: Vec<usize> = sp
        .traversal_order()
        .map_err(mal)?
        .map(|v| v.iter().map(|i| usize::try_from(i).unwrap_or(usize::MAX)).collect())
        .unwrap_or_else(|| (0..shape.len()).collect());
    let block_map: Vec<usize> = sp.block_map().map_err(mal)?.map(|v| v.iter().map(|i| usize::try_from(i).unwrap_or(usize::MAX)).collect()).unwrap_or_default();
    let mut levels = Vec::new();
    if let Some(dm) = sp.dim_metadata().map_err(mal)? {
        for d in dm.iter() {
            let d = d.map_err(mal)?;
            let format = d.format().map_err(mal)?;
            let dense = usize::try_from(d.dense_size().map_err(mal)?).map_err(|_| Error::malformed("negative dense_size"))?;
            levels.push((format, dense, index_vector(d.array_segments().map_err(mal)?)?, index_vector(d.array_indices().map_err(mal)?)?));
        }
    }
    let rank = shape.len();
    let total = traversal.len();
    if levels.len() != total || total < rank || total > limits::MAX_RANK * 2 || traversal.iter().any(|&t| t >= total) {
        return Err(Error::malformed("inconsistent sparsity parameters (traversal order / dimension metadata)"));
    }
    if block_map.len() != total - rank || block_map.iter().any(|&b| b >= rank) {
        return Err(Error::malformed("inconsistent sparsity block map"));
    }
    let mut block_size = vec![1usize; block_map.len()];
    for (bd, &d) in block_map.iter().enumerate() {
        let od = traversal[rank + bd];
        let bs = levels.get(od).map(|l| l.1).unwrap_or(0);
        if bs == 0 || shape[d] % bs != 0 {
            return Err(Error::malformed("sparsity block size does not divide the dimension"));
        }
        block_size[bd] = bs;
    }
    let dense_elems: usize = shape.iter().product();
    let mut out = vec![0u8; dense_elems.checked_mul(esz).ok_or_else(|| Error::limit("dense size overflows"))?];
    let n_values = values.len() / esz;
    let mut src = 0usize;
    let mut idx = vec![0usize; total];
    // Iterative depth-first walk over the levels: (level, prev_idx, position).
    fn walk(
        level: usize,
        prev: usize,
        idx: &mut Vec<usize>,
        levels: &[(i8, usize, Vec<usize>, Vec<usize>)],
        emit: &mut dyn FnMut(&[usize]) -> Result<()>,
        budget: &mut usize,
    ) -> Result<()> {
        if level == levels.len() {
            return emit(idx);
        }
        let (format, dense, seg, ind) = &levels[level];
        if *format == 0 {
            for i in 0..*dense {
                *budget = budget.checked_sub(1).ok_or_else(|| Error::limit("sparse tensor expands to too many elements"))?;
                idx[level] = i;
                let p = prev.checked_mul(*dense).and_then(|p| p.checked_add(i)).ok_or_else(|| Error::malformed("sparse index overflow"))?;
                walk(level + 1, p, idx, levels, emit, budget)?;
            }
        } else if prev + 1 < seg.len() {
            let (a, b) = (seg[prev], seg[prev + 1]);
            if a > b || b > ind.len() {
                return Err(Error::malformed("sparse segment out of range"));
            }
            for i in a..b {
                *budget = budget.checked_sub(1).ok_or_else(|| Error::limit("sparse tensor expands to too many elements"))?;
                idx[level] = ind[i];
                walk(level + 1, i, idx, levels, emit, budget)?;
            }
        }
        Ok(())
    }
    let mut budget = dense_elems.saturating_mul(4).max(1 << 16);
    let mut emit = |ix: &[usize]| -> Result<()> {
        let mut orig = vec![0usize; rank];
        for i in 0..rank {
            orig[traversal[i]] = ix[i];
        }
        for i in rank..total {
            let b = traversal[i] - rank;
            let d = block_map[b];
            orig[d] = orig[d] * block_size[b] + ix[i];
        }
        let mut flat = 0usize;
        for d in 0..rank {
            if orig[d] >= shape[d] {
                return Err(Error::malformed("sparse index outside the dense shape"));
            }
            flat = flat * shape[d] + orig[d];
        }
        if src >= n_values {
            return Err(Error::malformed("sparse tensor has fewer values than its indices need"));
        }
        out[flat * esz..(flat + 1) * esz].copy_from_slice(&values[src * esz..(src + 1) * esz]);
        src += 1;
        Ok(())
    };
    walk(0, 0, &mut idx, &levels, &mut emit, &mut budget)?;
    Ok(out)
}
