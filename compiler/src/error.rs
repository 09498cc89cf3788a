//! The one error type of the compiler: where it happened (model, operator, tensor) and
//! what to do about it.

use std::fmt;

/// What went wrong, by family (stable for tests and tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is not a well-formed TFLite FlatBuffer (truncated, bad offsets, wrong identifier).
    Malformed,
    /// The model is valid but uses an operator, option or data type microgen does not support.
    Unsupported,
    /// The model is well-formed FlatBuffers but semantically inconsistent (shapes, quantization, indices).
    Invalid,
    /// The model exceeds one of the compiler's hard limits.
    Limit,
    /// A memory or flash budget given by the user cannot be met.
    Budget,
    /// Reading or writing a file failed.
    Io,
    /// Building or running generated code failed (the `run` command).
    Build,
}

/// An error with its location in the model.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// The model's file name (or `<memory>`).
    pub model: String,
    /// Operator index in the model's subgraph 0 and its name.
    pub op: Option<(usize, String)>,
    /// Tensor index and name.
    pub tensor: Option<(usize, String)>,
    /// What is wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, model: String::new(), op: None, tensor: None, message: message.into(), hint: None }
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }
    pub fn with_op(mut self, index: usize, name: impl Into<String>) -> Self {
        if self.op.is_none() {
            self.op = Some((index, name.into()));
        }
        self
    }
    pub fn with_tensor(mut self, index: usize, name: impl Into<String>) -> Self {
        if self.tensor.is_none() {
            self.tensor = Some((index, name.into()));
        }
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        if self.model.is_empty() {
            self.model = model.into();
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = if self.model.is_empty() { "<model>" } else { &self.model };
        write!(f, "{model}")?;
        if let Some((i, name)) = &self.op {
            write!(f, ": operator {i} ({name})")?;
        }
        if let Some((i, name)) = &self.tensor {
            if name.is_empty() {
                write!(f, ": tensor {i}")?;
            } else {
                write!(f, ": tensor {i} '{name}'")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            let mut c = h.chars();
            let first = c.next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
            write!(f, ". {first}{}", c.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
