//! Atomic file replacement: write a temporary file in the target's folder, flush it to disk,
//! rename it over the target, sync the folder.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::io_error;
use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Buffer size of the writer handed to the caller. Writes larger than this go straight to the
/// file (`BufWriter` does not copy them).
const BUF: usize = 1 << 20;

/// Removes the temporary file unless the rename happened.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `path` atomically: `write` fills a buffered writer on a fresh temporary file beside
/// `path`; then the file is flushed (and, if `durable`, `fsync`ed), renamed over `path`, and
/// (if `durable`) the folder is synced so the rename itself survives a power loss.
///
/// On any error the temporary file is removed and `path` is untouched.
pub(crate) fn write_atomic(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid_arg("save", format!("{} does not name a file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp_path = dir.join(tmp_name);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| io_error(&tmp_path, e))?;
    let mut tmp = TempFile {
        path: tmp_path,
        armed: true,
    };
    let mut w = BufWriter::with_capacity(BUF, file);
    write(&mut w).map_err(|e| io_error(path, e))?;
    w.flush().map_err(|e| io_error(path, e))?;
    let file = w.into_inner().map_err(|e| io_error(path, e.into_error()))?;
    if durable {
        file.sync_all().map_err(|e| io_error(path, e))?;
    }
    drop(file);
    std::fs::rename(&tmp.path, path).map_err(|e| io_error(path, e))?;
    tmp.armed = false;
    if durable {
        // Makes the rename durable. Not every platform can open or sync a folder; the data
        // itself is already on disk, so a failure here is not an error.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mxgluon-atomic-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let d = tmp_dir("ok");
        let p = d.join("f.bin");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, true, |w| w.write_all(b"new contents")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new contents");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let d = tmp_dir("fail");
        let p = d.join("f.bin");
        std::fs::write(&p, b"old").unwrap();
        let r = write_atomic(&p, false, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk on fire"))
        });
        assert!(matches!(r, Err(Error::Io { .. })));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_folder_is_an_io_error() {
        let p = std::env::temp_dir().join("mxgluon-no-such-dir-xyz/f.bin");
        assert!(matches!(
            write_atomic(&p, false, |w| w.write_all(b"x")),
            Err(Error::Io { .. })
        ));
    }
}
