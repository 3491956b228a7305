//! Saving and loading parameters in MXNet's `.params` format: [`ParameterDict::save`] /
//! [`ParameterDict::load`] (full names, spec §3) and the structural-name files of
//! [`Block::save_parameters`] / [`Block::load_parameters`] (spec §4.4–§4.5).
//!
//! Loading checks everything before it changes anything: a file that does not fit gives one
//! [`Error::ParameterLoadMismatch`] listing every missing name, every unexpected name and every
//! shape or dtype conflict, and leaves the parameters as they were.

use std::collections::HashSet;
use std::path::Path;

use super::block::Block;
use super::parameter_dict::ParameterDict;
use super::{DTypeSource, Parameter};
use crate::context::ContextList;
use crate::error::{Error, LoadConflict, Result};
use crate::io::ArrayList;
use crate::nd::{Array, NDArray};

/// Options of the parameter loaders (MXNet's `load_parameters` / `ParameterDict.load`
/// arguments).
#[derive(Debug, Clone, Default)]
pub struct LoadParams {
    ctx: ContextList,
    allow_missing: bool,
    ignore_extra: bool,
    cast_dtype: bool,
    dtype_source: Option<DTypeSource>,
    restore_prefix: String,
}

impl LoadParams {
    /// Defaults: current contexts (cpu(0) for uninitialized parameters), nothing missing,
    /// nothing extra, dtypes must match.
    pub fn new() -> Self {
        Self::default()
    }
    /// The contexts to load onto (must equal an initialized parameter's contexts as a set).
    pub fn ctx(mut self, ctx: impl Into<ContextList>) -> Self {
        self.ctx = ctx.into();
        self
    }
    /// Accept a file that lacks some parameters (they keep their values).
    pub fn allow_missing(mut self, on: bool) -> Self {
        self.allow_missing = on;
        self
    }
    /// Accept a file with names that match no parameter (they are skipped).
    pub fn ignore_extra(mut self, on: bool) -> Self {
        self.ignore_extra = on;
        self
    }
    /// Convert dtypes that differ instead of refusing them; `source` picks the winner
    /// (`Current`: the parameter's dtype; `Saved`: the file's, casting the parameter).
    pub fn cast_dtype(mut self, source: DTypeSource) -> Self {
        self.cast_dtype = true;
        self.dtype_source = Some(source);
        self
    }
    /// For [`ParameterDict::load`]: a prefix put in front of every name in the file (MXNet's
    /// `restore_prefix`).
    pub fn restore_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.restore_prefix = prefix.into();
        self
    }
}

/// The dense value of a loaded record (sparse records are densified: parameters hold dense
/// data).
fn dense(a: &Array) -> Result<NDArray> {
    match a {
        Array::Dense(d) => Ok(d.clone()),
        other => other.to_dense(),
    }
}

/// What loading `data` into `p` would refuse (spec §1.22's shape and dtype checks).
fn conflict(p: &Parameter, data: &NDArray, cast: bool) -> Option<LoadConflict> {
    if let Some(shape) = p.shape().filter(|s| !s.is_empty()) {
        let bad = shape
            .iter()
            .zip(data.shape())
            .any(|(&want, &got)| want != 0 && want != got);
        if bad {
            return Some(LoadConflict::Shape {
                name: p.name().to_string(),
                expected: shape,
                saved: data.shape().to_vec(),
            });
        }
    }
    if !cast && p.dtype() != data.dtype() {
        return Some(LoadConflict::DType {
            name: p.name().to_string(),
            expected: p.dtype(),
            saved: data.dtype(),
        });
    }
    None
}

fn named(arrays: ArrayList, source: &str) -> Result<Vec<(String, Array)>> {
    match arrays {
        ArrayList::Dict(v) => Ok(v),
        ArrayList::List(v) if v.is_empty() => Ok(Vec::new()),
        ArrayList::List(_) => Err(Error::invalid_arg(
            "load parameters",
            format!("{source} holds a list of unnamed arrays, not named parameters"),
        )),
    }
}

fn load_one(p: &Parameter, data: &NDArray, opts: &LoadParams) -> Result<()> {
    p.load_init(
        data,
        opts.ctx.clone(),
        opts.cast_dtype,
        opts.dtype_source.unwrap_or(DTypeSource::Current),
    )
}

impl ParameterDict {
    /// Saves every parameter under its full name with `strip_prefix` removed (MXNet's
    /// `ParameterDict.save`), averaging the copies of each context. A name that does not start
    /// with `strip_prefix` is an error; the file is written atomically.
    pub fn save(&self, path: impl AsRef<Path>, strip_prefix: &str) -> Result<()> {
        let mut out = Vec::new();
        for (name, p) in self.items() {
            let value = p.reduce_array()?;
            let key = name.strip_prefix(strip_prefix).ok_or_else(|| {
                Error::invalid_arg(
                    "ParameterDict::save",
                    format!(
                        "cannot strip prefix '{strip_prefix}' from parameter '{name}': the name \
                         does not start with it (parameters shared from another block keep \
                         that block's prefix)"
                    ),
                )
            })?;
            out.push((key.to_string(), value));
        }
        crate::io::params::save(path, &ArrayList::Dict(out))
    }

    /// Loads a file saved by [`ParameterDict::save`] or MXNet (`arg:` / `aux:` prefixes are
    /// dropped; [`LoadParams::restore_prefix`] is prepended to every name).
    pub fn load(&self, path: impl AsRef<Path>, opts: &LoadParams) -> Result<()> {
        let path = path.as_ref();
        if !opts.restore_prefix.is_empty() {
            if let Some(bad) = self
                .keys()
                .into_iter()
                .find(|k| !k.starts_with(&opts.restore_prefix))
            {
                return Err(Error::invalid_arg(
                    "ParameterDict::load",
                    format!(
                        "restore_prefix is '{}' but parameter '{bad}' does not start with it",
                        opts.restore_prefix
                    ),
                ));
            }
        }
        let source = path.display().to_string();
        let arrays = crate::io::params::load(path)?.into_arrays();
        self.load_dict(named(arrays, &source)?, opts, &source)
    }

    /// Loads named arrays (MXNet's `load_dict`); `source` names them in errors.
    pub fn load_dict(
        &self,
        arrays: Vec<(String, Array)>,
        opts: &LoadParams,
        source: &str,
    ) -> Result<()> {
        let mut loaded: Vec<(String, NDArray)> = Vec::with_capacity(arrays.len());
        for (k, a) in arrays {
            let k = k
                .strip_prefix("arg:")
                .or_else(|| k.strip_prefix("aux:"))
                .unwrap_or(&k);
            loaded.push((format!("{}{k}", opts.restore_prefix), dense(&a)?));
        }
        let names: HashSet<&str> = loaded.iter().map(|(k, _)| k.as_str()).collect();
        let missing: Vec<String> = if opts.allow_missing {
            Vec::new()
        } else {
            self.keys()
                .into_iter()
                .filter(|k| !names.contains(k.as_str()))
                .collect()
        };
        let mut unexpected = Vec::new();
        let mut conflicts = Vec::new();
        let mut todo = Vec::new();
        for (k, v) in &loaded {
            match self.get_param(k) {
                Some(p) => match conflict(&p, v, opts.cast_dtype) {
                    Some(c) => conflicts.push(c),
                    None => todo.push((p, v)),
                },
                None if opts.ignore_extra => {}
                None => unexpected.push(k.clone()),
            }
        }
        if !missing.is_empty() || !unexpected.is_empty() || !conflicts.is_empty() {
            return Err(Error::ParameterLoadMismatch {
                file: source.to_string(),
                missing,
                unexpected,
                conflicts,
            });
        }
        for (p, v) in todo {
            load_one(&p, v, opts)?;
        }
        Ok(())
    }
}

/// `Block::save_parameters`: structural names, optionally one name per parameter object.
pub(crate) fn save_block(block: &dyn Block, path: &Path, deduplicate: bool) -> Result<()> {
    let mut entries = block.collect_params_with_prefix("");
    if deduplicate {
        // Keep the last structural name of each parameter object (MXNet's rule).
        let mut keep = Vec::with_capacity(entries.len());
        for (i, (_, p)) in entries.iter().enumerate() {
            if !entries[i + 1..].iter().any(|(_, q)| q.ptr_eq(p)) {
                keep.push(i);
            }
        }
        entries = keep.into_iter().map(|i| entries[i].clone()).collect();
    }
    let mut out = Vec::with_capacity(entries.len());
    for (name, p) in entries {
        out.push((name, p.reduce_array()?));
    }
    crate::io::params::save(path, &ArrayList::Dict(out))
}

/// `Block::load_parameters` (spec §4.5), including the legacy full-name files.
pub(crate) fn load_block(block: &dyn Block, path: &Path, opts: &LoadParams) -> Result<()> {
    let source = path.display().to_string();
    let arrays = named(crate::io::params::load(path)?.into_arrays(), &source)?;
    let params = block.collect_params_with_prefix("");
    if arrays.is_empty() && params.is_empty() {
        return Ok(());
    }
    if !arrays.iter().any(|(k, _)| k.contains('.')) {
        // A legacy file (ParameterDict::save / save_params): full names without the prefix.
        let opts = LoadParams {
            restore_prefix: block.prefix().to_string(),
            ..opts.clone()
        };
        return block.collect_params()?.load_dict(arrays, &opts, &source);
    }
    let names: HashSet<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
    let mut missing = Vec::new();
    if !opts.allow_missing {
        for (name, p) in &params {
            // A shared parameter is present if any of its structural names is.
            let found = params
                .iter()
                .any(|(n, q)| q.ptr_eq(p) && names.contains(n.as_str()));
            if !found && !missing.contains(name) {
                missing.push(name.clone());
            }
        }
    }
    let mut unexpected = Vec::new();
    let mut conflicts = Vec::new();
    let mut todo = Vec::new();
    for (k, a) in &arrays {
        match params.iter().find(|(n, _)| n == k) {
            Some((_, p)) => {
                let v = dense(a)?;
                match conflict(p, &v, opts.cast_dtype) {
                    Some(c) => conflicts.push(c),
                    None => todo.push((p.clone(), v)),
                }
            }
            None if opts.ignore_extra => {}
            None => unexpected.push(k.clone()),
        }
    }
    if !missing.is_empty() || !unexpected.is_empty() || !conflicts.is_empty() {
        return Err(Error::ParameterLoadMismatch {
            file: source,
            missing,
            unexpected,
            conflicts,
        });
    }
    for (p, v) in todo {
        load_one(&p, &v, opts)?;
    }
    Ok(())
}
