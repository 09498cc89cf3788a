//! The intermediate representation: tensors with static shapes and quantization, and a
//! graph of typed operators on petgraph. No other stage sees FlatBuffers.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use std::fmt;

pub type TensorId = usize;

/// Element types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    I4,
    Other(i8),
}

impl DType {
    /// Bytes per element (`I4` is packed two per byte and reported as 1 here; callers that
    /// support it handle packing).
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::I16 | DType::U16 => 2,
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::I8 | DType::U8 | DType::Bool | DType::I4 | DType::Other(_) => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
            DType::I4 => "int4",
            DType::Other(_) => "unknown",
        }
    }
    /// The Rust element type used in the generated API.
    pub fn rust(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
            _ => "u8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Affine quantization, per tensor (one scale) or per channel along `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quant {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

impl Quant {
    pub fn scale(&self) -> f32 {
        self.scale[0]
    }
    pub fn zp(&self) -> i32 {
        self.zero_point.first().copied().unwrap_or(0) as i32
    }
    pub fn per_channel(&self) -> bool {
        self.scale.len() > 1
    }
    pub fn same_as(&self, other: &Quant) -> bool {
        self.scale == other.scale && self.zero_point == other.zero_point
    }
}

/// A tensor of the model.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Index in the TFLite subgraph (for messages).
    pub index: usize,
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quant: Option<Quant>,
    /// Constant data (little-endian, as stored in the model).
    pub data: Option<Vec<u8>>,
    pub is_variable: bool,
}

impl Tensor {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.elems() * self.dtype.size()
    }
    pub fn is_const(&self) -> bool {
        self.data.is_some()
    }
    pub fn q(&self) -> Option<&Quant> {
        self.quant.as_ref()
    }
}

/// Fused activation of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    ReluN1To1,
    Relu6,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::None => "NONE",
            Act::Relu => "RELU",
            Act::ReluN1To1 => "RELU_N1_TO_1",
            Act::Relu6 => "RELU6",
        }
    }
    /// Float clamp range.
    pub fn range_f32(self) -> (f32, f32) {
        match self {
            Act::None => (f32::MIN, f32::MAX),
            Act::Relu => (0.0, f32::MAX),
            Act::ReluN1To1 => (-1.0, 1.0),
            Act::Relu6 => (0.0, 6.0),
        }
    }
    /// TFLite `CalculateActivationRangeQuantized` for an output with `scale`/`zp` and
    /// integer range `[qmin, qmax]`.
    pub fn range_q(self, scale: f32, zp: i32, qmin: i32, qmax: i32) -> (i32, i32) {
        let quant = |f: f32| zp + microgen_rt::f::round_to_i32(f / scale);
        match self {
            Act::None => (qmin, qmax),
            Act::Relu => (qmin.max(quant(0.0)), qmax),
            Act::Relu6 => (qmin.max(quant(0.0)), qmax.min(quant(6.0))),
            Act::ReluN1To1 => (qmin.max(quant(-1.0)), qmax.min(quant(1.0))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

/// 2-D window geometry shared by convolutions and pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub padding: Padding,
}

/// Operators with their attributes. Operands are in the node's `inputs`/`outputs`, in
/// TFLite order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `asymmetric_inputs`: hybrid kernels (float input, int8 weights) quantize the input
    /// asymmetrically at run time (TFLite `asymmetric_quantize_inputs`).
    FullyConnected { act: Act, keep_num_dims: bool, asymmetric_inputs: bool },
    Conv2d { win: Window, act: Act },
    DepthwiseConv2d { win: Window, depth_multiplier: usize, act: Act },
    AveragePool2d { win: Window, filter_h: usize, filter_w: usize, act: Act },
    MaxPool2d { win: Window, filter_h: usize, filter_w: usize, act: Act },
    Softmax { beta: f32 },
    LogSoftmax,
    /// RESHAPE / SQUEEZE / EXPAND_DIMS: the output is the input's bytes with another shape.
    View { kind: &'static str },
    Quantize,
    Dequantize,
    Relu,
    Relu6,
    ReluN1To1,
    Logistic,
    Tanh,
    LeakyRelu { alpha: f32 },
    HardSwish,
    Add { act: Act },
    Sub { act: Act },
    Mul { act: Act },
    Minimum,
    Maximum,
    Mean { keep_dims: bool },
    Pad,
    Concatenation { axis: i32, act: Act },
    StridedSlice { begin_mask: i32, end_mask: i32, ellipsis_mask: i32, new_axis_mask: i32, shrink_axis_mask: i32, offset: bool },
    Transpose,
    ResizeNearestNeighbor { align_corners: bool, half_pixel_centers: bool },
    Split { num_splits: usize },
    SplitV { num_splits: usize },
    Pack { axis: i32, values_count: usize },
    Unpack { axis: i32, num: usize },
    ArgMax,
    ArgMin,
    Prelu,
    /// DENSIFY of a constant (folded at compile time; sparse constants are densified by the reader).
    Densify,
    /// VAR_HANDLE (resolved away by the frontend into [`Variable`]s).
    VarHandle { name: String },
    /// CALL_ONCE (resolved away by the frontend: the init subgraph becomes initial values).
    CallOnce { init_subgraph: usize },
    /// READ_VARIABLE: copies variable `var` into output 0. Output 1 is a zero-byte ordering
    /// token; extra inputs are ordering tokens.
    ReadVariable { var: usize },
    /// ASSIGN_VARIABLE: copies input 0 into variable `var`. Output 0 is a zero-byte ordering
    /// token; extra inputs are ordering tokens.
    AssignVariable { var: usize },
    /// TRANSPOSE_CONV: operands (output_shape, filter [out_c, h, w, in_c], input, bias?);
    /// the window's dilation is 1.
    TransposeConv { win: Window, act: Act },
    ReduceMax { keep_dims: bool },
    Tile,
    ResizeBilinear { align_corners: bool, half_pixel_centers: bool },
}

impl Op {
    /// The TFLite name of the operator (for messages and docs).
    pub fn name(&self) -> &'static str {
        match self {
            Op::FullyConnected { .. } => "FULLY_CONNECTED",
            Op::Conv2d { .. } => "CONV_2D",
            Op::DepthwiseConv2d { .. } => "DEPTHWISE_CONV_2D",
            Op::AveragePool2d { .. } => "AVERAGE_POOL_2D",
            Op::MaxPool2d { .. } => "MAX_POOL_2D",
            Op::Softmax { .. } => "SOFTMAX",
            Op::LogSoftmax => "LOG_SOFTMAX",
            Op::View { kind } => kind,
            Op::Quantize => "QUANTIZE",
            Op::Dequantize => "DEQUANTIZE",
            Op::Relu => "RELU",
            Op::Relu6 => "RELU6",
            Op::ReluN1To1 => "RELU_N1_TO_1",
            Op::Logistic => "LOGISTIC",
            Op::Tanh => "TANH",
            Op::LeakyRelu { .. } => "LEAKY_RELU",
            Op::HardSwish => "HARD_SWISH",
            Op::Add { .. } => "ADD",
            Op::Sub { .. } => "SUB",
            Op::Mul { .. } => "MUL",
            Op::Minimum => "MINIMUM",
            Op::Maximum => "MAXIMUM",
            Op::Mean { .. } => "MEAN",
            Op::Pad => "PAD",
            Op::Concatenation { .. } => "CONCATENATION",
            Op::StridedSlice { .. } => "STRIDED_SLICE",
            Op::Transpose => "TRANSPOSE",
            Op::ResizeNearestNeighbor { .. } => "RESIZE_NEAREST_NEIGHBOR",
            Op::Split { .. } => "SPLIT",
            Op::SplitV { .. } => "SPLIT_V",
            Op::Pack { .. } => "PACK",
            Op::Unpack { .. } => "UNPACK",
            Op::ArgMax => "ARG_MAX",
            Op::ArgMin => "ARG_MIN",
            Op::Prelu => "PRELU",
            Op::Densify => "DENSIFY",
            Op::VarHandle { .. } => "VAR_HANDLE",
            Op::CallOnce { .. } => "CALL_ONCE",
            Op::ReadVariable { .. } => "READ_VARIABLE",
            Op::AssignVariable { .. } => "ASSIGN_VARIABLE",
            Op::TransposeConv { .. } => "TRANSPOSE_CONV",
            Op::ReduceMax { .. } => "REDUCE_MAX",
            Op::Tile => "TILE",
            Op::ResizeBilinear { .. } => "RESIZE_BILINEAR",
        }
    }
    /// The fused activation, if the operator has one.
    pub fn act(&self) -> Option<Act> {
        match self {
            Op::FullyConnected { act, .. }
            | Op::Conv2d { act, .. }
            | Op::DepthwiseConv2d { act, .. }
            | Op::AveragePool2d { act, .. }
            | Op::MaxPool2d { act, .. }
            | Op::Add { act }
            | Op::Sub { act }
            | Op::Mul { act }
            | Op::Concatenation { act, .. } => Some(*act),
            _ => None,
        }
    }
    pub fn set_act(&mut self, new: Act) {
        match self {
            Op::FullyConnected { act, .. }
            | Op::Conv2d { act, .. }
            | Op::DepthwiseConv2d { act, .. }
            | Op::AveragePool2d { act, .. }
            | Op::MaxPool2d { act, .. }
            | Op::Add { act }
            | Op::Sub { act }
            | Op::Mul { act }
            | Op::Concatenation { act, .. } => *act = new,
            _ => {}
        }
    }
    pub fn is_view(&self) -> bool {
        matches!(self, Op::View { .. })
    }
    /// Operators with an effect beyond their outputs (never pruned, never reordered
    /// across each other: ordering tokens chain them).
    pub fn has_side_effect(&self) -> bool {
        matches!(self, Op::AssignVariable { .. })
    }
}

/// One operator instance.
#[derive(Debug, Clone)]
pub struct Node {
    /// Index of the operator in the TFLite subgraph (stable across passes, for messages).
    pub index: usize,
    pub op: Op,
    /// Operand tensors; `None` for an optional operand that is absent (TFLite index -1).
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
}

impl Node {
    pub fn input(&self, i: usize) -> Option<TensorId> {
        self.inputs.get(i).copied().flatten()
    }
}

/// State kept between calls (a TFLite resource variable).
#[derive(Debug, Clone)]
pub struct Variable {
    /// `container/shared_name` of its VAR_HANDLE.
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub quant: Option<Quant>,
    /// Initial contents (from the CALL_ONCE init subgraph; zeros if it has none).
    pub init: Vec<u8>,
}

impl Variable {
    pub fn bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// A model: tensors, the operator graph (edges carry the tensor flowing from producer to
/// consumer), and the model's inputs and outputs.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The model's name (file name), used in messages and generated docs.
    pub name: String,
    pub tensors: Vec<Tensor>,
    pub nodes: StableDiGraph<Node, TensorId>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Resource variables: state carried from one call to the next.
    pub variables: Vec<Variable>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), tensors: Vec::new(), nodes: StableDiGraph::new(), inputs: Vec::new(), outputs: Vec::new(), variables: Vec::new() }
    }

    pub fn t(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// Rebuilds the producer -> consumer edges from the nodes' operand lists.
    pub fn rebuild_edges(&mut self) {
        self.nodes.clear_edges();
        let mut producer = vec![None; self.tensors.len()];
        for n in self.nodes.node_indices() {
            for &o in &self.nodes[n].outputs {
                producer[o] = Some(n);
            }
        }
        let idx: Vec<NodeIndex> = self.nodes.node_indices().collect();
        for n in idx {
            let ins: Vec<TensorId> = self.nodes[n].inputs.iter().flatten().copied().collect();
            for t in ins {
                if let Some(p) = producer[t] {
                    self.nodes.add_edge(p, n, t);
                }
            }
        }
    }

    /// The node that writes `t`, if any.
    pub fn producer(&self, t: TensorId) -> Option<NodeIndex> {
        self.nodes.node_indices().find(|&n| self.nodes[n].outputs.contains(&t))
    }

    /// The nodes that read `t`.
    pub fn consumers(&self, t: TensorId) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .nodes
            .node_indices()
            .filter(|&n| self.nodes[n].inputs.iter().flatten().any(|&i| i == t))
            .collect();
        v.sort_by_key(|n| self.nodes[*n].index);
        v
    }

    /// Nodes in a valid execution order: the model's own order when it is topological
    /// (it normally is), otherwise a topological sort. Errors on a cycle.
    pub fn topo_order(&self) -> crate::error::Result<Vec<NodeIndex>> {
        let mut order: Vec<NodeIndex> = self.nodes.node_indices().collect();
        order.sort_by_key(|n| self.nodes[*n].index);
        let bound = order.iter().map(|n| n.index() + 1).max().unwrap_or(0);
        let mut pos = vec![usize::MAX; bound];
        for (i, n) in order.iter().enumerate() {
            pos[n.index()] = i;
        }
        let ok = order.iter().all(|&n| {
            self.nodes.edges_directed(n, petgraph::Direction::Outgoing).all(|e| pos[e.source().index()] < pos[e.target().index()])
        });
        if ok {
            return Ok(order);
        }
        petgraph::algo::toposort(&self.nodes, None).map_err(|c| {
            let n = &self.nodes[c.node_id()];
            crate::error::Error::invalid("the operator graph has a cycle").with_op(n.index, n.op.name())
        })
    }
}
