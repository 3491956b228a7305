//! `mxgluon convert IN OUT`: rewrites an array file in the format named by OUT's extension
//! (`.params`, `.safetensors`, `.npy`, `.npz`). Sparse arrays become dense, with a warning,
//! where the target has no sparse storage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mxgluon::io::{self, ArrayList, FileView, Format};
use mxgluon::nd::{self, Array, SaveOptions};
use mxgluon::{Error, StorageType};

/// Options of `convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The file to read (.params, .safetensors, .npy or .npz; recognised by content).
    pub input: PathBuf,
    /// The file to write; its extension picks the format. Replaced atomically.
    pub output: PathBuf,
    /// For .params output: write V3 (np-shape) records, which can hold 0-d arrays.
    #[arg(long = "np-shape")]
    pub np_shape: bool,
    /// For .npz output: deflate the members (like np.savez_compressed).
    #[arg(long)]
    pub compress: bool,
}

/// Runs `convert`: 0 on success, 2 for an unknown output format, 1 for other failures.
pub fn run(args: ConvertArgs) -> ExitCode {
    match convert(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, Error::UnknownFileFormat { .. }) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn convert(args: &ConvertArgs) -> mxgluon::Result<()> {
    let target = Format::from_path(&args.output)?;
    let view = FileView::open(&args.input)?;
    let mut arrays = Vec::with_capacity(view.entries().len());
    for i in 0..view.entries().len() {
        arrays.push(view.to_array(i)?);
    }
    let data = if view.is_dict() {
        let names = view
            .entries()
            .iter()
            .map(|e| e.name.clone().unwrap_or_default());
        ArrayList::Dict(names.zip(arrays).collect())
    } else {
        ArrayList::List(arrays)
    };
    let data = if target == Format::Params {
        data
    } else {
        data.densified(|name| {
            eprintln!(
                "warning: '{name}' is a sparse array; .{} has no sparse storage, so it is written dense",
                target.name()
            )
        })?
    };
    if target != Format::Params && !data.is_dict() && target != Format::Npy && !data.is_empty() {
        eprintln!(
            "note: the input is an unnamed list; its arrays are named arr_0 .. arr_{} in .{}",
            data.len() - 1,
            target.name()
        );
    }
    match target {
        Format::Params => nd::save_with(
            &args.output,
            &data,
            &SaveOptions::new().np_shape(args.np_shape),
        )?,
        Format::Npz if args.compress => io::npz::save_compressed(&args.output, &data)?,
        _ => io::save(&args.output, &data)?,
    }
    let sparse = data
        .iter()
        .filter(|(_, a)| a.stype() != StorageType::Default)
        .count();
    let elements: usize = data
        .iter()
        .map(|(_, a): (_, &Array)| a.shape().iter().product::<usize>())
        .sum();
    println!(
        "wrote {} ({}): {} arrays{}, {} elements",
        args.output.display(),
        target.name(),
        data.len(),
        if sparse > 0 {
            format!(" ({sparse} sparse)")
        } else {
            String::new()
        },
        elements
    );
    Ok(())
}
