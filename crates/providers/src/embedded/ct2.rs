//! A reader for CTranslate2's `model.bin` (binary format version 6), so the converted Whisper models
//! load without CTranslate2 itself. The layout, all little-endian, strings as a `u16` length that
//! counts a trailing NUL:
//!
//! ```text
//! u32 version (6), str spec, u32 revision, u32 count,
//! count × { str name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, nbytes of data },
//! u32 aliases, aliases × { str alias, str name }
//! ```
//!
//! dtype: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. Floating-point variables load as f32 tensors;
//! integer scalars (head counts, flags) are read as numbers. Quantized (int8) weights are refused
//! by the caller, which asks for floats.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::models::ModelError;

/// The binary format version this reader understands.
const VERSION: u32 = 6;

/// The element type of a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2Type {
    fn from_code(code: u8) -> Option<Ct2Type> {
        Some(match code {
            0 => Ct2Type::F32,
            1 => Ct2Type::I8,
            2 => Ct2Type::I16,
            3 => Ct2Type::I32,
            4 => Ct2Type::F16,
            5 => Ct2Type::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Type::I8 => 1,
            Ct2Type::I16 | Ct2Type::F16 | Ct2Type::BF16 => 2,
            Ct2Type::F32 | Ct2Type::I32 => 4,
        }
    }
}

/// One variable: its shape, type and where its data lies in the file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Variable {
    pub dims: Vec<usize>,
    pub dtype: Ct2Type,
    data: Range<usize>,
}

/// A whole `model.bin`, held in memory; variables are converted when asked for.
pub(crate) struct Ct2Model {
    path: String,
    pub spec: String,
    pub revision: u32,
    bytes: Vec<u8>,
    variables: HashMap<String, Variable>,
    aliases: HashMap<String, String>,
}

impl std::fmt::Debug for Ct2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2Model")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("revision", &self.revision)
            .field("variables", &self.variables.len())
            .field("aliases", &self.aliases)
            .finish()
    }
}

/// A position in the file being parsed; every read checks the length.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<Range<usize>, String> {
        match self.at.checked_add(n).filter(|end| *end <= self.bytes.len()) {
            Some(end) => {
                let range = self.at..end;
                self.at = end;
                Ok(range)
            }
            None => Err(format!(
                "truncated: {what} needs {n} bytes at offset {} but the file has {}",
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        let range = self.take(1, what)?;
        Ok(self.bytes[range.start])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let range = self.take(2, what)?;
        Ok(u16::from_le_bytes([self.bytes[range.start], self.bytes[range.start + 1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let range = self.take(4, what)?;
        let mut le = [0u8; 4];
        le.copy_from_slice(&self.bytes[range]);
        Ok(u32::from_le_bytes(le))
    }

    /// A `u16`-length string whose length includes a trailing NUL.
    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = usize::from(self.u16(what)?);
        let range = self.take(len, what)?;
        let raw = &self.bytes[range];
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

impl Ct2Model {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Ct2Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::unusable(path, e.to_string()))?;
        Ct2Model::parse(path, bytes)
    }

    /// Parses `bytes`, the contents of `path` (named in errors).
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Ct2Model, ModelError> {
        let fail = |problem: String| ModelError::unusable(path, format!("not a usable CTranslate2 model: {problem}"));
        let mut cursor = Cursor { bytes: &bytes, at: 0 };
        let version = cursor.u32("the version").map_err(fail)?;
        if version != VERSION {
            return Err(fail(format!("binary version {version}, expected {VERSION}")));
        }
        let spec = cursor.string("the spec name").map_err(fail)?;
        let revision = cursor.u32("the spec revision").map_err(fail)?;
        let count = cursor.u32("the variable count").map_err(fail)?;
        let mut variables = HashMap::new();
        for index in 0..count {
            let name = cursor.string(&format!("the name of variable {index}")).map_err(fail)?;
            let rank = cursor.u8(&format!("the rank of {name}")).map_err(fail)?;
            let dims = (0..rank)
                .map(|_| cursor.u32(&format!("the shape of {name}")).map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let code = cursor.u8(&format!("the type of {name}")).map_err(fail)?;
            let dtype = Ct2Type::from_code(code).ok_or_else(|| fail(format!("{name} has unknown type {code}")))?;
            let nbytes = cursor.u32(&format!("the size of {name}")).map_err(fail)? as usize;
            let expected = dims.iter().product::<usize>() * dtype.size();
            if nbytes != expected {
                return Err(fail(format!("{name} {dims:?} of {dtype:?} should have {expected} bytes, has {nbytes}")));
            }
            let data = cursor.take(nbytes, &format!("the data of {name}")).map_err(fail)?;
            variables.insert(name, Variable { dims, dtype, data });
        }
        let alias_count = cursor.u32("the alias count").map_err(fail)?;
        let mut aliases = HashMap::new();
        for _ in 0..alias_count {
            let alias = cursor.string("an alias").map_err(fail)?;
            let name = cursor.string(&format!("the target of alias {alias}")).map_err(fail)?;
            if !variables.contains_key(&name) {
                return Err(fail(format!("alias {alias} names {name}, which is not a variable")));
            }
            aliases.insert(alias, name);
        }
        if cursor.at != bytes.len() {
            return Err(fail(format!("{} bytes left over after the aliases", bytes.len() - cursor.at)));
        }
        Ok(Ct2Model { path: path.display().to_string(), spec, revision, bytes, variables, aliases })
    }

    /// The names of the variables (not the aliases).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    /// The variable called `name`, or the one `name` is an alias of.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        let name = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables.get(name)
    }

    fn error(&self, problem: String) -> ModelError {
        ModelError { path: self.path.clone(), problem }
    }

    /// A floating-point variable as an f32 tensor on the CPU.
    pub fn tensor(&self, name: &str) -> Result<Tensor, ModelError> {
        let variable = self.variable(name).ok_or_else(|| self.error(format!("the model has no {name}")))?;
        let dtype = match variable.dtype {
            Ct2Type::F32 => DType::F32,
            Ct2Type::F16 => DType::F16,
            Ct2Type::BF16 => DType::BF16,
            other => return Err(self.error(format!("{name} is {other:?}; only float models are supported"))),
        };
        let data = &self.bytes[variable.data.clone()];
        Tensor::from_raw_buffer(data, dtype, &variable.dims, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| self.error(format!("{name}: {e}")))
    }

    /// An integer scalar (or one-element) variable, e.g. `encoder/num_heads`.
    pub fn integer(&self, name: &str) -> Option<i64> {
        let variable = self.variable(name)?;
        let data = &self.bytes[variable.data.clone()];
        match (variable.dtype, data) {
            (Ct2Type::I8, [b]) => Some(i64::from(*b as i8)),
            (Ct2Type::I16, [a, b]) => Some(i64::from(i16::from_le_bytes([*a, *b]))),
            (Ct2Type::I32, [a, b, c, d]) => Some(i64::from(i32::from_le_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn variable(out: &mut Vec<u8>, name: &str, dims: &[u32], dtype: u8, data: &[u8]) {
        string(out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.push(dtype);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }

    /// A little model: an f32 matrix, an f16 vector, an int16 scalar and an alias.
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "TestSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        let matrix: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        variable(&mut out, "a/weight", &[2, 3], 0, &matrix);
        // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800.
        let half: Vec<u8> = [0x3c00u16, 0xc000, 0x3800].iter().flat_map(|v| v.to_le_bytes()).collect();
        variable(&mut out, "b/gamma", &[3], 4, &half);
        variable(&mut out, "num_heads", &[], 2, &6i16.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        string(&mut out, "c/weight");
        string(&mut out, "a/weight");
        out
    }

    #[test]
    fn reads_variables_aliases_and_scalars() {
        let model = Ct2Model::parse(Path::new("test.bin"), sample()).unwrap();
        assert_eq!((model.spec.as_str(), model.revision), ("TestSpec", 3));
        let mut names: Vec<_> = model.names().collect();
        names.sort();
        assert_eq!(names, ["a/weight", "b/gamma", "num_heads"]);
        let a = model.tensor("a/weight").unwrap();
        assert_eq!(a.dims(), [2, 3]);
        assert_eq!(a.to_vec2::<f32>().unwrap(), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert_eq!(model.tensor("b/gamma").unwrap().to_vec1::<f32>().unwrap(), [1.0, -2.0, 0.5]);
        assert_eq!(model.tensor("c/weight").unwrap().to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
        assert_eq!(model.integer("num_heads"), Some(6));
        assert_eq!(model.variable("c/weight").unwrap().dims, [2, 3]);
        let missing = model.tensor("nope").unwrap_err();
        assert!(missing.problem.contains("no nope"), "{missing}");
        let not_float = model.tensor("num_heads").unwrap_err();
        assert!(not_float.problem.contains("only float"), "{not_float}");
    }

    #[test]
    fn refuses_other_versions() {
        let mut bytes = sample();
        bytes[..4].copy_from_slice(&5u32.to_le_bytes());
        let error = Ct2Model::parse(Path::new("old.bin"), bytes).unwrap_err();
        assert_eq!(error.path, "old.bin");
        assert!(error.problem.contains("binary version 5, expected 6"), "{error}");
        assert!(error.to_string().contains("scripts/fetch-models"), "{error}");
    }

    #[test]
    fn refuses_truncated_and_padded_files() {
        let bytes = sample();
        for cut in [0, 3, 10, 30, bytes.len() / 2, bytes.len() - 1] {
            let error = Ct2Model::parse(Path::new("cut.bin"), bytes[..cut].to_vec()).unwrap_err();
            assert!(error.problem.contains("truncated"), "cut at {cut}: {error}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let error = Ct2Model::parse(Path::new("long.bin"), longer).unwrap_err();
        assert!(error.problem.contains("left over"), "{error}");
    }

    #[test]
    fn refuses_sizes_that_do_not_match_the_shape() {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "TestSpec");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        variable(&mut out, "w", &[2, 2], 0, &[0; 12]);
        out.extend_from_slice(&0u32.to_le_bytes());
        let error = Ct2Model::parse(Path::new("bad.bin"), out).unwrap_err();
        assert!(error.problem.contains("should have 16 bytes, has 12"), "{error}");
    }

    #[test]
    fn reports_a_missing_file() {
        let error = Ct2Model::read(Path::new("/nonexistent/whisper.bin")).unwrap_err();
        assert_eq!(error.path, "/nonexistent/whisper.bin");
    }
}
